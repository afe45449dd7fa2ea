// libcontra_comm_mpi's entry point (communicator.hpp).
#include "distributed/mpi/mpi_communicator.hpp"

extern "C" __attribute__((visibility("default"))) contra::runtime::Communicator* contra_create_communicator_v1(
    const contra::runtime::CommunicatorOptions& options) {
  return contra::runtime::make_mpi_communicator(options).release();
}
