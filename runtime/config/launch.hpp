#pragma once
// Whether this process was started as one of several ranks by a launcher
// (mpirun, srun), read from the environment the launcher sets, before any
// MPI library is loaded: what [distributed] backend = "auto" goes by, and
// what a rank says when it must refuse to run alone.

#include <string>

namespace contra::runtime {

struct LaunchInfo {
  std::string launcher;  ///< "mpirun", "srun", "pmi"; empty = started alone
  int size = 1;          ///< ranks the launcher started
  int rank = 0;          ///< this process's rank among them
  int local_size = 1;    ///< ranks on this machine
  int local_rank = 0;    ///< this process's rank among them
};

LaunchInfo detect_launch();

/// One GPU per rank: with several ranks on this machine and no
/// CUDA_VISIBLE_DEVICES from the launcher, shows this process the GPU of
/// its local rank only (before CUDA starts: the CUDA runtime reads it once).
void show_rank_its_gpu(const LaunchInfo& launch);

}  // namespace contra::runtime
