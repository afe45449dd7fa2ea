// Faults a run meets from outside: a SIGKILL at any point, a SIGTERM, a disk
// that refuses a checkpoint, a read-only run folder, two runs on one folder.
// Each runs the built `contra` in child processes (fork/exec) and checks what
// it leaves in its run folder and what it says; every child is killed and
// reaped when a check fails (Child's destructor).
//
// Already covered elsewhere, not repeated here:
//   test_cli.cpp         SIGINT exits 130 and SIGTERM 143 after a checkpoint (quickstart pipeline);
//   test_run_records.cpp in-process resume after a planned stop gives the same losses; a resume from
//                        an older periodic checkpoint keeps each step's record once (a cut line too);
//                        the folder lock, taken twice in one process, names the holder; a metrics
//                        write to /dev/full stops the run naming the file; a finished run resumes
//                        to nothing.
#include "test_support.hpp"
#include "train/safetensors.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using contra::test::read_file;
using contra::test::TempDir;

namespace {

// 32 steps (4 epochs of 8 batches) of a small ResNet with a projection head,
// a momentum queue, Adam and a cosine schedule: the state a resume must carry
// is all there. A checkpoint every 3 steps, the last 2 kept. prefetch = 8
// lets the train stage run ahead of the sink (the metrics writer).
const char* faults_pipeline = R"(
[pipeline]
name = "faults"
seed = 5
[runtime]
compute_threads = 1
prefetch = 8
[train]
epochs = 4
log_every = 1
[schedule]
kind = "cosine"
warmup_epochs = 1.0
[source]
plugin = "synthetic"
size = 128
height = 8
width = 8
[sampler]
plugin = "random"
batch_size = 16
[[augment.chain]]
plugin = "random_resized_crop"
size = 8
scale = [0.5, 1.0]
[encoder]
plugin = "seed_resnet"
width = 4
output = 8
[head]
plugin = "projection_head"
output = 8
[memory]
plugin = "queue"
size = 64
momentum = 0.9
[loss]
plugin = "info_nce"
[optimizer]
plugin = "adam"
[record]
checkpoint_every = 3
)";
constexpr int total_steps = 32;

const std::string contra_bin = std::string(CONTRA_BINARY_DIR) + "/bin/contra";

// ---------------------------------------------------------------- processes

struct Launch {
  std::vector<std::string> args;  ///< after "contra"
  std::string out, err;           ///< files for stdout and stderr ("" = /dev/null)
  int stdout_fd = -1;             ///< instead of `out`: this descriptor (a pipe's write end)
  rlim_t file_size_limit = RLIM_INFINITY;  ///< RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail with EFBIG
  std::vector<std::string> read_only;      ///< folders bind-mounted read-only in a mount namespace of its own
};

// Exit code a child uses when it could not set itself up (mount namespace).
constexpr int setup_failed = 125;

// A child process running contra; killed (SIGKILL) and reaped when it goes
// out of scope still running, so that a failed check leaves no stray process.
class Child {
 public:
  explicit Child(const Launch& l) {
    std::vector<std::string> args = {contra_bin};
    args.insert(args.end(), l.args.begin(), l.args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string out = l.out.empty() ? "/dev/null" : l.out, err = l.err.empty() ? "/dev/null" : l.err;
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // The child: system calls only, then exec.
      const int o = l.stdout_fd >= 0 ? l.stdout_fd : ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (o < 0 || e < 0) ::_exit(setup_failed);
      ::dup2(o, STDOUT_FILENO);
      ::dup2(e, STDERR_FILENO);
      if (l.file_size_limit != RLIM_INFINITY) {
        ::signal(SIGXFSZ, SIG_IGN);  // kept across exec: a write past the limit fails (EFBIG)
        const rlimit lim{l.file_size_limit, l.file_size_limit};
        if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(setup_failed);
      }
      if (!l.read_only.empty()) {
        auto fail = [](const char* what) {
          const char* why = std::strerror(errno);
          (void)!::write(STDERR_FILENO, what, std::strlen(what));
          (void)!::write(STDERR_FILENO, ": ", 2);
          (void)!::write(STDERR_FILENO, why, std::strlen(why));
          ::_exit(setup_failed);
        };
        if (::unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS)");
        // Private first: the mounts below must not reach the test's namespace.
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("mount --make-rprivate /");
        for (const std::string& dir : l.read_only) {
          if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) fail("mount --bind");
          if (::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0)
            fail("mount -o remount,bind,ro");
        }
      }
      ::execv(contra_bin.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !done_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const {
    if (!done_) ::kill(pid_, sig);
  }
  /// True once the child has ended (without waiting).
  bool ended() {
    if (done_) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) finish(st);
    return done_;
  }
  /// Waits for the end; at most `seconds`, then SIGKILL (a hung child fails the check, not the suite).
  void wait(double seconds = 60) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!ended()) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        finish(st);
        FAIL_CHECK("contra (pid " << pid_ << ") still running after " << seconds << " s: killed");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  /// The exit code; -1 when a signal ended it.
  int code() {
    wait();
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }
  /// The signal that ended it; 0 when it exited.
  int killed_by() {
    wait();
    return WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
  }

