#include "distributed/comm_library.hpp"

#include "device/own_library.hpp"

#include <contra/guard.hpp>

#include <dlfcn.h>

#include <map>
#include <mutex>

namespace contra::runtime {

namespace {
std::string library_name(const std::string& backend) { return "libcontra_comm_" + backend + ".so"; }
}  // namespace

bool built_with_backend(const std::string& backend) {
#ifdef CONTRA_HAVE_MPI
  if (backend == "mpi") return true;
#endif
#ifdef CONTRA_HAVE_NCCL
  if (backend == "nccl") return true;
#endif
  (void)backend;
  return false;
}

std::string missing_backend_reason(const std::string& backend) {
  if (backend == "mpi")
    return "this build of contra has no mpi backend (CMake found no MPI: install libopenmpi-dev and openmpi-bin, "
           "then configure again)";
  if (backend == "nccl")
    return "this build of contra has no nccl backend (it needs CUDA, NCCL and MPI when CMake configures)";
  return "no such backend '" + backend + "' (backends: mpi, nccl)";
}

Communicator& open_communicator(const std::string& backend, const CommunicatorOptions& options) {
  static std::mutex mutex;
  // Never destroyed: finalize() ends the library, and a failing run leaves
  // by exit_after_failure().
  static std::map<std::string, Communicator*> opened;
  const std::lock_guard<std::mutex> lock(mutex);
  if (auto it = opened.find(backend); it != opened.end()) {
    it->second->set_timeout(options.timeout_s);
    return *it->second;
  }
  if (!built_with_backend(backend)) throw DistributedError(missing_backend_reason(backend));
  const std::string name = library_name(backend);
  std::string why;
  // RTLD_GLOBAL: OpenMPI loads its own components with dlopen and needs
  // libmpi's symbols visible to them.
  void* handle = open_own_library(name, RTLD_NOW | RTLD_GLOBAL, why);
  if (!handle) throw DistributedError("cannot load " + name + " (the " + backend + " backend): " + why);
  auto create = reinterpret_cast<CreateCommunicator>(dlsym(handle, CONTRA_COMMUNICATOR_SYMBOL));
  if (!create)
    throw DistributedError(name + " is not the one this contra was built with (no '" CONTRA_COMMUNICATOR_SYMBOL "')");
  Communicator* c = nullptr;
  try {
    c = create(options);
  } catch (const DistributedError&) {
    throw;
  } catch (...) {
    throw DistributedError("the " + backend + " backend failed to start: " + current_exception_message());
  }
  opened.emplace(backend, c);
  return *c;
}

}  // namespace contra::runtime
