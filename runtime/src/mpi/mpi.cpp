// kettle::mpi: the executor (a manager thread on the root, a serve loop on each worker), the
// launch hook that turns mpiexec's other ranks into workers, and the loop's request poller.
//
// Messages between the root and a worker travel on a communicator of kettle's own (a
// duplicate of MPI_COMM_WORLD, or of MPICommExecutor's comm), tagged:
//   kTagInit    root -> worker: u64 executor id, then the initializer's call frame (or none)
//   kTagReady   worker -> root: u64 executor id, u8 ok, then (ok) host and pid, or an error
//   kTagTasks   root -> worker: u64 executor id, then task frames (process pools' format)
//   kTagResults worker -> root: u64 executor id, then one result or error frame per task
//   kTagStop    root -> worker: stop serving (the program ends, or MPICommExecutor's does)
// A worker runs the frames of a message in order and replies to each message with one, so
// the root knows which tasks each worker holds: the replies must come back in that order,
// and anything else (a reply for no task, a malformed frame) breaks the executor.
#include "kettle/mpi.hpp"

#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "kettle/detail/loop_core.hpp"
#include "kettle/event_loop.hpp"

extern "C" {
[[gnu::weak]] extern const int kettle_mpi_spmd_main;
}

namespace kettle::mpi {

namespace proc = kettle::detail::proc;

MPIError::MPIError(const char* call, int code)
    : Error([&] {
        char text[MPI_MAX_ERROR_STRING];
        int n = 0;
        if (MPI_Error_string(code, text, &n) != MPI_SUCCESS) n = 0;
        return std::string("kettle::mpi: ") + call + " failed: " +
               (n > 0 ? std::string(text, static_cast<std::size_t>(n))
                      : "MPI error " + std::to_string(code));
      }()),
      code_(code) {}

namespace detail {

void check(const char* call, int rc) {
  if (rc != MPI_SUCCESS) throw MPIError(call, rc);
}

int checked_count(std::size_t bytes) {
  if (bytes > static_cast<std::size_t>(INT_MAX))
    throw ValueError("kettle::mpi: a message of " + std::to_string(bytes) +
                     " bytes is larger than MPI's int count allows (INT_MAX bytes): split it");
  return static_cast<int>(bytes);
}

int count_bytes(const MPI_Status& s) {
  int n = 0;
  check("MPI_Get_count", MPI_Get_count(&s, MPI_BYTE, &n));
  if (n == MPI_UNDEFINED || n < 0) throw ValueError("kettle::mpi: a message of undefined size");
  return n;
}

void wrong_size(int got, std::size_t element, const char* what) {
  throw ValueError("kettle::mpi: received " + std::to_string(got) + " bytes, which is not " + what +
                   " (" + std::to_string(element) + " bytes each): the sender sent another type");
}

void decode_failed(const char* what) {
  throw ValueError(std::string("kettle::mpi: a received value does not read as this type (") +
                   what + "): the sender sent another type");
}

namespace {

// Waits while nothing happens without burning a core: a few yields, then sleeps that double
// from 1 µs to 1 ms (mpi4py's and HPX's pollers back off the same way).
class Backoff {
 public:
  void reset() noexcept { idle_ = 0; }
  // How long to wait now (and counts one more idle round); 0: just yield.
  std::chrono::nanoseconds next() noexcept {
    unsigned i = idle_++;
    if (i < 16) return std::chrono::nanoseconds(0);
    unsigned shift = std::min(i - 16, 10u);
    return std::min(std::chrono::nanoseconds(1000ll << shift), std::chrono::nanoseconds(1000000));
  }
  void idle() noexcept {
    auto d = next();
    if (d.count() == 0)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(d);
  }