 private:
  void finish(int st) {
    status_ = st;
    done_ = true;
  }
  pid_t pid_ = -1;
  bool done_ = false;
  int status_ = 0;
};

// Runs contra to its end; returns its exit code (-1: killed by a signal).
int run_contra(const Launch& l) {
  Child c(l);
  return c.code();
}

// Polls `ready` every 200 us until it holds or `child` ends or `seconds` pass; true when it held.
template <class Pred> bool poll_until(Child& child, Pred ready, double seconds = 20) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (ready()) return true;
    if (child.ended()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return false;
}

// -------------------------------------------------------------- run folders

std::size_t count_lines(const std::string& path) {
  const std::string text = read_file(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

// metrics.jsonl's step records in file order as (step, record without its
// timing fields, as printed): bit-equal losses, learning rates and figures
// compare equal as text.
struct StepLine {
  long long step;
  std::string record;
  bool operator==(const StepLine& o) const { return step == o.step && record == o.record; }
};
std::ostream& operator<<(std::ostream& os, const StepLine& s) { return os << s.record; }

std::vector<StepLine> step_lines(const std::string& metrics) {
  const std::string text = read_file(metrics);
  CHECK(text.find('\0') == std::string::npos);
  static const std::regex timing(R"(, "images_per_s": [^,}]*, "time_s": [^,}]*)");
  static const std::regex step_no(R"(^\{"type": "step", "step": (\d+), )");
  std::vector<StepLine> out;
  for (const std::string& line : lines_of(metrics)) {
    INFO(metrics << ": " << line);
    CHECK((line.size() >= 2 && line.front() == '{' && line.back() == '}'));  // whole records only
    std::smatch m;
    if (!std::regex_search(line, m, step_no)) continue;
    out.push_back({std::stoll(m[1]), std::regex_replace(line, timing, "")});
  }
  return out;
}

// The step number in checkpoints/latest ("step-00000012.safetensors\n" -> 12), -1 when absent.
int latest_step(const std::string& run_dir) {
  const std::string text = read_file(run_dir + "/checkpoints/latest");
  static const std::regex name(R"(^step-(\d{8})\.safetensors\n$)");
  std::smatch m;
  if (!std::regex_match(text, m, name)) return -1;
  return std::stoi(m[1]);
}

// The step of the newest checkpoint file, whether `latest` names it or not; -1 when none.
int newest_checkpoint_file(const std::string& run_dir) {
  static const std::regex name(R"(^step-(\d{8})\.safetensors$)");
  int newest = -1;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(run_dir + "/checkpoints", ec)) {
    const std::string file = e.path().filename().string();
    std::smatch m;
    if (std::regex_match(file, m, name)) newest = std::max(newest, std::stoi(m[1]));
  }
  return newest;
}

std::string checkpoint_name(int step) {
  char name[48];
  std::snprintf(name, sizeof name, "step-%08d.safetensors", step);
  return name;
}

// Temporary files of atomic writes (NAME.tmp.PID.N) anywhere in the run folder.
std::vector<std::string> temporaries(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(run_dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
  return out;
}

// Every file and folder under `dir`: relative path -> mode and bytes ("<dir>" for folders).
std::map<std::string, std::string> snapshot(const std::string& dir, bool with_lock = true) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (!with_lock && e.path().filename() == ".lock") continue;
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    out[rel] = std::to_string(st.st_mode) + ":" + (e.is_directory() ? std::string("<dir>") : read_file(e.path()));
  }
  return out;
}

