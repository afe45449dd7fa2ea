#pragma once
// The MPI communicator: the mpi backend itself (mpi_backend.cpp exports it),
// and the host side of the nccl backend (bootstrap, host collectives,
// failure notices). Compiled into each backend library; never into the runtime.

#include "distributed/communicator.hpp"

#include <memory>

namespace contra::runtime {

class HostCommunicator : public Communicator {
 public:
  /// Throws DistributedError naming the rank when another rank's failure
  /// notice has arrived; for a backend that waits on something else (a GPU
  /// stream) between its own polls.
  virtual void check_notices() = 0;
};

/// Initialises MPI (MPI_THREAD_SERIALIZED) unless it is already.
std::unique_ptr<HostCommunicator> make_mpi_communicator(const CommunicatorOptions& options);

}  // namespace contra::runtime