 private:
  unsigned idle_ = 0;
};

// Short sleeps mean short sleeps (the default timer slack is 50 µs).
void tight_timers() noexcept {
  ::prctl(PR_SET_TIMERSLACK, 1UL);
}

constexpr int kTagInit = 0x6b01;
constexpr int kTagReady = 0x6b02;
constexpr int kTagTasks = 0x6b03;
constexpr int kTagResults = 0x6b04;
constexpr int kTagStop = 0x6b05;

// Sends and waits with backoff (MPI_Send may spin while the receiver is slow). With
// `stop_from` (a worker replying to the root), a stop message from that rank ends the wait:
// the root no longer takes replies, so the send is withdrawn; returns false then.
bool send_polled(const std::string& bytes, int dest, int tag, MPI_Comm comm, int stop_from = -1) {
  MPI_Request req;
  check("MPI_Isend",
        MPI_Isend(bytes.data(), checked_count(bytes.size()), MPI_BYTE, dest, tag, comm, &req));
  Backoff b;
  for (;;) {
    int done = 0;
    check("MPI_Test", MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return true;
    if (stop_from >= 0) {
      int stop = 0;
      MPI_Status st;
      check("MPI_Iprobe", MPI_Iprobe(stop_from, kTagStop, comm, &stop, &st));
      if (stop) {
        MPI_Cancel(&req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);  // cancelled or done: either way at once
        return false;
      }
    }
    b.idle();
  }
}

// Receives the next message from `source` (any tag), polling with backoff.
std::string receive_polled(int source, MPI_Comm comm, MPI_Status& st) {
  Backoff b;
  for (;;) {
    int flag = 0;
    MPI_Message msg;
    check("MPI_Improbe", MPI_Improbe(source, MPI_ANY_TAG, comm, &flag, &msg, &st));
    if (flag) {
      int n = count_bytes(st);
      std::string buf(static_cast<std::size_t>(n), '\0');
      check("MPI_Mrecv", MPI_Mrecv(buf.data(), n, MPI_BYTE, &msg, MPI_STATUS_IGNORE));
      return buf;
    }
    b.idle();
  }
}

std::string host_name() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int n = 0;
  if (MPI_Get_processor_name(name, &n) != MPI_SUCCESS || n <= 0) return "?";
  return std::string(name, static_cast<std::size_t>(n));
}

// A worker's loop: serves the root's executors on comm until told to stop.
void serve(MPI_Comm comm, int root) {
  tight_timers();
  for (;;) {
    MPI_Status st;
    std::string msg = receive_polled(root, comm, st);
    if (st.MPI_TAG == kTagStop) return;
    proc::Reader r(msg.data(), msg.size());
    std::string out;
    proc::Writer w(out);
    std::uint64_t exec = r.u64();
    w.u64(exec);
    if (st.MPI_TAG == kTagInit) {
      bool ok = true;
      if (r.left() > 0) {
        r.skip(4);  // the frame's length
        auto kind = static_cast<proc::MessageKind>(r.u8());
        std::string reply;
        proc::run_call(r, kind, reply);
        proc::Reader rr(reply.data(), reply.size());
        rr.skip(4);
        if (static_cast<proc::MessageKind>(rr.u8()) != proc::MessageKind::result) {
          ok = false;
          w.u8(0);
          rr.u64();
          out.append(rr.data(), rr.left());  // the error
        }
      }
      if (ok) {
        w.u8(1);
        w.str(host_name());
        w.i32(static_cast<std::int32_t>(::getpid()));
      }
      if (!send_polled(out, root, kTagReady, comm, root)) continue;  // the stop is next
    } else if (st.MPI_TAG == kTagTasks) {
      while (r.left() > 0) {
        std::uint32_t len = r.u32();
        proc::Reader fr(r.take(len), len);
        auto kind = static_cast<proc::MessageKind>(fr.u8());
        proc::run_call(fr, kind, out);
      }
      if (!send_polled(out, root, kTagResults, comm, root)) continue;
    }
  }
}

// --- the program-wide state of the pool mode (main on rank 0 only) ---------------------

struct PoolMode {
  std::mutex mutex;
  std::condition_variable cv;
  MPI_Comm comm = MPI_COMM_NULL;   // kettle's duplicate of MPI_COMM_WORLD
  std::weak_ptr<ExecCore> active;  // the executor holding the workers
  bool finalized = false;
};
PoolMode& pool_mode() {
  static PoolMode* p = new PoolMode;  // never destroyed: used from atexit
  return *p;
}
std::atomic<std::uint64_t> next_exec_id{1};
bool kettle_initialized_mpi = false;

void finalize_at_exit() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

}  // namespace

// --- the executor ---------------------------------------------------------------------

class ExecCore : public std::enable_shared_from_this<ExecCore> {
 public:
  // idle: ranks of an owned comm that serve but get no work (they get the stop too).
  ExecCore(MPI_Comm comm, std::vector<int> ranks, int comm_size, std::string init_frame,
           bool owns_comm, std::vector<int> idle = {})
      : idle_(std::move(idle)),
        comm_(comm),
        comm_size_(comm_size),
        init_frame_(std::move(init_frame)),
        owns_comm_(owns_comm),
        exec_id_(next_exec_id++) {
    for (int r : ranks)
      workers_.emplace_back(r);
  }
  // The manager thread holds a reference until it ends: the last one may be its own.
  ~ExecCore() {
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach();
    else if (thread_.joinable())
      thread_.join();
  }

