#pragma once
// The collectives data-parallel ranks meet in, behind one interface: what a
// backend library (libcontra_comm_mpi, libcontra_comm_nccl) implements, and
// all the runtime sees of MPI or NCCL. The runtime loads a backend with
// dlopen only for a distributed run (comm_library.hpp), so a build without
// MPI or NCCL still builds, and a single-process run maps neither.
//
// Every collective blocks until all ranks have joined it, for at most the
// timeout the backend was opened with; a rank that failed tells the others
// (notify_failure()), and their collective then ends with its message
// instead of waiting for a rank that will never come.

#include <contra/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace contra::runtime {

/// Another rank failed, or a collective timed out: the run stops on every rank.
class DistributedError : public Error {
 public:
  using Error::Error;
};

enum class CommType : std::uint8_t { f32, f64, i64 };
/// mean: the sum divided by the number of ranks (f32 and f64 only).
enum class ReduceOp : std::uint8_t { sum, max, mean };
/// Where a collective's buffers are: host memory, or the GPU's (a backend
/// with device_memory(); its collectives are queued on the calling thread's
/// current CUDA stream, contra::cuda::current_stream(), and waited for).
enum class Memory : std::uint8_t { host, device };

std::size_t comm_type_size(CommType t) noexcept;

/// What a backend is opened with.
struct CommunicatorOptions {
  /// A collective waiting longer than this for the other ranks fails (a
  /// rank that hangs or died without its launcher noticing); 0 = never.
  double timeout_s = 600;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual const char* backend() const noexcept = 0;
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  /// Rank and count of the ranks on this machine (one per GPU with nccl).
  virtual int local_rank() const noexcept = 0;
  virtual int local_size() const noexcept = 0;

  /// In place, the same result on every rank.
  virtual void all_reduce(void* data, std::size_t count, CommType type, ReduceOp op,
                          Memory where = Memory::host) = 0;
  /// The same, started: `data` must stay untouched until wait() on the
  /// handle returns. Ranks start their collectives in the same order.
  virtual std::size_t start_all_reduce(void* data, std::size_t count, CommType type, ReduceOp op,
                                       Memory where = Memory::host) = 0;
  /// Lets started collectives progress; true once `handle`'s is done.
  virtual bool test(std::size_t handle) = 0;
  /// Until `handle`'s collective is done (the timeout and failure notices
  /// apply as to a blocking one); the handle is then released.
  virtual void wait(std::size_t handle) = 0;
  /// Rank r's `bytes[r]` bytes, in rank order, into `out` (the sum of
  /// `bytes`); `mine` holds bytes[rank()] bytes.
  virtual void all_gather(const void* mine, void* out, const std::vector<std::size_t>& bytes,
                          Memory where = Memory::host) = 0;
  virtual void broadcast(void* data, std::size_t bytes, int root, Memory where = Memory::host) = 0;
  virtual void barrier() = 0;
  /// Whether the collectives take Memory::device buffers.
  virtual bool device_memory() const noexcept = 0;

  /// Tells every other rank that this one failed with `message`: their
  /// collectives end with it. Never throws; safe to call more than once.
  virtual void notify_failure(const std::string& message) noexcept = 0;
  /// After a failure: waits up to `grace_s` for every rank to come here (so
  /// that rank 0 has written its records), then ends the process with
  /// `code` (through the launcher's abort where a rank did not come).
  [[noreturn]] virtual void exit_after_failure(int code, double grace_s) noexcept = 0;
  /// Seconds this rank spent inside collectives (waiting for others included).
  virtual double collective_seconds() const noexcept = 0;
  virtual void set_timeout(double seconds) noexcept = 0;
  /// The normal end, on every rank: a barrier, then the launcher's library
  /// is shut down (MPI_Finalize). Nothing may be called afterwards.
  virtual void finalize() = 0;
};

/// What a backend library exports (extern "C", named by
/// CONTRA_COMMUNICATOR_SYMBOL): creates the communicator of this process,
/// initialising its launcher's library (MPI_Init_thread); called once per
/// process (comm_library.hpp keeps it). Throws
/// DistributedError when the process was not started by a launcher it knows.
using CreateCommunicator = Communicator* (*)(const CommunicatorOptions&);
/// Changes whenever this header does: a backend library from another build is refused.
#define CONTRA_COMMUNICATOR_SYMBOL "contra_create_communicator_v1"

inline std::size_t comm_type_size(CommType t) noexcept {
  return t == CommType::f32 ? 4 : 8;
}

}  // namespace contra::runtime
