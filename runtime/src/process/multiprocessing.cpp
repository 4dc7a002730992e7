#include "kettle/multiprocessing.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "../interrupts.hpp"

namespace kettle {

std::size_t cpu_count() noexcept {
  return detail::proc::usable_cpus();
}

namespace detail::proc {

std::string next_process_name() {
  static std::atomic<int> n{0};
  return "Process-" + std::to_string(++n);
}

bool is_crash(std::exception_ptr e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const BrokenProcessPool&) {
    return true;
  } catch (...) {
    return false;
  }
}

void report_process_error(const std::string& name, std::exception_ptr e) noexcept {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
  }
  std::fprintf(stderr, "Process %s: the target raised: %s\n", name.c_str(), what.c_str());
}

}  // namespace detail::proc

Process::~Process() {
  if (done_ && detail::run_interrupted) terminate();  // Ctrl-C: the parent decides
  if (done_) join();
}

void Process::start() {
  if (done_) throw RuntimeError("kettle: a Process can be started only once");
  pool_.emplace(ProcessPoolOptions{.max_workers = 1, .max_tasks_per_child = 1});
  done_ = launch_(*pool_, outcome_, name_);
}

bool Process::join(std::optional<std::chrono::duration<double>> timeout) {
  if (!done_) throw RuntimeError("kettle: cannot join a Process that was not started");
  try {
    done_->result(timeout);
  } catch (const TimeoutError&) {
    return false;
  }
  pool_->shutdown(true);  // the worker has exited and been reaped
  return true;
}

Coro<void> Process::wait() {
  if (!done_) throw RuntimeError("kettle: cannot wait for a Process that was not started");
  co_await *done_;
}

bool Process::is_alive() const {
  return done_ && !done_->done();
}

std::optional<int> Process::exitcode() const {
  if (!done_ || !done_->done()) return std::nullopt;
  if (signalled_) return -signalled_;  // terminate() or kill() stopped it
  std::exception_ptr e = *outcome_;
  if (!e) return 0;
  try {
    std::rethrow_exception(e);
  } catch (const WorkerCrashedError& c) {
    if (WIFSIGNALED(c.status())) return -WTERMSIG(c.status());
    if (WIFEXITED(c.status())) return WEXITSTATUS(c.status());
  } catch (...) {
  }
  return 1;
}

int Process::pid() const {
  if (!done_) return 0;
  // The worker's pid is known a moment after start (the fork server reports it).
  while (pid_ == 0 && !done_->done()) {
    auto pids = pool_->worker_pids();
    if (!pids.empty())
      pid_ = pids.front();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return pid_;
}

void Process::terminate() {
  if (!done_ || done_->done()) return;
  signalled_ = SIGTERM;
  pool_->terminate_workers();
}

void Process::kill() {
  if (!done_ || done_->done()) return;
  signalled_ = SIGKILL;
  pool_->kill_workers();
}

}  // namespace kettle
