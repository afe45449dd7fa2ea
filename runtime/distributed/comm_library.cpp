#include "distributed/comm_library.hpp"

#include <contra/guard.hpp>

#include <boost/dll/runtime_symbol_info.hpp>

#include <dlfcn.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#ifndef CONTRA_LIBRARY_DIR_FROM_BIN
#define CONTRA_LIBRARY_DIR_FROM_BIN "../lib"
#endif

namespace contra::runtime {
namespace fs = std::filesystem;

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
  // Beside the program (build tree: bin/../lib; install: bin/<to libdir>),
  // then wherever the dynamic linker looks.
  std::vector<std::string> candidates;
  std::error_code ec;
  const fs::path bin = boost::dll::program_location(ec).parent_path();
  if (!ec)
    for (const char* rel : {"../lib", CONTRA_LIBRARY_DIR_FROM_BIN}) {
      const fs::path p = (bin / rel / name).lexically_normal();
      if (fs::exists(p, ec)) candidates.push_back(p.string());
    }
  candidates.push_back(name);
  void* handle = nullptr;
  std::string why;
  for (const auto& c : candidates) {
    // RTLD_GLOBAL: OpenMPI loads its own components with dlopen and needs
    // libmpi's symbols visible to them.
    handle = dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle) break;
    const char* e = dlerror();
    if (why.empty()) why = e ? e : c + ": cannot be loaded";
  }
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
