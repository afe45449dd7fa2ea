#include "config/launch.hpp"

#include <cstdlib>
#include <string>

namespace contra::runtime {
namespace {
// The variable as a positive count or a rank, or -1 when unset or not a number.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return *end == '\0' && n >= 0 && n < (1L << 30) ? static_cast<int>(n) : -1;
}
}  // namespace

LaunchInfo detect_launch() {
  LaunchInfo out;
  // OpenMPI's mpirun; Slurm's srun; a PMI launcher (MPICH's hydra, PMIx).
  struct Names {
    const char *launcher, *size, *rank, *local_size, *local_rank;
  };
  for (const Names& n :
       {Names{"mpirun", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
              "OMPI_COMM_WORLD_LOCAL_RANK"},
        Names{"srun", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_NTASKS_PER_NODE", "SLURM_LOCALID"},
        Names{"pmi", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS", "MPI_LOCALRANKID"}}) {
    const int size = env_int(n.size), rank = env_int(n.rank);
    if (size < 1 || rank < 0) continue;
    out.launcher = n.launcher;
    out.size = size;
    out.rank = rank;
    const int local = env_int(n.local_size);
    out.local_size = local >= 1 ? local : 1;
    const int local_rank = env_int(n.local_rank);
    out.local_rank = local_rank >= 0 ? local_rank : 0;
    return out;
  }
  return out;
}

void show_rank_its_gpu(const LaunchInfo& launch) {
  if (launch.local_size <= 1 || std::getenv("CUDA_VISIBLE_DEVICES")) return;
  setenv("CUDA_VISIBLE_DEVICES", std::to_string(launch.local_rank).c_str(), 0);
}

}  // namespace contra::runtime