// The paths whose mode or bytes differ between two snapshots ("" when none).
std::string changed(const std::map<std::string, std::string>& before, const std::map<std::string, std::string>& after) {
  std::string out;
  for (const auto& [path, what] : before)
    if (!after.count(path)) out += path + " (removed) ";
    else if (after.at(path) != what) out += path + " (changed) ";
  for (const auto& [path, what] : after)
    if (!before.count(path)) out += path + " (added) ";
  return out;
}

// The two checkpoints hold the same tensors, bit for bit, after the same step.
void check_same_checkpoint(const std::string& a, const std::string& b) {
  INFO(a << " against " << b);
  const contra::runtime::SafetensorsFile x = contra::runtime::read_safetensors(a),
                                         y = contra::runtime::read_safetensors(b);
  CHECK(x.metadata.at("step") == y.metadata.at("step"));
  CHECK(x.metadata.at("epoch") == y.metadata.at("epoch"));
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (const auto& [name, t] : x.tensors) {
    INFO("tensor " << name);
    REQUIRE(y.tensors.count(name) == 1);
    const contra::Tensor& u = y.tensors.at(name);
    CHECK(t.dtype() == u.dtype());
    REQUIRE(t.shape() == u.shape());
    CHECK(std::memcmp(t.raw(), u.raw(), t.nbytes()) == 0);
  }
}

// The pipeline file and an uninterrupted run of it, made once for all the tests.
struct Reference {
  TempDir dir{"faults-reference"};
  std::string pipeline = dir.file("faults.toml");
  std::string run = dir.file("whole");
  std::vector<StepLine> steps;
  double seconds = 0;  ///< how long the run took, start-up included
  Reference() {
    contra::test::write_file(pipeline, faults_pipeline);
    const auto t0 = std::chrono::steady_clock::now();
    const int code = run_contra({{"run", pipeline, "--run-dir", run}, dir.file("out"), dir.file("err")});
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(read_file(dir.file("out")) << read_file(dir.file("err")));
    REQUIRE(code == 0);
    steps = step_lines(run + "/metrics.jsonl");
    REQUIRE(steps.size() == total_steps);
    REQUIRE(latest_step(run) == total_steps);
  }
  std::string final_checkpoint() const { return run + "/checkpoints/" + checkpoint_name(total_steps); }
};
const Reference& reference() {
  static Reference r;
  return r;
}

// `run_dir` finished as the uninterrupted run did: every step recorded once,
// in order, with the same figures, and the same final checkpoint.
void check_same_as_uninterrupted(const std::string& run_dir) {
  const Reference& ref = reference();
  const std::vector<StepLine> got = step_lines(run_dir + "/metrics.jsonl");
  std::map<long long, int> seen;
  for (const StepLine& s : got) seen[s.step]++;
  for (long long step = 1; step <= total_steps; ++step) {
    INFO("step " << step << " in " << run_dir << "/metrics.jsonl");
    CHECK(seen[step] == 1);
  }
  CHECK(got == ref.steps);
  REQUIRE(latest_step(run_dir) == total_steps);
  check_same_checkpoint(run_dir + "/checkpoints/" + checkpoint_name(total_steps), ref.final_checkpoint());
}

// The "stopped after step N" a stopped run prints; -1 when absent.
int stopped_after(const std::string& out) {
  static const std::regex stopped(R"(interrupted: stopped after step (\d+)\n)");
  std::smatch m;
  return std::regex_search(out, m, stopped) ? std::stoi(m[1]) : -1;
}