  void start() {
    thread_ = std::thread([self = shared_from_this()] { self->run(); });
  }

  void submit(proc::Task task) {
    std::unique_lock lock(mutex_);
    refuse_locked();
    pending_.push_back(std::move(task));
    wake_locked();
  }
  void submit_all(std::vector<proc::Task> tasks) {
    std::unique_lock lock(mutex_);
    refuse_locked();
    for (auto& t : tasks)
      pending_.push_back(std::move(t));
    wake_locked();
  }

  void shutdown(bool wait, bool cancel_futures) {
    std::deque<proc::Task> cancelled;
    {
      std::unique_lock lock(mutex_);
      shutdown_ = true;
      if (cancel_futures) cancelled.swap(pending_);
      wake_locked();
    }
    for (auto& t : cancelled)
      t.completer->cancel();
    if (wait && std::this_thread::get_id() != thread_.get_id()) wait_finished();
  }

  void wait_finished() {
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, [&] { return finished_; });
  }
  bool finished() {
    std::unique_lock lock(mutex_);
    return finished_;
  }
  // Shut down, or broken: it takes no more work.
  bool closed() {
    std::unique_lock lock(mutex_);
    return shutdown_ || !broken_.empty();
  }

  void bootup(bool wait) {
    if (!wait || std::this_thread::get_id() == thread_.get_id()) return;
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, [&] { return ready_ == workers_.size() || !broken_.empty() || finished_; });
    if (!broken_.empty()) throw BrokenExecutor(broken_);
  }

  std::size_t num_workers() const noexcept { return workers_.size(); }

 private:
  struct Worker {
    explicit Worker(int r) : rank(r) {}
    int rank;
    bool ready = false;
    bool replied = false;  // to the initializer message, either way
    std::string host = "?";
    int pid = 0;
    std::deque<proc::Task> running;  // sent, in the order the replies come
    struct Message {
      std::uint32_t tasks;
      std::int64_t sent_ns;
    };
    std::deque<Message> messages;  // in flight
  };

  void refuse_locked() {
    if (!broken_.empty()) throw BrokenExecutor(broken_);
    if (shutdown_) throw RuntimeError("kettle: cannot schedule new futures after shutdown");
  }
  void wake_locked() {
    if (sleeping_) cv_.notify_one();
  }

