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
};

LaunchInfo detect_launch();

}  // namespace contra::runtime