// A run of the faults pipeline in `run_dir`, stopped with SIGTERM once
// `lines` steps are in its metrics; returns the last step it trained.
int run_and_terminate(const std::string& run_dir, std::size_t lines, const std::string& out, const std::string& err) {
  const std::string metrics = run_dir + "/metrics.jsonl";
  Child c({{"run", reference().pipeline, "--run-dir", run_dir}, out, err});
  REQUIRE(poll_until(c, [&] { return count_lines(metrics) >= lines; }));
  c.signal(SIGTERM);
  INFO(read_file(out) << read_file(err));
  REQUIRE(c.code() == 143);
  const int last = stopped_after(read_file(out));
  REQUIRE(last >= static_cast<int>(lines));
  REQUIRE(last < total_steps);
  return last;
}

}  // namespace

TEST_CASE("faults: SIGKILL at seeded random points, then --resume, ends as the uninterrupted run", "[faults]") {
  const Reference& ref = reference();
  TempDir dir("faults-kill");
  std::mt19937 rng(20240607);
  int landed = 0;
  std::vector<std::string> left_over;
  for (int trial = 0; trial < 6; ++trial) {
    const std::string run_dir = dir.file("run" + std::to_string(trial));
    const std::string metrics = run_dir + "/metrics.jsonl";
    std::string log;  // what each launch did and said, shown when a check fails
    bool finished = false;
    // The first launch is killed; so, every other trial, is the first resume.
    for (int attempt = 0; !finished && attempt < 8; ++attempt) {
      const bool resume = latest_step(run_dir) > 0;
      const std::string out = dir.file("out"), err = dir.file("err");
      Launch l{resume ? std::vector<std::string>{"run", "--resume", run_dir}
                      : std::vector<std::string>{"run", ref.pipeline, "--run-dir", run_dir},
               out, err};
      const bool kill_it = attempt == 0 || (attempt == 1 && trial % 2 == 1);
      // Kill after the k-th metrics line of a fresh run, or after a random delay.
      const bool by_lines = !resume && trial % 3 != 2;
      const std::size_t k = std::uniform_int_distribution<std::size_t>(1, total_steps - 2)(rng);
      // Within the time a run takes (a resume has fewer steps to train).
      const double span_us = 1e6 * ref.seconds * (resume ? 0.6 : 0.9);
      const int delay_us = static_cast<int>(std::uniform_real_distribution<double>(0, span_us)(rng));
      Child c(l);
      if (kill_it) {
        if (by_lines) poll_until(c, [&] { return count_lines(metrics) >= k; });
        else std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
        c.signal(SIGKILL);
      }
      const int code = c.code(), sig = c.killed_by();
      std::string what = resume ? "--resume" : "run";
      if (kill_it) what += by_lines ? " killed after line " + std::to_string(k)
                                    : " killed after " + std::to_string(delay_us) + " us";
      log += what + ": exit " + std::to_string(code) + " signal " + std::to_string(sig) + ", latest step " +
             std::to_string(latest_step(run_dir)) + ", " + std::to_string(count_lines(metrics)) +
             " metrics lines\n" + read_file(err);
      if (sig == SIGKILL) {
        ++landed;
        continue;
      }
      INFO(log << read_file(out));
      REQUIRE(code == 0);
      finished = true;
    }
    INFO("trial " << trial << ":\n" << log);
    REQUIRE(finished);
    check_same_as_uninterrupted(run_dir);
    for (const std::string& t : temporaries(run_dir)) left_over.push_back(t);
  }
  // Most kills land while the run is going (one after a delay may come after
  // the run's end); those after a metrics line (4) always do.
  CHECK(landed >= 5);
  if (!left_over.empty()) {
    std::string names;
    for (const auto& t : left_over) names += "\n  " + t;
    WARN("temporary files left by killed writers (never removed by a resume):" << names);
  }
}