  // The manager thread.
  void run() noexcept {
    tight_timers();
    Backoff backoff;
    try {
      for (Worker& w : workers_) {
        std::string m;
        proc::Writer(m).u64(exec_id_);
        m += init_frame_;
        post(std::move(m), w.rank, kTagInit);
      }
      for (;;) {
        bool progress = test_sends();
        progress |= receive();
        progress |= dispatch();
        if (done()) break;
        if (progress) {
          backoff.reset();
          continue;
        }
        auto d = backoff.next();
        if (d.count() == 0) {
          std::this_thread::yield();
          continue;
        }
        std::unique_lock lock(mutex_);
        sleeping_ = true;
        cv_.wait_for(lock, d);
        sleeping_ = false;
      }
    } catch (const std::exception& e) {
      fail_everything(std::string("kettle: MPIPoolExecutor: ") + e.what());
    }
    release_workers();
    std::unique_lock lock(mutex_);
    finished_ = true;
    done_cv_.notify_all();
  }

  void post(std::string bytes, int dest, int tag) {
    // On the heap: a short string's bytes would move with it when the vector grows.
    sends_.push_back(std::make_unique<std::string>(std::move(bytes)));
    MPI_Request req;
    const std::string& b = *sends_.back();
    check("MPI_Isend",
          MPI_Isend(b.data(), checked_count(b.size()), MPI_BYTE, dest, tag, comm_, &req));
    send_reqs_.push_back(req);
  }

  bool test_sends() {
    if (send_reqs_.empty()) return false;
    int n = 0;
    indices_.resize(send_reqs_.size());
    check("MPI_Testsome", MPI_Testsome(static_cast<int>(send_reqs_.size()), send_reqs_.data(), &n,
                                       indices_.data(), MPI_STATUSES_IGNORE));
    if (n == MPI_UNDEFINED || n == 0) return false;
    std::size_t k = 0;
    for (std::size_t i = 0; i < send_reqs_.size(); ++i)
      if (send_reqs_[i] != MPI_REQUEST_NULL) {
        send_reqs_[k] = send_reqs_[i];
        sends_[k] = std::move(sends_[i]);
        ++k;
      }
    send_reqs_.resize(k);
    sends_.resize(k);
    return true;
  }

  Worker* worker_of(int rank) {
    for (Worker& w : workers_)
      if (w.rank == rank) return &w;
    return nullptr;
  }

