// Internal: the worker machinery shared by ProcessPoolExecutor, Pool and Process.
//
// One manager thread per program (running while any pool exists) owns every worker's socket and
// pidfd in its own io_context, dispatches tasks and completes their futures. A PoolCore is
// one pool's state: its pending tasks (any thread may submit) and its workers (the manager
// thread's). Workers are started lazily, up to max_workers, by the pool's start method.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kettle/detail/process/wire.hpp"

namespace kettle::detail::proc {

enum class Method : std::uint8_t { fork, forkserver, spawn };
enum class CrashPolicy : std::uint8_t { replace_worker, break_pool };

// How a task's outcome reaches its future.
class Completer {
 public:
  virtual ~Completer() = default;
  virtual bool start() noexcept = 0;  // false: cancelled while pending, do not send
  // Reads a worker's reply, all of it, and completes the future; false (the future left
  // alone) if the reply is malformed: the worker is then not to be trusted.
  virtual bool succeed(Reader& in) noexcept = 0;
  virtual void fail(std::exception_ptr e) noexcept = 0;
  virtual void cancel() noexcept = 0;
};

struct Task {
  std::string frame;  // a whole task frame; the manager writes the id in it
  std::unique_ptr<Completer> completer;
  bool started = false;  // sent to a worker once (and requeued when that worker died)
  unsigned deaths = 0;   // workers that died with it sent but not started
};

struct PoolConfig {
  std::size_t max_workers = 1;
  Method method = Method::forkserver;
  CrashPolicy policy = CrashPolicy::replace_worker;
  unsigned max_tasks_per_child = 0;          // 0: no limit
  std::string init_frame;                    // the initializer's call frame, or empty
  std::string kind = "ProcessPoolExecutor";  // for messages
};

struct Worker;
struct ServerLink;

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(PoolConfig config);
  ~PoolCore();
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // Call once, right after construction, on the thread that owns the pool (the fork
  // method forks its server here). Throws RuntimeError when the method cannot work.
  void start();
  // From any thread. RuntimeError after shutdown, BrokenProcessPool once broken.
  void submit(Task task);
  void submit_all(std::vector<Task> tasks);
  // No new tasks; cancel_futures: pending ones are cancelled. wait: returns once every
  // worker has exited and been reaped (unless called from the manager thread).
  void shutdown(bool wait, bool cancel_futures);
  // Sends sig to every worker (through its pidfd); their tasks fail with BrokenProcessPool.
  // After shutdown(false, true): terminate_workers / kill_workers.
  void signal_workers(int sig);
  // Call last, from the owner's thread: lets the manager thread stop if no pool needs it.
  void release() noexcept;
  std::vector<int> worker_pids() const;
  std::size_t max_workers() const noexcept { return config_.max_workers; }

  // The manager thread's side.
  void dispatch() noexcept;
  // The worker has exited with this wait status (from its pidfd or its fork server).
  void worker_exited(Worker& w, int status) noexcept;
  // A fork server forked the worker: its pid, and a pidfd for it (ours to keep).
  void server_reported(Worker& w, int pid, int pidfd) noexcept;

 private:
  using Failures = std::vector<std::pair<std::unique_ptr<Completer>, std::exception_ptr>>;
  template <class Push>
  void enqueue(Push push);  // push() adds to pending_, unless the pool is shut down or broken
  void start_worker();
  void read_more(Worker* w);
  void flush(Worker* w);
  void watch_pid(Worker* w);
  void signal(Worker& w, int sig) noexcept;
  // Reads every whole frame the worker sent. One that breaks the protocol poisons the
  // worker: it is killed, and its task fails saying why.
  void consume(Worker& w) noexcept;
  void handle_frame(Worker& w, Reader& r, Failures& fails);
  void poison(Worker& w, const std::string& why) noexcept;
  void drain(Worker& w) noexcept;
  void maybe_gone(Worker& w) noexcept;
  void worker_gone(Worker& w) noexcept;
  void break_locked(const std::string& why, Failures& fails) noexcept;
  void post_dispatch();
  void finish() noexcept;

  PoolConfig config_;
  mutable std::mutex mutex_;
  std::condition_variable finished_cv_;
  std::deque<Task> pending_;      // guarded by mutex_
  std::string broken_;            // mutex_: why the pool is broken, if it is
  bool shutdown_ = false;         // mutex_
  int terminate_sig_ = 0;         // mutex_: the signal signal_workers sent, if it was called
  bool finished_ = false;         // mutex_: shut down and every worker reaped
  bool dispatch_posted_ = false;  // mutex_
  bool retained_ = false;
  std::vector<int> pids_;  // mutex_
  // The manager thread's (the vector itself is also read under mutex_):
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint64_t next_id_ = 1;
  unsigned startup_deaths_ = 0;  // workers in a row that died before they were ready
  double task_us_ = 1e18;        // a moving average of how long a task takes (µs); unknown: long
  std::shared_ptr<ServerLink> server_;
};

// In a worker process: the id of the task it is running (what its reply must carry).
std::uint64_t worker_task_id() noexcept;
// The shared fork server's pid, 0 if none runs.
int forkserver_pid() noexcept;

// Whether this program's main is wrapped (it is when linked with kettle::kettle), which
// spawn and forkserver need: a worker runs this program again and must not run main.
bool main_is_wrapped() noexcept;
// The number of CPUs this process may run on.
std::size_t usable_cpus() noexcept;

}  // namespace kettle::detail::proc