TEST_CASE("faults: a run killed while its metrics lag behind checkpoints/latest resumes with every step recorded",
          "[faults]") {
  // The sink writes a step's metrics line after the train stage has written
  // that step's checkpoint. Blocking the sink (its progress line goes to a
  // full pipe) lets the train stage write checkpoints the metrics have not
  // reached; `latest` must not name them, or a SIGKILL then loses the steps
  // between the metrics and `latest` for good.
  const Reference& ref = reference();
  TempDir dir("faults-lag");
  const std::string run_dir = dir.file("run"), metrics = run_dir + "/metrics.jsonl";
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  struct Closer {
    int* fds;
    ~Closer() {
      if (fds[0] >= 0) ::close(fds[0]);
      if (fds[1] >= 0) ::close(fds[1]);
    }
  } closer{fds};
  int lines_at_kill = -1, latest_at_kill = -1;
  {
    Child c({{"run", ref.pipeline, "--run-dir", run_dir}, "", dir.file("err"), fds[1]});
    // Read its output until a checkpoint is recorded (metrics past step 3),
    // then fill the pipe through a descriptor of our own (non-blocking; the
    // child's stays blocking).
    std::string text;
    char buf[4096];
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (step_lines(metrics).size() < 4) {
      INFO(text << read_file(dir.file("err")));
      REQUIRE(!c.ended());
      REQUIRE(std::chrono::steady_clock::now() < until);
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 1) <= 0) continue;
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      REQUIRE(n > 0);
      text.append(buf, static_cast<std::size_t>(n));
    }
    const int filler = ::open(("/proc/self/fd/" + std::to_string(fds[1])).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(filler >= 0);
    const std::string block(4096, 'x');
    while (::write(filler, block.data(), block.size()) > 0) {
    }
    while (::write(filler, "x", 1) > 0) {
    }
    ::close(filler);
    // The train stage goes on up to prefetch (8) steps past the blocked sink,
    // writing checkpoint files.
    poll_until(c, [&] { return newest_checkpoint_file(run_dir) > static_cast<int>(step_lines(metrics).size()); }, 5);
    lines_at_kill = static_cast<int>(step_lines(metrics).size());
    latest_at_kill = latest_step(run_dir);
    c.signal(SIGKILL);
    c.wait();
  }
  INFO("killed with " << lines_at_kill << " steps in metrics.jsonl and checkpoints/latest at step " << latest_at_kill);
  REQUIRE(latest_at_kill >= 3);
  CHECK(latest_at_kill <= lines_at_kill);
  const int code = run_contra({{"run", "--resume", run_dir}, dir.file("out"), dir.file("err")});
  INFO(read_file(dir.file("out")) << read_file(dir.file("err")));
  REQUIRE(code == 0);
  check_same_as_uninterrupted(run_dir);
}

TEST_CASE("faults: SIGTERM mid-run exits 143 with a checkpoint of the last step trained, and --resume ends as "
          "the uninterrupted run",
          "[faults]") {
  const Reference& ref = reference();
  TempDir dir("faults-term");
  const std::string run_dir = dir.file("run");
  const int last = run_and_terminate(run_dir, 10, dir.file("out"), dir.file("err"));
  INFO("stopped after step " << last);
  CHECK(read_file(dir.file("err")).empty());
  // The final checkpoint is of the last step trained, and every step up to it is recorded.
  CHECK(latest_step(run_dir) == last);
  const auto ck = contra::runtime::read_safetensors(run_dir + "/checkpoints/" + checkpoint_name(last));
  CHECK(ck.metadata.at("step") == std::to_string(last - 1));
  const std::vector<StepLine> before = step_lines(run_dir + "/metrics.jsonl");
  CHECK(before == std::vector<StepLine>(ref.steps.begin(), ref.steps.begin() + last));
  CHECK_THAT(read_file(run_dir + "/summary.json"), Catch::Contains("\"steps\": " + std::to_string(last) + ","));
  CHECK(temporaries(run_dir).empty());

  const int code = run_contra({{"run", "--resume", run_dir}, dir.file("out"), dir.file("err")});
  const std::string out = read_file(dir.file("out"));
  INFO(out << read_file(dir.file("err")));
  REQUIRE(code == 0);
  CHECK_THAT(out, Catch::Contains("  resuming from " + run_dir + "/checkpoints/" + checkpoint_name(last) + "\n"));
  CHECK_THAT(out, Catch::Contains("step " + std::to_string(last + 1) + "/32 "));
  CHECK_THAT(out, !Catch::Contains("step " + std::to_string(last) + "/32 "));
  check_same_as_uninterrupted(run_dir);
  const std::string summary = read_file(run_dir + "/summary.json");
  CHECK_THAT(summary, Catch::Contains("\"steps\": " + std::to_string(total_steps - last) + ","));
  CHECK_THAT(summary, Catch::Contains("\"first_step\": " + std::to_string(last) + ","));
}