  bool receive() {
    bool any = false;
    for (;;) {
      int flag = 0;
      MPI_Message msg;
      MPI_Status st;
      check("MPI_Improbe", MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &msg, &st));
      if (!flag) return any;
      any = true;
      int n = count_bytes(st);
      std::string buf(static_cast<std::size_t>(n), '\0');
      check("MPI_Mrecv", MPI_Mrecv(buf.data(), n, MPI_BYTE, &msg, MPI_STATUS_IGNORE));
      Worker* w = worker_of(st.MPI_SOURCE);
      if (!w) continue;  // not one of ours (a rank outside this executor)
      try {
        handle(*w, st.MPI_TAG, buf);
      } catch (const std::exception& e) {
        fail_everything("kettle: MPIPoolExecutor: " + where(*w) +
                        " broke the protocol: " + e.what());
        w->messages.clear();  // nothing more is expected from it
        w->running.clear();
        if (!w->replied) {
          w->replied = true;
          ++replied_;
        }
      }
    }
  }

  std::string where(const Worker& w) const {
    return "Worker " + std::to_string(w.rank) + " of " + std::to_string(comm_size_) + " on " +
           w.host;
  }

  std::exception_ptr name_worker(std::exception_ptr e, const Worker& w) const {
    try {
      std::rethrow_exception(e);
    } catch (const RemoteError& x) {
      return std::make_exception_ptr(RemoteError(x.type_name(), x.message(), x.pid(), where(w)));
    } catch (...) {
      return e;
    }
  }

  void handle(Worker& w, int tag, const std::string& buf) {
    proc::Reader r(buf.data(), buf.size());
    if (r.u64() != exec_id_) return;  // for an executor before this one
    if (tag == kTagReady) {
      if (w.replied) throw ValueError("a second ready message");
      w.replied = true;
      ++replied_;
      if (r.u8() == 1) {
        w.host = r.str();
        w.pid = r.i32();
        w.ready = true;
        std::unique_lock lock(mutex_);
        ++ready_;
        done_cv_.notify_all();
      } else {
        std::exception_ptr e = name_worker(proc::read_error(r), w);
        fail_everything("kettle: MPIPoolExecutor: the initializer failed on " + where(w) + ": " +
                        describe(e));
      }
      return;
    }
    if (tag != kTagResults)
      throw ValueError("an unexpected message (tag " + std::to_string(tag) + ")");
    if (w.messages.empty()) throw ValueError("results for no task");
    std::uint32_t count = w.messages.front().tasks;
    double us = static_cast<double>(kettle::detail::now_ns() - w.messages.front().sent_ns) / 1e3;
    w.messages.pop_front();
    // A moving average of a task's round trip; the first measure replaces the unknown.
    double per_task = us / std::max<std::uint32_t>(count, 1);
    task_us_ = task_us_ > 1e17 ? per_task : 0.8 * task_us_ + 0.2 * per_task;
    for (std::uint32_t i = 0; i < count; ++i) {
      std::uint32_t len = r.u32();
      proc::Reader fr(r.take(len), len);
      auto kind = static_cast<proc::MessageKind>(fr.u8());
      std::uint64_t id = fr.u64();
      proc::Task t = std::move(w.running.front());
      w.running.pop_front();
      std::uint64_t sent_id;
      std::memcpy(&sent_id, t.frame.data() + 5, sizeof sent_id);
      if (!t.completer) continue;  // failed already, when the executor broke
      if (id != sent_id) {
        t.completer->fail(
            std::make_exception_ptr(BrokenExecutor("kettle: a reply for another task")));
        throw ValueError("a reply for another task");
      }
      if (kind == proc::MessageKind::result) {
        if (!t.completer->succeed(fr)) {
          t.completer->fail(std::make_exception_ptr(
              BrokenExecutor("kettle: " + where(w) + " sent a result that does not read as fn's")));
          throw ValueError("a result that does not read as fn's result type");
        }
      } else if (kind == proc::MessageKind::error) {
        t.completer->fail(name_worker(proc::read_error(fr), w));
      } else {
        t.completer->fail(std::make_exception_ptr(BrokenExecutor("kettle: malformed reply")));
        throw ValueError("a malformed reply");
      }
    }
    if (r.left() != 0) throw ValueError("bytes after the last reply");
  }

  // Sends pending tasks to ready workers. Short tasks (under 1 ms a round trip, on average)
  // go in batches, a fair share of what is pending (at most 64 tasks or about 1 MiB), with
  // a second message in flight per worker, so that a worker never waits for the next. Long
  // ones go one at a time, so that none waits behind a slow one while a worker is idle.
  bool dispatch() {
    bool any = false;
    const std::size_t depth = task_us_ < 1000 ? 2 : 1;
    std::size_t avail = 0;
    for (Worker& w : workers_)
      if (w.ready && w.messages.size() < depth) ++avail;
    if (avail == 0) return false;
    std::unique_lock lock(mutex_);
    if (!broken_.empty()) return false;
    for (Worker& w : workers_) {
      if (pending_.empty()) break;
      if (!w.ready || w.messages.size() >= depth) continue;
      std::size_t share =
          depth == 2 ? std::clamp<std::size_t>(pending_.size() / workers_.size(), 1, 64) : 1;
      std::string m;
      proc::Writer(m).u64(exec_id_);
      std::uint32_t n = 0;
      std::vector<proc::Task> batch;
      // A batch stays one MPI message (INT_MAX bytes; a call too large alone fails below).
      auto room = [&] {
        return m.size() < (1u << 20) &&
               m.size() + pending_.front().frame.size() < static_cast<std::size_t>(INT_MAX);
      };
      while (!pending_.empty() && n < share && (n == 0 || room())) {
        proc::Task t = std::move(pending_.front());
        pending_.pop_front();
        lock.unlock();
        bool go = t.completer->start();  // false: cancelled while pending
        lock.lock();
        if (!go) continue;
        if (t.frame.size() > static_cast<std::size_t>(INT_MAX) - 64) {  // one MPI message
          lock.unlock();
          t.completer->fail(std::make_exception_ptr(ValueError(
              "kettle: MPIPoolExecutor: a call's arguments take " + std::to_string(t.frame.size()) +
              " bytes serialized, more than one MPI message holds (INT_MAX)")));
          lock.lock();
          continue;
        }
        std::uint64_t id = next_task_id_++;
        std::memcpy(t.frame.data() + 5, &id, sizeof id);
        m += t.frame;
        batch.push_back(std::move(t));
        ++n;
      }
      if (n == 0) continue;
      lock.unlock();
      // Running before it is sent: if the send fails, fail_everything fails these too.
      for (auto& t : batch)
        w.running.push_back(std::move(t));
      w.messages.push_back({n, kettle::detail::now_ns()});
      post(std::move(m), w.rank, kTagTasks);
      any = true;
      lock.lock();
    }
    return any;
  }

  bool done() {
    for (Worker& w : workers_)
      if (!w.messages.empty()) return false;
    if (!send_reqs_.empty()) return false;
    std::unique_lock lock(mutex_);
    return (shutdown_ || !broken_.empty()) && pending_.empty() && replied_ == workers_.size();
  }

  // The executor breaks: pending tasks (and those on workers) fail with BrokenExecutor.
  void fail_everything(const std::string& why) noexcept {
    std::deque<proc::Task> failed;
    {
      std::unique_lock lock(mutex_);
      if (broken_.empty()) broken_ = why;
      failed.swap(pending_);
      done_cv_.notify_all();
    }
    auto e = std::make_exception_ptr(BrokenExecutor(why));
    for (auto& t : failed)
      t.completer->fail(e);
    // Their replies are still awaited (and dropped), so that no worker is left sending.
    for (Worker& w : workers_)
      for (auto& t : w.running)
        if (t.completer) {
          t.completer->fail(e);
          t.completer.reset();
        }
  }

  // Ends this executor's use of the workers: MPICommExecutor's stop serving; the pool
  // mode's wait for the next executor.
  void release_workers() noexcept {
    try {
      // What was sent must have gone before the buffers go.
      Backoff b;
      while (!send_reqs_.empty()) {
        if (!test_sends()) b.idle();
      }
      if (owns_comm_) {
        for (Worker& w : workers_)
          send_polled("", w.rank, kTagStop, comm_);
        for (int r : idle_)
          send_polled("", r, kTagStop, comm_);
        MPI_Comm_free(&comm_);
      }
    } catch (...) {
    }
  }

  std::vector<int> idle_;
  MPI_Comm comm_;
  int comm_size_;
  std::string init_frame_;
  bool owns_comm_;
  std::uint64_t exec_id_;
  std::thread thread_;

  std::mutex mutex_;
  std::condition_variable cv_;       // wakes the manager
  std::condition_variable done_cv_;  // ready, broken, finished
  std::deque<proc::Task> pending_;   // mutex_
  std::string broken_;               // mutex_
  bool shutdown_ = false;            // mutex_
  bool finished_ = false;            // mutex_
  bool sleeping_ = false;            // mutex_
  std::size_t ready_ = 0;            // mutex_

  // The manager thread's:
  std::deque<Worker> workers_;
  std::vector<std::unique_ptr<std::string>> sends_;  // buffers of send_reqs_
  std::vector<MPI_Request> send_reqs_;
  std::vector<int> indices_;
  std::uint64_t next_task_id_ = 1;
  std::size_t replied_ = 0;
  double task_us_ = 1e18;  // a task's round trip, on average (µs); unknown: long
};

}  // namespace detail

