// The mpi backend: collectives over MPI (Debian's OpenMPI), for CPU runs
// launched by mpirun (or srun, through PMIx). Built as its own library,
// libcontra_comm_mpi, loaded by the runtime only for a distributed run.
//
// Collectives are started non-blocking and waited for by polling, so that a
// wait can also watch for another rank's failure notice (point-to-point
// messages on a communicator of their own) and give up after the timeout:
// a failed rank then stops every rank with its message instead of leaving
// them blocked in MPI forever.

#include "distributed/mpi/mpi_communicator.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace contra::runtime {
namespace {

constexpr int failure_tag = 17;
constexpr std::size_t max_notice = 4000;  // bytes of a failure message sent to the others

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<std::size_t>(len));
}

MPI_Datatype mpi_type(CommType t) {
  switch (t) {
    case CommType::f32: return MPI_FLOAT;
    case CommType::f64: return MPI_DOUBLE;
    case CommType::i64: return MPI_INT64_T;
  }
  return MPI_BYTE;
}

class MpiCommunicator final : public HostCommunicator {
 public:
  explicit MpiCommunicator(const CommunicatorOptions& o) : timeout_s_(o.timeout_s) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      // Collectives come from the train stage's thread and from the main
      // thread, never at once.
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
      if (provided < MPI_THREAD_SERIALIZED)
        throw DistributedError("mpi: this MPI library gives thread level " + std::to_string(provided) +
                               ", contra needs MPI_THREAD_SERIALIZED");
    }
    // Errors come back as codes, said with their text, instead of aborting.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &data_), "MPI_Comm_dup");
    check(MPI_Comm_dup(MPI_COMM_WORLD, &control_), "MPI_Comm_dup");
    MPI_Comm_rank(data_, &rank_);
    MPI_Comm_size(data_, &size_);
    MPI_Comm node;
    check(MPI_Comm_split_type(data_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_size(node, &local_size_);
    MPI_Comm_free(&node);
  }

  const char* backend() const noexcept override { return "mpi"; }
  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  int local_rank() const noexcept override { return local_rank_; }
  int local_size() const noexcept override { return local_size_; }
  bool device_memory() const noexcept override { return false; }
  double collective_seconds() const noexcept override { return seconds_; }
  void set_timeout(double s) noexcept override { timeout_s_ = s; }

  void all_reduce(void* data, std::size_t count, CommType type, ReduceOp op, Memory where) override {
    host_only(where, "all_reduce");
    // MPI counts are ints: large buffers go in pieces.
    const std::size_t piece = std::size_t(1) << 28, width = comm_type_size(type);
    for (std::size_t at = 0; at < count; at += piece) {
      const int n = static_cast<int>(std::min(piece, count - at));
      MPI_Request r;
      check(MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(data) + at * width, n, mpi_type(type), mpi_op(op),
                           data_, &r),
            "MPI_Iallreduce");
      wait(r, "an all-reduce");
    }
    if (op == ReduceOp::mean) divide(data, count, type);
  }

  std::size_t start_all_reduce(void* data, std::size_t count, CommType type, ReduceOp op, Memory where) override {
    host_only(where, "start_all_reduce");
    if (op == ReduceOp::mean) throw DistributedError("mpi: a started all-reduce sums or takes the maximum");
    if (count > INT_MAX) throw DistributedError("mpi: a started all-reduce of " + std::to_string(count) + " values");
    std::size_t slot = 0;
    while (slot < started_.size() && started_[slot] != MPI_REQUEST_NULL) ++slot;
    if (slot == started_.size()) started_.push_back(MPI_REQUEST_NULL);
    check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), mpi_type(type), mpi_op(op), data_,
                         &started_[slot]),
          "MPI_Iallreduce");
    return slot;
  }

  bool test(std::size_t handle) override {
    int done = 0;
    check(MPI_Test(&started_.at(handle), &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;  // a finished request is MPI_REQUEST_NULL: its slot is free again
  }

  void wait(std::size_t handle) override {
    MPI_Request& r = started_.at(handle);
    if (r != MPI_REQUEST_NULL) wait(r, "an all-reduce started during the backward pass");
  }

  void all_gather(const void* mine, void* out, const std::vector<std::size_t>& bytes, Memory where) override {
    host_only(where, "all_gather");
    if (bytes.size() != static_cast<std::size_t>(size_))
      throw DistributedError("mpi: all_gather given " + std::to_string(bytes.size()) + " sizes for " +
                             std::to_string(size_) + " ranks");
    std::vector<int> counts(bytes.size()), offsets(bytes.size());
    std::size_t at = 0;
    for (std::size_t r = 0; r < bytes.size(); ++r) {
      if (bytes[r] > INT_MAX || at > INT_MAX)
        throw DistributedError("mpi: an all-gather of " + std::to_string(at + bytes[r]) +
                               " bytes is beyond MPI's int counts");
      counts[r] = static_cast<int>(bytes[r]);
      offsets[r] = static_cast<int>(at);
      at += bytes[r];
    }
    MPI_Request r;
    check(MPI_Iallgatherv(mine, counts[static_cast<std::size_t>(rank_)], MPI_BYTE, out, counts.data(),
                          offsets.data(), MPI_BYTE, data_, &r),
          "MPI_Iallgatherv");
    wait(r, "an all-gather");
  }

  void broadcast(void* data, std::size_t bytes, int root, Memory where) override {
    host_only(where, "broadcast");
    if (bytes > INT_MAX) throw DistributedError("mpi: a broadcast of " + std::to_string(bytes) + " bytes");
    MPI_Request r;
    check(MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, data_, &r), "MPI_Ibcast");
    wait(r, "a broadcast");
  }

  void barrier() override {
    MPI_Request r;
    check(MPI_Ibarrier(data_, &r), "MPI_Ibarrier");
    wait(r, "a barrier");
  }

  void notify_failure(const std::string& message) noexcept override {
    if (notified_) return;
    notified_ = true;
    notice_ = message.substr(0, max_notice);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Request req;
      // Never waited for: the process ends soon after, and a peer that
      // already left cannot take it.
      if (MPI_Isend(notice_.data(), static_cast<int>(notice_.size()), MPI_CHAR, r, failure_tag, control_, &req) ==
          MPI_SUCCESS)
        MPI_Request_free(&req);
    }
  }

  [[noreturn]] void exit_after_failure(int code, double grace_s) noexcept override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Request r;
    bool everyone = false;
    if (MPI_Ibarrier(control_, &r) == MPI_SUCCESS) {
      const auto t0 = std::chrono::steady_clock::now();
      int done = 0;
      while (!done && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < grace_s) {
        if (MPI_Test(&r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
        if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      everyone = done != 0;
    }
    // Every rank is here, its records written: leave without MPI_Finalize,
    // which could wait on the collective a failure interrupted. Otherwise a
    // rank is lost or stuck, and the launcher ends them all.
    if (!everyone) MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

  void finalize() override {
    barrier();
    MPI_Comm_free(&control_);
    MPI_Comm_free(&data_);
    MPI_Finalize();
  }

 void check_notices() override {
    int notice = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, failure_tag, control_, &notice, &st);
    if (!notice) return;
    int len = 0;
    MPI_Get_count(&st, MPI_CHAR, &len);
    std::string text(static_cast<std::size_t>(std::max(len, 0)), '\0');
    MPI_Recv(text.data(), len, MPI_CHAR, st.MPI_SOURCE, failure_tag, control_, MPI_STATUS_IGNORE);
    throw DistributedError("rank " + std::to_string(st.MPI_SOURCE) + " of " + std::to_string(size_) + " failed: " + text);
  }

 private:
  static MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::max ? MPI_MAX : MPI_SUM; }

  void divide(void* data, std::size_t count, CommType type) const {
    if (type == CommType::f32) {
      const float n = 1.0f / static_cast<float>(size_);
      for (std::size_t i = 0; i < count; ++i) static_cast<float*>(data)[i] *= n;
    } else if (type == CommType::f64) {
      const double n = 1.0 / size_;
      for (std::size_t i = 0; i < count; ++i) static_cast<double*>(data)[i] *= n;
    } else {
      throw DistributedError("mpi: a mean of integers");
    }
  }

  void host_only(Memory where, const char* call) const {
    if (where != Memory::host)
      throw DistributedError(std::string("mpi: ") + call + " on GPU memory: the mpi backend carries host memory");
  }

  void check(int code, const char* call) {
    if (code != MPI_SUCCESS) throw DistributedError(std::string("mpi: ") + call + " failed: " + mpi_error_text(code));
  }

  // Polls `r` to completion, watching for another rank's failure notice and
  // the timeout. Spins for the first 50 µs (a collective whose peers are
  // there), then sleeps in growing steps up to 1 ms: a rank that finished
  // its step first gives its core back to the others.
  void wait(MPI_Request& r, const char* what) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto nap = std::chrono::microseconds(0);
    for (;;) {
      int done = 0;
      check(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) break;
      try {
        check_notices();
      } catch (const DistributedError&) {
        // The collective cannot be cancelled; the process ends without it.
        seconds_ += std::chrono::duration<double>(clock::now() - t0).count();
        throw;
      }
      const double waited = std::chrono::duration<double>(clock::now() - t0).count();
      if (timeout_s_ > 0 && waited > timeout_s_) {
        seconds_ += waited;
        char figure[32];
        std::snprintf(figure, sizeof figure, "%.0f", waited);
        throw DistributedError("rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " waited " +
                               figure + " s in " + what +
                               " for the other ranks, longer than distributed.timeout_s allows (a rank is stuck "
                               "or was lost)");
      }
      if (waited > 50e-6) {
        nap = std::min(std::chrono::microseconds(1000), nap + std::chrono::microseconds(20));
        std::this_thread::sleep_for(nap);
      }
    }
    seconds_ += std::chrono::duration<double>(clock::now() - t0).count();
  }

  MPI_Comm data_ = MPI_COMM_NULL, control_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  double timeout_s_;
  double seconds_ = 0;
  bool notified_ = false;
  std::string notice_;
  std::vector<MPI_Request> started_;  // start_all_reduce()'s requests; MPI_REQUEST_NULL = free slot
};

}  // namespace

std::unique_ptr<HostCommunicator> make_mpi_communicator(const CommunicatorOptions& options) {
  return std::make_unique<MpiCommunicator>(options);
}

}  // namespace contra::runtime