TEST_CASE("faults: a full disk at a checkpoint stops the run naming the file, latest keeps the previous one, "
          "and --resume continues from it",
          "[faults]") {
  TempDir dir("faults-full");
  const std::string run_dir = dir.file("run");
  const std::string out = dir.file("out"), err = dir.file("err");
  // A good checkpoint first: a run stopped by SIGTERM after step `good`.
  const int good = run_and_terminate(run_dir, 7, out, err);
  REQUIRE(good < 30);
  INFO("stopped after step " << good);
  REQUIRE(latest_step(run_dir) == good);

  // A resume that cannot even rewrite metrics.jsonl (1 KiB at most a file):
  // refused before training, the folder as it was.
  {
    const auto before = snapshot(run_dir, false);
    Child c({{"run", "--resume", run_dir}, out, err, -1, 1024});
    const int code = c.code();
    const std::string message = read_file(err);
    INFO(read_file(out) << message);
    CHECK(code == 1);
    CHECK_THAT(message, Catch::StartsWith("cannot write " + run_dir + "/metrics.jsonl.tmp." + std::to_string(c.pid()) + "."));
    CHECK_THAT(message, Catch::EndsWith(": File too large\n"));
    CHECK(std::count(message.begin(), message.end(), '\n') == 1);
    CHECK(changed(before, snapshot(run_dir, false)) == "");
    CHECK(temporaries(run_dir).empty());
  }

  // A resume whose next checkpoint (37 KiB) outgrows 32 KiB a file, while
  // metrics.jsonl (~0.5 KiB a step) stays below it.
  const int failing = std::min(total_steps, (good / 3 + 1) * 3);  // the next checkpoint's step
  {
    Child c({{"run", "--resume", run_dir}, out, err, -1, 32 * 1024});
    const int code = c.code();
    const std::string message = read_file(err);
    INFO(read_file(out) << message);
    CHECK(code == 1);
    // Written by the train stage every 3 steps, or at the end.
    const std::string where = failing % 3 == 0 ? "train stage (step " + std::to_string(failing - 1) + "): " : "";
    CHECK_THAT(message, Catch::StartsWith(where + "cannot write " + run_dir + "/checkpoints/" + checkpoint_name(failing) +
                                          ".tmp." + std::to_string(c.pid()) + "."));
    CHECK_THAT(message, Catch::EndsWith(": File too large\n"));
    CHECK(std::count(message.begin(), message.end(), '\n') == 1);
    // Nothing half-written; latest still names the good checkpoint, which is whole.
    CHECK(temporaries(run_dir).empty());
    CHECK(!fs::exists(run_dir + "/checkpoints/" + checkpoint_name(failing)));
    CHECK(latest_step(run_dir) == good);
    CHECK(contra::runtime::read_safetensors(run_dir + "/checkpoints/" + checkpoint_name(good)).metadata.at("step") ==
          std::to_string(good - 1));
    const std::string summary = read_file(run_dir + "/summary.json");
    CHECK_THAT(summary, Catch::Contains("\"error\": \""));
    CHECK_THAT(summary, Catch::Contains("File too large"));
  }

  // With room again, --resume continues from the good checkpoint.
  const int code = run_contra({{"run", "--resume", run_dir}, out, err});
  INFO(read_file(out) << read_file(err));
  REQUIRE(code == 0);
  CHECK_THAT(read_file(out), Catch::Contains("  resuming from " + run_dir + "/checkpoints/" + checkpoint_name(good) + "\n"));
  check_same_as_uninterrupted(run_dir);
  CHECK(temporaries(run_dir).empty());
}