void init() {
  int inited = 0;
  detail::check("MPI_Initialized", MPI_Initialized(&inited));
  if (!inited) {
    int provided = 0;
    detail::check("MPI_Init_thread",
                  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided));
    detail::kettle_initialized_mpi = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    std::atexit(detail::finalize_at_exit);
  }
  int provided = 0;
  detail::check("MPI_Query_thread", MPI_Query_thread(&provided));
  if (provided < MPI_THREAD_MULTIPLE)
    throw RuntimeError(
        "kettle::mpi: MPI was initialized without MPI_THREAD_MULTIPLE, which kettle's executor "
        "threads need: initialize it with MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) or let "
        "kettle::mpi::init() do it");
}

int rank(MPI_Comm comm) {
  int r = 0;
  detail::check("MPI_Comm_rank", MPI_Comm_rank(comm, &r));
  return r;
}

int size(MPI_Comm comm) {
  int n = 0;
  detail::check("MPI_Comm_size", MPI_Comm_size(comm, &n));
  return n;
}

// --- MPIPoolExecutor ------------------------------------------------------------------

MPIPoolExecutor::MPIPoolExecutor(MPIPoolOptions options) {
  start(options, {});
}

void MPIPoolExecutor::start(MPIPoolOptions options, std::string init_frame) {
  if (options.max_workers && *options.max_workers == 0)
    throw ValueError("kettle: MPIPoolExecutor needs max_workers >= 1");
  auto& pm = detail::pool_mode();
  std::unique_lock lock(pm.mutex);
  if (pm.comm == MPI_COMM_NULL)
    throw RuntimeError(
        "kettle: MPIPoolExecutor has no worker ranks: start the program with mpiexec -n N "
        "(N >= 2), whose ranks other than 0 become its workers (in an SPMD program, declared "
        "with KETTLE_MPI_SPMD, use MPICommExecutor)");
  if (auto prev = pm.active.lock()) {
    // One that is shut down but finishing its work (shutdown(wait=false)) has the workers
    // until it is done; one not shut down keeps them.
    if (!prev->closed())
      throw RuntimeError(
          "kettle: another MPIPoolExecutor is using the workers (one at a time): shut it down "
          "first");
    prev->wait_finished();
  }
  int n = size(pm.comm);
  if (n < 2)
    throw RuntimeError(
        "kettle: MPIPoolExecutor has no worker ranks: mpiexec started one process; start the "
        "program with mpiexec -n N (N >= 2), whose ranks other than 0 become its workers");
  std::size_t workers = static_cast<std::size_t>(n - 1);
  if (options.max_workers) workers = std::min(workers, *options.max_workers);
  std::vector<int> ranks;
  for (int r = 1; r <= static_cast<int>(workers); ++r)
    ranks.push_back(r);
  core_ = std::make_shared<detail::ExecCore>(pm.comm, std::move(ranks), n, std::move(init_frame),
                                             false);
  core_->start();
  pm.active = core_;
}

