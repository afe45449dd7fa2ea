// The nccl backend: collectives on GPU memory over NCCL, for cuda pipelines
// launched by mpirun or srun, one rank per GPU. MPI bootstraps it (rank 0's
// ncclUniqueId broadcast to the others) and carries its host collectives and
// failure notices; NCCL carries the embeddings, gradients and buffers, queued
// on the calling thread's current stream (the train stream).
//
// A device collective is waited for by polling the stream, watching NCCL's
// asynchronous errors (ncclCommGetAsyncError), the other ranks' failure
// notices and the timeout: a failed or stuck collective aborts the NCCL
// communicator (ncclCommAbort) and stops the run instead of hanging.

#include "distributed/mpi/mpi_communicator.hpp"

#include <contra/cuda.hpp>

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace contra::runtime {
namespace {

ncclDataType_t nccl_type(CommType t) {
  switch (t) {
    case CommType::f32: return ncclFloat32;
    case CommType::f64: return ncclFloat64;
    case CommType::i64: return ncclInt64;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::mean: return ncclAvg;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const CommunicatorOptions& o) : host_(make_mpi_communicator(o)), timeout_s_(o.timeout_s) {
    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0)
      throw DistributedError("nccl: rank " + std::to_string(host_->rank()) + " sees no GPU (" +
                             (e != cudaSuccess ? cudaGetErrorString(e) : "no device") +
                             "); the nccl backend runs one rank per GPU");
    // One GPU per rank: `contra run` shows each rank its own
    // (CUDA_VISIBLE_DEVICES from the local rank) unless the launcher did.
    ncclUniqueId id;
    if (host_->rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_->broadcast(&id, sizeof id, 0);
    check(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()), "ncclCommInitRank");
  }

  const char* backend() const noexcept override { return "nccl"; }
  int rank() const noexcept override { return host_->rank(); }
  int size() const noexcept override { return host_->size(); }
  int local_rank() const noexcept override { return host_->local_rank(); }
  int local_size() const noexcept override { return host_->local_size(); }
  bool device_memory() const noexcept override { return true; }
  double collective_seconds() const noexcept override { return host_->collective_seconds() + seconds_; }
  void set_timeout(double s) noexcept override {
    timeout_s_ = s;
    host_->set_timeout(s);
  }

  void all_reduce(void* data, std::size_t count, CommType type, ReduceOp op, Memory where) override {
    if (where == Memory::host) return host_->all_reduce(data, count, type, op);
    check(ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), comm_, stream()), "ncclAllReduce");
    wait_stream("an all-reduce");
  }

  // On the GPU a started all-reduce is the stream's next work: queued and
  // waited for now, its handle already done.
  std::size_t start_all_reduce(void* data, std::size_t count, CommType type, ReduceOp op, Memory where) override {
    if (where == Memory::host) return host_->start_all_reduce(data, count, type, op) + 1;
    all_reduce(data, count, type, op, where);
    return 0;
  }
  bool test(std::size_t handle) override { return handle == 0 || host_->test(handle - 1); }
  void wait(std::size_t handle) override {
    if (handle != 0) host_->wait(handle - 1);
  }

  void all_gather(const void* mine, void* out, const std::vector<std::size_t>& bytes, Memory where) override {
    if (where == Memory::host) return host_->all_gather(mine, out, bytes);
    // Sizes differ by rank: one broadcast from each rank, grouped.
    check(ncclGroupStart(), "ncclGroupStart");
    std::size_t at = 0;
    for (std::size_t r = 0; r < bytes.size(); ++r) {
      void* into = static_cast<char*>(out) + at;
      const void* from = static_cast<int>(r) == rank() ? mine : into;
      if (bytes[r] > 0)
        check(ncclBroadcast(from, into, bytes[r], ncclUint8, static_cast<int>(r), comm_, stream()), "ncclBroadcast");
      at += bytes[r];
    }
    check(ncclGroupEnd(), "ncclGroupEnd");
    wait_stream("an all-gather");
  }

  void broadcast(void* data, std::size_t bytes, int root, Memory where) override {
    if (where == Memory::host) return host_->broadcast(data, bytes, root);
    check(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream()), "ncclBroadcast");
    wait_stream("a broadcast");
  }

  void barrier() override { host_->barrier(); }

  void notify_failure(const std::string& message) noexcept override { host_->notify_failure(message); }

  [[noreturn]] void exit_after_failure(int code, double grace_s) noexcept override {
    // Kernels of a collective the failure interrupted would wait for ever.
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    host_->exit_after_failure(code, grace_s);
    std::_Exit(code);  // not reached
  }

  void finalize() override {
    if (comm_) check(ncclCommDestroy(comm_), "ncclCommDestroy");
    comm_ = nullptr;
    host_->finalize();
  }

 private:
  static cudaStream_t stream() { return static_cast<cudaStream_t>(contra::cuda::current_stream()); }

  void check(ncclResult_t r, const char* call) {
    if (r != ncclSuccess && r != ncclInProgress)
      throw DistributedError(std::string("nccl: ") + call + " failed: " + ncclGetErrorString(r) + " (" +
                             (ncclGetLastError(comm_) ? ncclGetLastError(comm_) : "") + ")");
  }

  // Until the stream has done the collective just queued, watching NCCL's
  // errors, the other ranks' notices and the timeout.
  void wait_stream(const char* what) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto nap = std::chrono::microseconds(0);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream());
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady)
        throw DistributedError(std::string("nccl: the GPU failed in ") + what + ": " + cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        throw DistributedError(std::string("nccl: ") + what + " failed: " + ncclGetErrorString(async));
      }
      host_->check_notices();
      const double waited = std::chrono::duration<double>(clock::now() - t0).count();
      if (timeout_s_ > 0 && waited > timeout_s_) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        char figure[32];
        std::snprintf(figure, sizeof figure, "%.0f", waited);
        throw DistributedError("rank " + std::to_string(rank()) + " of " + std::to_string(size()) + " waited " +
                               figure + " s in " + what +
                               " on the GPU, longer than distributed.timeout_s allows (a rank is stuck or was lost)");
      }
      if (waited > 50e-6) {
        nap = std::min(std::chrono::microseconds(1000), nap + std::chrono::microseconds(20));
        std::this_thread::sleep_for(nap);
      }
    }
    seconds_ += std::chrono::duration<double>(clock::now() - t0).count();
  }

  std::unique_ptr<HostCommunicator> host_;
  ncclComm_t comm_ = nullptr;
  double timeout_s_;
  double seconds_ = 0;
};

}  // namespace
}  // namespace contra::runtime

extern "C" __attribute__((visibility("default"))) contra::runtime::Communicator* contra_create_communicator_v1(
    const contra::runtime::CommunicatorOptions& options) {
  return new contra::runtime::NcclCommunicator(options);
}
