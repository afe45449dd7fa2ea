#include "graph/data_parallel.hpp"

#include "config/settings.hpp"
#include "distributed/comm_library.hpp"
#include "config/launch.hpp"

#include <contra/errors.hpp>

namespace contra::runtime {

std::string resolved_backend(const PipelineSpec& spec) {
  const std::string backend = spec.distributed.get<std::string>("backend");
  if (backend != "auto") return backend;
  if (detect_launch().size <= 1) return "none";
  return pipeline_device(spec) == Device::cuda ? "nccl" : "mpi";
}

void check_distributed(const PipelineSpec& spec) {
  const std::string backend = resolved_backend(spec);
  const LaunchInfo launch = detect_launch();
  const SourceLocation where = spec.distributed.where("backend");
  auto at_key = [&](const std::string& message) {
    return spec.file + (where.line ? ":" + std::to_string(where.line) + ":" + std::to_string(where.column) : "") +
           ": distributed.backend: " + message;
  };
  if (backend == "none") {
    // Several processes each training alone would write one run R times.
    if (launch.size > 1)
      throw ConfigError(at_key("\"none\", but " + launch.launcher + " started this process as rank " +
                               std::to_string(launch.rank) + " of " + std::to_string(launch.size) +
                               "; use \"auto\" or \"mpi\" to train as " + std::to_string(launch.size) +
                               " data-parallel ranks, or start one process"));
    return;
  }
  if (!built_with_backend(backend)) throw ConfigError(at_key(missing_backend_reason(backend)));
}

Communicator* open_run_communicator(const PipelineSpec& spec) {
  check_distributed(spec);
  const std::string backend = resolved_backend(spec);
  if (backend == "none") return nullptr;
  return &open_communicator(backend, CommunicatorOptions{decode_settings(spec).distributed.timeout_s});
}

std::vector<RankFigures> gather_rank_figures(Communicator& comm, const RankFigures& mine) {
  static_assert(std::is_trivially_copyable_v<RankFigures>);
  std::vector<RankFigures> all(static_cast<std::size_t>(comm.size()));
  comm.all_gather(&mine, all.data(), std::vector<std::size_t>(all.size(), sizeof mine));
  return all;
}

}  // namespace contra::runtime