MPIPoolExecutor::~MPIPoolExecutor() {
  if (core_) core_->shutdown(true, false);
}

detail::ExecCore& MPIPoolExecutor::core() const {
  if (!core_) throw RuntimeError("kettle: this MPIPoolExecutor was moved from");
  return *core_;
}

void MPIPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  core().shutdown(wait, cancel_futures);
}

MPIPoolExecutor& MPIPoolExecutor::bootup(bool wait) {
  core().bootup(wait);
  return *this;
}

std::size_t MPIPoolExecutor::num_workers() const noexcept {
  return core_ ? core_->num_workers() : 0;
}

void MPIPoolExecutor::submit_task(kettle::detail::proc::Task task) {
  core().submit(std::move(task));
}

void MPIPoolExecutor::submit_tasks(std::vector<kettle::detail::proc::Task> tasks) {
  if (!tasks.empty()) core().submit_all(std::move(tasks));
}

// --- MPICommExecutor ------------------------------------------------------------------

MPICommExecutor::MPICommExecutor(MPI_Comm comm, int root, MPIPoolOptions options) {
  if (detail::pool_mode().comm != MPI_COMM_NULL)
    throw RuntimeError(
        "kettle: MPICommExecutor needs every rank to run main, but this program runs main on "
        "rank 0 only (the others serve MPIPoolExecutors): declare it SPMD with "
        "KETTLE_MPI_SPMD; at namespace scope, or use MPIPoolExecutor");
  init();
  if (options.max_workers && *options.max_workers == 0)
    throw ValueError("kettle: MPICommExecutor needs max_workers >= 1");
  int n = size(comm);
  if (root < 0 || root >= n)
    throw ValueError("kettle: MPICommExecutor: root " + std::to_string(root) +
                     " is not a rank of a communicator of " + std::to_string(n));
  if (n < 2)
    throw ValueError(
        "kettle: MPICommExecutor needs a communicator of two processes or more "
        "(a master and a worker)");
  MPI_Comm dup;
  detail::check("MPI_Comm_dup", MPI_Comm_dup(comm, &dup));
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  if (rank(dup) != root) {
    detail::serve(dup, root);
    MPI_Comm_free(&dup);
    return;
  }
  // Every other rank serves until the stop; max_workers of them get work.
  std::vector<int> ranks;
  for (int r = 0; r < n; ++r)
    if (r != root) ranks.push_back(r);
  std::vector<int> idle;
  if (options.max_workers && *options.max_workers < ranks.size()) {
    idle.assign(ranks.begin() + static_cast<std::ptrdiff_t>(*options.max_workers), ranks.end());
    ranks.resize(*options.max_workers);
  }
  auto core = std::make_shared<detail::ExecCore>(dup, std::move(ranks), n, std::string(), true,
                                                 std::move(idle));
  core->start();
  pool_.emplace(MPIPoolExecutor(std::move(core)));
}