TEST_CASE("faults: a read-only run folder, or folder of run folders, is refused naming it and the reason, and "
          "nothing changes",
          "[faults]") {
  const Reference& ref = reference();
  TempDir dir("faults-ro");
  const std::string runs = dir.file("runs"), run_dir = runs + "/run";
  const std::string out = dir.file("out"), err = dir.file("err");
  // An interrupted run: one a --resume would continue.
  const int last = run_and_terminate(run_dir, 5, out, err);
  INFO("stopped after step " << last);
  const bool root = ::geteuid() == 0;
  // Root ignores permission bits: a read-only bind mount in a mount
  // namespace of the child's own instead.
  std::vector<std::string> read_only;
  if (root) read_only = {runs};
  else fs::permissions(runs, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                 fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  if (!root) fs::permissions(run_dir, fs::status(runs).permissions());
  struct Restore {
    std::string a, b;
    ~Restore() {
      std::error_code ec;
      fs::permissions(a, fs::perms::owner_all, fs::perm_options::add, ec);
      fs::permissions(b, fs::perms::owner_all, fs::perm_options::add, ec);
    }
  } restore{runs, run_dir};
  const std::string reason = root ? "Read-only file system" : "Permission denied";
  // Without root the folder's .lock stays writable (0644, its owner's): the
  // refused run takes the lock, writing its holder there, and fails at its
  // first new file (a temporary file, named in the message). Root's
  // read-only mount refuses the lock itself.
  const auto before = snapshot(runs, root);
  auto check_refusal = [&](const std::string& message, const std::string& expected, const std::string& folder) {
    if (root) {
      CHECK(message == expected);
      return;
    }
    CHECK_THAT(message, Catch::StartsWith("cannot "));
    CHECK_THAT(message, Catch::Contains(folder + "/"));
    CHECK_THAT(message, Catch::EndsWith(": " + reason + "\n"));
    CHECK(std::count(message.begin(), message.end(), '\n') == 1);
  };

  auto refused = [&](const std::vector<std::string>& args) {
    Child c({args, out, err, -1, RLIM_INFINITY, read_only});
    const int code = c.code();
    return std::pair<int, std::string>{code, read_file(err)};
  };
  {
    const auto [code, message] = refused({"run", "--resume", run_dir});
    if (code == setup_failed) {
      WARN("SKIPPED: no read-only bind mount for root here (" << message << ")");
      return;
    }
    INFO(read_file(out));
    CHECK(code == 1);
    check_refusal(message, "cannot open " + run_dir + "/.lock: " + reason + "\n", run_dir);
  }
  {
    const auto [code, message] = refused({"run", ref.pipeline, "--run-dir", run_dir});
    INFO(read_file(out));
    CHECK(code == 1);
    check_refusal(message, "cannot open " + run_dir + "/.lock: " + reason + "\n", run_dir);
  }
  {
    const auto [code, message] = refused({"run", ref.pipeline, "--run-dir", runs + "/new"});
    INFO(read_file(out));
    CHECK(code == 1);
    check_refusal(message, "cannot create the run folder " + runs + "/new: " + reason + "\n", runs);
  }
  {
    const auto [code, message] = refused({"run", ref.pipeline, "--set", "record.dir=\"" + runs + "\""});
    INFO(read_file(out));
    CHECK(code == 1);
    CHECK_THAT(message, Catch::StartsWith("cannot create the run folder " + runs + "/faults-"));
    CHECK_THAT(message, Catch::EndsWith(": " + reason + "\n"));
    CHECK(std::count(message.begin(), message.end(), '\n') == 1);
  }
  CHECK(changed(before, snapshot(runs, root)) == "");
}

TEST_CASE("faults: two runs started together on one folder: one trains, the other is refused naming it, and so "
          "is a --resume meanwhile",
          "[faults]") {
  const Reference& ref = reference();
  TempDir dir("faults-two");
  const std::string run_dir = dir.file("run");
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  // 60 epochs (480 steps, a few seconds): the first still trains when the
  // second starts. A checkpoint each step, the last one kept: the one
  // `latest` names is soon replaced.
  const std::vector<std::string> args = {"run", ref.pipeline, "--run-dir", run_dir, "--set", "train.epochs=60",
                                         "--set", "record.checkpoint_every=1", "--set", "record.keep=1"};
  Child a({args, dir.file("a.out"), dir.file("a.err")});
  Child b({args, dir.file("b.out"), dir.file("b.err")});
  // The refused one ends within its start-up; the other trains on.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!a.ended() && !b.ended() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE((a.ended() || b.ended()));
  Child& loser = a.ended() ? a : b;
  Child& winner = a.ended() ? b : a;
  const std::string loser_name = &loser == &a ? "a" : "b", winner_name = &winner == &a ? "a" : "b";
  INFO("refused: " << read_file(dir.file(loser_name + ".out")) << read_file(dir.file(loser_name + ".err")));
  INFO("training: " << read_file(dir.file(winner_name + ".out")) << read_file(dir.file(winner_name + ".err")));
  REQUIRE(!winner.ended());
  CHECK(loser.code() == 1);
  const std::string holder = "pid " + std::to_string(winner.pid()) + " on " + host + ", since ";
  const std::string refusal = read_file(dir.file(loser_name + ".err"));
  CHECK_THAT(refusal, Catch::StartsWith(run_dir + ": the run folder is in use by another run (" + holder));
  CHECK_THAT(refusal, Catch::EndsWith("); wait for it to end, or give another --run-dir\n"));
  CHECK(std::count(refusal.begin(), refusal.end(), '\n') == 1);
  CHECK_THAT(read_file(dir.file(loser_name + ".out")), !Catch::Contains("step 1/"));

  // A --resume while it trains: refused alike (not failing on a checkpoint
  // the training run has replaced meanwhile).
  REQUIRE(poll_until(winner, [&] { return latest_step(run_dir) > 0; }));
  {
    Child c({{"run", "--resume", run_dir}, dir.file("c.out"), dir.file("c.err")});
    const int code = c.code();
    const std::string message = read_file(dir.file("c.err"));
    INFO(read_file(dir.file("c.out")) << message);
    CHECK(code == 1);
    CHECK_THAT(message, Catch::StartsWith(run_dir + ": the run folder is in use by another run (" + holder));
    CHECK_THAT(message, Catch::EndsWith("); wait for it to end, or give another --run-dir\n"));
  }
  REQUIRE(!winner.ended());
  winner.signal(SIGTERM);
  REQUIRE(winner.code() == 143);
  const int last = stopped_after(read_file(dir.file(winner_name + ".out")));
  REQUIRE(last > 0);

  // The folder is the one run's: its pipeline, its overrides, its steps once each in order, its checkpoint.
  CHECK_THAT(read_file(run_dir + "/pipeline.toml"), Catch::StartsWith("# Resolved from " + ref.pipeline + " by contra "));
  CHECK_THAT(read_file(run_dir + "/pipeline.toml"), Catch::Contains("epochs = 60"));
  CHECK_THAT(read_file(run_dir + "/run.json"),
             Catch::Contains("\"overrides\": [\"train.epochs=60\", \"record.checkpoint_every=1\", \"record.keep=1\"]"));
  CHECK(read_file(run_dir + "/run.json").find('\0') == std::string::npos);
  const std::vector<StepLine> steps = step_lines(run_dir + "/metrics.jsonl");
  REQUIRE(steps.size() == static_cast<std::size_t>(last));
  for (int i = 0; i < last; ++i) CHECK(steps[static_cast<std::size_t>(i)].step == i + 1);
  CHECK(latest_step(run_dir) == last);
  CHECK_THAT(read_file(run_dir + "/.lock"), Catch::StartsWith(holder));
  CHECK_THAT(read_file(run_dir + "/summary.json"), Catch::Contains("\"steps\": " + std::to_string(last) + ","));
  CHECK(temporaries(run_dir).empty());
}
