#pragma once
// Opens a communicator backend's library (libcontra_comm_mpi,
// libcontra_comm_nccl) with dlopen, once per process, only when a run is
// distributed: a single-process run maps no MPI or NCCL library.

#include "distributed/communicator.hpp"

#include <string>

namespace contra::runtime {

/// Whether this build of contra has the backend ("mpi", "nccl"): CMake built
/// its library because it found MPI (and NCCL with CUDA).
bool built_with_backend(const std::string& backend);
/// Why the backend is missing from this build, for messages.
std::string missing_backend_reason(const std::string& backend);

/// The process's communicator of `backend`, created at the first call (its
/// library loaded, MPI initialised) and kept until the process ends; later
/// calls return it with `options` applied. Throws DistributedError naming
/// the library when it cannot be loaded or refuses to start.
Communicator& open_communicator(const std::string& backend, const CommunicatorOptions& options);

}  // namespace contra::runtime