MPIPoolExecutor& MPICommExecutor::operator*() {
  if (!pool_) throw RuntimeError("kettle: MPICommExecutor: this rank is a worker, not the root");
  return *pool_;
}

}  // namespace kettle::mpi

// --- the launch hook (called by the wrapped main) -------------------------------------

namespace {

int launcher_size() {
  for (const char* v : {"PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 0;
}

void root_exit() {
  using namespace kettle::mpi::detail;
  auto& pm = pool_mode();
  std::shared_ptr<ExecCore> active;
  {
    std::unique_lock lock(pm.mutex);
    if (pm.finalized) return;
    pm.finalized = true;
    active = pm.active.lock();
  }
  if (active) active->shutdown(true, false);
  int n = 0;
  MPI_Comm_size(pm.comm, &n);
  for (int r = 1; r < n; ++r)
    send_polled("", r, kTagStop, pm.comm);
  MPI_Comm_free(&pm.comm);
  finalize_at_exit();
}

}  // namespace

extern "C" void kettle_mpi_main_hook(int* argc, char*** argv) {
  using namespace kettle::mpi::detail;
  if (&kettle_mpi_spmd_main != nullptr) return;  // every rank runs main
  if (launcher_size() < 1) return;               // not started by mpiexec
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
    std::fputs("kettle: MPI_Init_thread failed\n", stderr);
    std::_Exit(1);
  }
  if (provided < MPI_THREAD_MULTIPLE) {
    std::fputs(
        "kettle: this MPI does not provide MPI_THREAD_MULTIPLE, which "
        "MPIPoolExecutor needs\n",
        stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  kettle_initialized_mpi = true;
  auto& pm = pool_mode();
  MPI_Comm_dup(MPI_COMM_WORLD, &pm.comm);
  MPI_Comm_set_errhandler(pm.comm, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int r = 0;
  MPI_Comm_rank(pm.comm, &r);
  if (r == 0) {
    std::atexit(root_exit);
    return;
  }
  try {
    serve(pm.comm, 0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kettle: MPI worker %d: %s\n", r, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Comm_free(&pm.comm);
  MPI_Finalize();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(0);
}
