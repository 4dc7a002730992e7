// The parent's side of process pools: one manager thread (running while any pool exists)
// owns every worker's socket and pidfd in its own io_context, sends tasks, reads replies
// and completes futures. Worker deaths are seen through pidfds (for our own children) or
// the fork server's reports, never through waitpid(-1), so that kettle does not reap
// processes that belong to the rest of the program; workers are signalled only through
// their pidfds, never through a pid that may have been reused.
//
// A worker runs user code, so nothing it sends is trusted: a frame that breaks the protocol
// (a malformed or oversized message, a reply to a task it was not running, a result that
// does not read as the function's result type) gets the worker killed, and the task it was
// running fails with WorkerCrashedError saying why. A worker's death is acted on as soon as
// it is known (a grandchild that inherited its socket cannot hold the pool up): what it had
// sent before dying is read first, so that no finished result is lost.
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_map>

#include "kettle/detail/process/pool_core.hpp"
#include "kettle/exceptions.hpp"
#include "launch.hpp"

namespace kettle::detail::proc {

// One fork server process: the shared one (forkserver) or a pool's own (fork).
struct ServerLink {
  ServerLink(asio::io_context& io, int fd, int pid)
      : fd(fd), pid(pid), pidfd(pidfd_open(pid)), watch(io) {}
  ~ServerLink() {
    if (pidfd >= 0) ::close(pidfd);
  }
  ServerLink(const ServerLink&) = delete;
  ServerLink& operator=(const ServerLink&) = delete;
  // Our child, not reaped before server_gone or close_server: signalled through its pidfd,
  // or (if pidfd_open failed) its pid, which stays its own until we reap it.
  void kill() const noexcept {
    if (pidfd >= 0)
      pidfd_signal(pidfd, SIGKILL);
    else if (pid > 0)
      ::kill(pid, SIGKILL);
  }
  int fd;
  int pid;
  int pidfd;
  asio::posix::stream_descriptor watch;  // assigned on the manager thread
  std::atomic<bool> dead{false};
  std::uint64_t next_req = 1;
  std::unordered_map<std::uint64_t, Worker*> forking;  // request -> worker
  std::unordered_map<int, Worker*> by_pid;
};

struct Worker {
  Worker(std::shared_ptr<PoolCore> p, asio::io_context& io)
      : pool(std::move(p)), sock(io), pidfd(io) {}
  ~Worker() {
    if (progress) ::munmap(progress, sizeof(std::uint64_t));
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  bool live() const noexcept { return !exited && !eof && !poisoned; }

  // The id of the last task the worker started (a word shared with it).
  std::atomic<std::uint64_t>* progress = nullptr;
  std::shared_ptr<PoolCore> pool;  // cleared when the worker is gone
  std::shared_ptr<ServerLink> server;
  int pid = 0;
  asio::local::stream_protocol::socket sock;
  // Signals go here. A spawned worker's pidfd also tells its exit (watched); a fork server's
  // worker gets its pidfd from the server, and its exit from the server's reports.
  asio::posix::stream_descriptor pidfd;
  std::vector<char> rbuf = std::vector<char>(64 * 1024);
  std::string acc;                                      // bytes read, not yet a whole frame
  std::string wbuf;                                     // frames to send
  std::string wbusy;                                    // frames being sent
  std::deque<std::pair<std::uint64_t, Task>> inflight;  // sent, in order
  unsigned sent = 0;
  std::chrono::steady_clock::time_point mark;  // when its current task began, as seen here
  std::string violation;                       // why it was killed for breaking the protocol
  int status = 0;
  int pending_signal = 0;  // to send once its pidfd is known
  bool reading = false, writing = false, watching = false;
  bool ready = false, retiring = false, exit_sent = false, eof = false, exited = false;
  bool poisoned = false;
};

namespace {

// Starts a fork server with `launch` (spawn_self or fork_server) on one end of a new
// seqpacket pair; the link holds the other end.
template <class Launch>
std::shared_ptr<ServerLink> start_server(asio::io_context& io, Launch launch) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throw RuntimeError(std::string("kettle: socketpair failed: ") + std::strerror(errno));
  int pid;
  try {
    pid = launch(sv[1]);
  } catch (...) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw;
  }
  ::close(sv[1]);
  return std::make_shared<ServerLink>(io, sv[0], pid);
}

void watch_server(const std::shared_ptr<ServerLink>& s);

class Manager {
 public:
  static Manager& instance() {
    static auto* m = new Manager();  // lives as long as the process; its thread does not
    return *m;
  }

  asio::io_context io;

  void retain() {
    std::lock_guard lock(mutex_);
    if (users_++ > 0 || thread_.joinable()) return;
    io.restart();
    guard_.emplace(io.get_executor());
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "kettle-procs");
      tid_.store(::gettid());
      io.run();
    });
    id_.store(thread_.get_id());
  }

  // The thread stops once no pool needs it, unless this runs on it (then it idles on).
  void release() noexcept {
    std::thread t;
    {
      std::lock_guard lock(mutex_);
      if (--users_ > 0 || on_thread()) return;
      guard_.reset();
      io.stop();
      t = std::move(thread_);
      id_.store(std::thread::id());
    }
    if (t.joinable()) t.join();
    tid_.store(0);
  }

  bool on_thread() const noexcept { return id_.load() == std::this_thread::get_id(); }
  // The manager thread's kernel id, 0 when it does not run (the fork method ignores it).
  pid_t tid() const noexcept { return tid_.load(); }

  // The shared fork server, started again if it died (as Python's forkserver is).
  std::shared_ptr<ServerLink> forkserver() {
    std::lock_guard lock(mutex_);
    if (server_ && !server_->dead) return server_;
    server_ = start_server(io, [](int fd) { return spawn_self("forkserver", fd); });
    return server_;
  }
  int forkserver_pid() {
    std::lock_guard lock(mutex_);
    return server_ && !server_->dead ? server_->pid : 0;
  }

 private:
  std::mutex mutex_;
  std::size_t users_ = 0;
  std::thread thread_;
  std::atomic<std::thread::id> id_;
  std::atomic<pid_t> tid_{0};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::shared_ptr<ServerLink> server_;
};

// On the manager thread: the first pool to use a server starts watching it.
void watch_once(const std::shared_ptr<ServerLink>& s) {
  if (!s->watch.is_open() && !s->dead) {
    s->watch.assign(s->fd);
    watch_server(s);
  }
}

// Receives one record from a fork server, and the fd that may come with it (or -1).
ssize_t receive_record(int sock, char* buf, std::size_t size, int& fd) {
  iovec iov{buf, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  fd = -1;
  ssize_t n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n >= 0)
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
          c->cmsg_len >= CMSG_LEN(sizeof(int)))
        std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return n;
}

// The worker registered under key, taken out of the map (nullptr if there is none).
template <class Map>
Worker* take(Map& m, typename Map::key_type key) {
  auto it = m.find(key);
  if (it == m.end()) return nullptr;
  Worker* w = it->second;
  m.erase(it);
  return w;
}

void server_gone(ServerLink& s) {
  s.dead = true;
  s.kill();  // it may only have stopped answering
  std::vector<Worker*> ws;
  for (auto& [req, w] : s.forking)
    ws.push_back(w);
  for (auto& [pid, w] : s.by_pid)
    ws.push_back(w);
  s.forking.clear();
  s.by_pid.clear();
  asio::error_code ec;
  s.watch.close(ec);
  int st;
  ::waitpid(s.pid, &st, 0);
  for (Worker* w : ws) {
    auto pool = w->pool;
    pool->worker_exited(*w, SIGKILL);  // the server's death took its workers with it
  }
}

void watch_server(const std::shared_ptr<ServerLink>& s) {
  s->watch.async_wait(asio::posix::descriptor_base::wait_read, [s](const asio::error_code& ec) {
    if (ec) return;
    for (;;) {
      char buf[64];
      int fd;
      ssize_t n = receive_record(s->fd, buf, sizeof buf, fd);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      if (n <= 0) return server_gone(*s);
      try {
        Reader r(buf, static_cast<std::size_t>(n));
        auto kind = static_cast<MessageKind>(r.u8());
        if (kind == MessageKind::forked) {
          std::uint64_t req = r.u64();
          int pid = r.i32();
          if (Worker* w = take(s->forking, req)) {
            auto pool = w->pool;
            if (pid <= 0 || fd < 0) {  // fork failed: the worker never existed
              pool->worker_exited(*w, 1 << 8);
            } else {
              s->by_pid[pid] = w;
              pool->server_reported(*w, pid, std::exchange(fd, -1));
            }
          }
        } else if (kind == MessageKind::exited) {
          int pid = r.i32();
          int status = r.i32();
          if (Worker* w = take(s->by_pid, pid)) {
            auto pool = w->pool;
            pool->worker_exited(*w, status);
          }
        } else {
          throw_truncated();
        }
      } catch (...) {  // our own server talking nonsense: it is not to be trusted either
        if (fd >= 0) ::close(fd);
        return server_gone(*s);
      }
      if (fd >= 0) ::close(fd);
    }
    watch_server(s);
  });
}

// Stops a pool's own fork server and reaps it (its end of the socket closed, it exits).
void close_server(const std::shared_ptr<ServerLink>& s) {
  if (!s || s->dead.exchange(true)) return;
  asio::error_code ec;
  if (s->watch.is_open())
    s->watch.close(ec);  // closes the fd: the server sees EOF and exits
  else
    ::close(s->fd);
  int st;
  ::waitpid(s->pid, &st, 0);
}

// The threads of this process other than kettle's manager thread. A thread just joined may
// still be listed for a moment: the count is taken again a few times before it stands.
std::size_t other_threads() {
  std::size_t n = 0;
  for (int attempt = 0; attempt < 50; ++attempt) {
    n = 0;
    pid_t manager = Manager::instance().tid();
    if (DIR* d = ::opendir("/proc/self/task")) {
      while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.' && std::atoi(e->d_name) != manager) ++n;
      ::closedir(d);
    }
    if (n <= 1) return n;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return n;
}

void append_exit(std::string& out) {
  std::size_t f = begin_frame(out, MessageKind::exit);
  out.push_back(0);
  end_frame(out, f);
}

}  // namespace

int forkserver_pid() noexcept {
  try {
    return Manager::instance().forkserver_pid();
  } catch (...) {
    return 0;
  }
}

PoolCore::PoolCore(PoolConfig config) : config_(std::move(config)) {}

PoolCore::~PoolCore() = default;

void PoolCore::start() {
  Manager& m = Manager::instance();
  if (config_.method == Method::fork) {
    std::size_t n = other_threads();
    if (n != 1)
      throw RuntimeError(
          "kettle: the fork start method needs a single-threaded process, and "
          "this one has " +
          std::to_string(n) +
          " threads (forking it could deadlock the workers); use "
          "StartMethod::forkserver (the default) or StartMethod::spawn");
    server_ = start_server(m.io, fork_server);
  } else if (!main_is_wrapped()) {
    throw RuntimeError(
        "kettle: the spawn and forkserver start methods run this program again as a worker, "
        "which needs its main wrapped: link the program with kettle::kettle through CMake "
        "(or add -Wl,--wrap=main to its link flags)");
  } else if (config_.method == Method::forkserver) {
    server_ = m.forkserver();
  }
  m.retain();
  retained_ = true;
  if (server_) asio::post(m.io, [s = server_] { watch_once(s); });
}

void PoolCore::release() noexcept {
  if (retained_) Manager::instance().release();
  retained_ = false;
}

template <class Push>
void PoolCore::enqueue(Push push) {
  {
    std::lock_guard lock(mutex_);
    if (shutdown_)
      throw RuntimeError("kettle: cannot schedule new futures after shutdown (" + config_.kind +
                         ")");
    if (!broken_.empty()) throw BrokenProcessPool(broken_);
    push();
    if (dispatch_posted_) return;
    dispatch_posted_ = true;
  }
  post_dispatch();
}

void PoolCore::submit(Task task) {
  enqueue([&] { pending_.push_back(std::move(task)); });
}

void PoolCore::submit_all(std::vector<Task> tasks) {
  enqueue([&] {
    for (Task& t : tasks)
      pending_.push_back(std::move(t));
  });
}

void PoolCore::post_dispatch() {
  asio::post(Manager::instance().io, [self = shared_from_this()] { self->dispatch(); });
}

void PoolCore::shutdown(bool wait, bool cancel_futures) {
  std::deque<Task> cancelled;
  {
    std::lock_guard lock(mutex_);
    shutdown_ = true;
    if (cancel_futures) cancelled.swap(pending_);
    dispatch_posted_ = true;
  }
  for (Task& t : cancelled)
    t.completer->cancel();
  post_dispatch();
  if (!wait || Manager::instance().on_thread()) return;
  std::unique_lock lock(mutex_);
  finished_cv_.wait(lock, [&] { return finished_; });
}

void PoolCore::signal_workers(int sig) {
  {
    std::lock_guard lock(mutex_);
    terminate_sig_ = sig;
  }
  // Workers (and their pidfds) are the manager thread's.
  asio::post(Manager::instance().io, [self = shared_from_this(), sig] {
    for (auto& w : self->workers_)
      self->signal(*w, sig);
  });
}

std::vector<int> PoolCore::worker_pids() const {
  std::lock_guard lock(mutex_);
  return pids_;
}

void PoolCore::signal(Worker& w, int sig) noexcept {
  if (w.exited) return;
  if (!w.pidfd.is_open()) {  // a fork server's worker whose pidfd has not come yet
    w.pending_signal = sig;
    return;
  }
  pidfd_signal(w.pidfd.native_handle(), sig);
}

// Starts workers while tasks wait and idle workers are fewer, sends tasks (a few per worker
// in flight, spread evenly, so that a worker never waits for the round trip), and tells
// workers that are done to exit.
void PoolCore::dispatch() noexcept {
  Failures fails;
  std::vector<Worker*> flushes;
  bool done = false;
  {
    std::lock_guard lock(mutex_);
    dispatch_posted_ = false;
    if (broken_.empty() && !terminate_sig_) {
      std::size_t live = 0, idle = 0;
      for (auto& w : workers_) {
        if (w->retiring || w->exit_sent || !w->live()) continue;
        ++live;
        if (w->inflight.empty()) ++idle;
      }
      while (live < config_.max_workers && pending_.size() > idle) {
        try {
          start_worker();
        } catch (const std::exception& e) {
          break_locked(std::string("kettle: cannot start a worker process: ") + e.what(), fails);
          break;
        }
        ++live;
        ++idle;
      }
      // A fork server's worker may report READY before the server reports its pid: it gets
      // no task until then, so that worker_pids() names every worker that runs one.
      std::vector<Worker*> ready;
      for (auto& w : workers_)
        if (w->ready && w->pid > 0 && !w->retiring && !w->exit_sent && w->live())
          ready.push_back(w.get());
      if (!ready.empty() && !pending_.empty()) {
        // Short tasks go several to a worker, so that it never idles for the round trip;
        // long ones one at a time, so that none waits behind another while a worker idles.
        std::size_t limit = 1;
        if (task_us_ < 200)
          limit = std::clamp<std::size_t>((pending_.size() + live - 1) / live, 1, 16);
        auto now = std::chrono::steady_clock::now();
        for (std::size_t depth = 1; depth <= limit && !pending_.empty(); ++depth) {
          for (Worker* w : ready) {
            if (w->retiring || w->inflight.size() >= depth) continue;
            // The next task not cancelled while it waited (those are dropped, and do not
            // use up the worker's turn: nothing else might call dispatch again).
            while (!pending_.empty()) {
              Task t = std::move(pending_.front());
              pending_.pop_front();
              if (!t.started && !t.completer->start()) continue;
              std::uint64_t id = next_id_++;
              std::memcpy(t.frame.data() + 5, &id, sizeof id);
              w->wbuf += t.frame;
              if (w->inflight.empty()) w->mark = now;
              t.started = true;
              w->inflight.emplace_back(id, std::move(t));
              if (++w->sent == config_.max_tasks_per_child) w->retiring = true;
              break;
            }
            if (pending_.empty()) break;
          }
        }
      }
    }
    for (auto& w : workers_) {
      if (!w->live()) continue;
      bool quit =
          w->retiring || terminate_sig_ || !broken_.empty() || (shutdown_ && pending_.empty());
      if (quit && w->ready && !w->exit_sent && w->inflight.empty()) {
        append_exit(w->wbuf);
        w->exit_sent = true;
      }
      if (!w->wbuf.empty()) flushes.push_back(w.get());
    }
    done = shutdown_ && workers_.empty() && pending_.empty() && !finished_;
  }
  for (auto& [c, e] : fails)
    c->fail(e);
  for (Worker* w : flushes)
    flush(w);
  if (done) finish();
}

void PoolCore::finish() noexcept {
  if (config_.method == Method::fork) close_server(server_);  // the forkserver is shared
  std::lock_guard lock(mutex_);
  finished_ = true;
  finished_cv_.notify_all();
}

// With mutex_ held.
void PoolCore::start_worker() {
  Manager& m = Manager::instance();
  // A dead fork server is replaced (forkserver), whether the manager has seen its end yet
  // or finds out now because it does not take a request.
  auto live_server = [&] {
    if (!server_->dead) return;
    if (config_.method != Method::forkserver)
      throw RuntimeError(
          "this pool's fork server has exited, and a fork pool cannot start another from a "
          "process that now has threads (use StartMethod::forkserver or spawn)");
    server_ = m.forkserver();  // a new one
    watch_once(server_);
  };
  if (server_) live_server();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw RuntimeError(std::string("socketpair failed: ") + std::strerror(errno));
  auto w = std::make_unique<Worker>(shared_from_this(), m.io);
  w->sock.assign(asio::local::stream_protocol(), sv[0]);
  int slot = ::memfd_create("kettle-worker-progress", MFD_CLOEXEC);
  if (slot < 0 || ::ftruncate(slot, sizeof(std::uint64_t)) != 0) {
    int e = errno;
    if (slot >= 0) ::close(slot);
    ::close(sv[1]);
    throw RuntimeError(std::string("memfd_create failed: ") + std::strerror(e));
  }
  void* p = ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, slot, 0);
  if (p != MAP_FAILED) w->progress = static_cast<std::atomic<std::uint64_t>*>(p);
  struct Close {  // the worker's ends, once handed over
    int a, b;
    ~Close() {
      ::close(a);
      ::close(b);
    }
  } close_after{sv[1], slot};
  if (server_) {
    std::uint64_t req = 0;
    for (int attempt = 0;; ++attempt) {
      req = server_->next_req++;
      std::string rec;
      Writer wr(rec);
      wr.u8(static_cast<std::uint8_t>(MessageKind::fork));
      wr.u64(req);
      if (send_record(server_->fd, rec, sv[1], slot)) break;
      int e = errno;
      if ((e != EPIPE && e != ECONNRESET) || attempt > 0)
        throw RuntimeError(std::string("cannot send a fork request to the fork server: ") +
                           std::strerror(e));
      // Died before the manager read its end (which will reap it): start another now.
      server_->dead = true;
      server_->kill();
      live_server();
    }
    w->server = server_;
    server_->forking[req] = w.get();
  } else {
    w->pid = spawn_self("worker", sv[1], slot);
    int fd = pidfd_open(w->pid);
    if (fd < 0) {
      int e = errno;
      ::kill(w->pid, SIGKILL);  // our unreaped child: the pid is still its own
      ::waitpid(w->pid, nullptr, 0);
      throw RuntimeError(std::string("pidfd_open failed: ") + std::strerror(e));
    }
    w->pidfd.assign(fd);
    pids_.push_back(w->pid);
    watch_pid(w.get());
  }
  // The first frame: the initializer (or a bare INIT); the worker answers READY.
  if (config_.init_frame.empty()) {
    std::size_t f = begin_frame(w->wbuf, MessageKind::init);
    Writer(w->wbuf).u64(0);
    end_frame(w->wbuf, f);
  } else {
    w->wbuf = config_.init_frame;
  }
  Worker* raw = w.get();
  workers_.push_back(std::move(w));
  read_more(raw);
}

void PoolCore::server_reported(Worker& w, int pid, int pidfd) noexcept {
  w.pid = pid;
  w.pidfd.assign(pidfd);
  int sig;
  {
    std::lock_guard lock(mutex_);
    pids_.push_back(pid);
    sig = terminate_sig_;
  }
  if (sig) w.pending_signal = sig;
  if (w.poisoned) w.pending_signal = SIGKILL;
  if (int s = std::exchange(w.pending_signal, 0)) signal(w, s);
  post_dispatch();  // it may have been ready before: it can take tasks now
}

void PoolCore::watch_pid(Worker* w) {
  w->watching = true;
  w->pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                      [self = shared_from_this(), w](const asio::error_code&) {
                        // Not blocking: the wait may end aborted (the pool closing) while the
                        // worker lives.
                        int status = reap_pidfd(w->pidfd.native_handle(), false);
                        w->watching = false;
                        self->worker_exited(*w, status < 0 ? 0 : status);
                      });
}

void PoolCore::worker_exited(Worker& w, int status) noexcept {
  w.exited = true;
  w.status = status;
  // Pending reads and writes end now (with operation_aborted); then what it sent before it
  // died is drained and read, and it is gone.
  asio::error_code ec;
  if (w.reading || w.writing) w.sock.cancel(ec);
  maybe_gone(w);
}

void PoolCore::read_more(Worker* w) {
  w->reading = true;
  w->sock.async_read_some(asio::buffer(w->rbuf), [self = shared_from_this(), w](
                                                     const asio::error_code& ec, std::size_t n) {
    w->reading = false;
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        // It closed its end: it can no longer report, so it must not run on (its death
        // fails the task it was running), unless it is leaving as told.
        w->eof = true;
        if (!w->exit_sent) self->signal(*w, SIGKILL);
      }
      self->maybe_gone(*w);
      return;
    }
    w->acc.append(w->rbuf.data(), n);
    self->consume(*w);
    self->dispatch();
    if (w->live())
      self->read_more(w);
    else
      self->maybe_gone(*w);
  });
}

void PoolCore::poison(Worker& w, const std::string& why) noexcept {
  if (w.poisoned) return;
  w.poisoned = true;
  w.violation = why;
  w.acc.clear();
  w.acc.shrink_to_fit();
  signal(w, SIGKILL);
}

void PoolCore::consume(Worker& w) noexcept {
  Failures fails;
  std::size_t pos = 0;
  try {
    while (!w.poisoned && w.acc.size() - pos >= 4) {
      std::uint32_t len;
      std::memcpy(&len, w.acc.data() + pos, 4);
      if (w.acc.size() - pos - 4 < len) break;  // the rest has not come yet
      Reader r(w.acc.data() + pos + 4, len);
      pos += 4 + len;
      handle_frame(w, r, fails);
    }
  } catch (const std::exception& e) {
    poison(w, e.what());
  } catch (...) {
    poison(w, "an unreadable message");
  }
  if (!w.poisoned) w.acc.erase(0, pos);
  for (auto& [c, e] : fails)
    c->fail(e);
}

void PoolCore::handle_frame(Worker& w, Reader& r, Failures& fails) {
  auto kind = static_cast<MessageKind>(r.u8());
  switch (kind) {
    case MessageKind::ready:
      if (w.ready) throw RuntimeError("READY sent twice");
      if (r.left()) throw_truncated();
      w.ready = true;
      startup_deaths_ = 0;
      return;
    case MessageKind::init_failed: {
      if (w.ready) throw RuntimeError("an initializer failure after it reported ready");
      r.u64();
      std::string what;
      try {
        std::rethrow_exception(read_error(r));
      } catch (const std::exception& e) {
        what = e.what();
      }
      std::lock_guard lock(mutex_);
      break_locked("kettle: a " + config_.kind + " initializer failed in worker process " +
                       std::to_string(w.pid) + ": " + what,
                   fails);
      return;
    }
    case MessageKind::result:
    case MessageKind::error: {
      if (!w.ready) throw RuntimeError("a reply before it reported ready");
      std::uint64_t id = r.u64();
      if (w.inflight.empty() || w.inflight.front().first != id)
        throw RuntimeError("a reply to task " + std::to_string(id) + ", which it was not running");
      auto [tid, task] = std::move(w.inflight.front());
      w.inflight.pop_front();
      std::exception_ptr error;
      bool ok;
      if (kind == MessageKind::result) {
        ok = task.completer->succeed(r);
      } else {
        try {
          error = read_error(r);
          ok = r.left() == 0;
        } catch (...) {
          ok = false;
        }
      }
      if (!ok) {  // back in line: the worker's death fails it, as any crash would
        w.inflight.emplace_front(tid, std::move(task));
        throw RuntimeError(kind == MessageKind::result
                               ? "a result that does not read as the function's result type"
                               : "a malformed error report");
      }
      if (error) task.completer->fail(error);
      auto now = std::chrono::steady_clock::now();
      double us = std::chrono::duration<double, std::micro>(now - w.mark).count();
      w.mark = now;
      task_us_ = task_us_ > 1e17 ? us : task_us_ + (us - task_us_) / 8;
      return;
    }
    default:
      throw RuntimeError("an unknown kind of message (" + std::to_string(int(kind)) + ")");
  }
}

void PoolCore::flush(Worker* w) {
  if (w->writing || w->wbuf.empty() || !w->live()) return;
  w->wbusy.swap(w->wbuf);
  w->writing = true;
  asio::async_write(w->sock, asio::buffer(w->wbusy),
                    [self = shared_from_this(), w](const asio::error_code& ec, std::size_t) {
                      w->writing = false;
                      w->wbusy.clear();
                      if (ec) {
                        w->wbuf.clear();  // it cannot be told anything: it must not run on
                        if (ec != asio::error::operation_aborted && !w->exit_sent)
                          self->signal(*w, SIGKILL);
                      } else {
                        self->flush(w);
                      }
                      self->maybe_gone(*w);
                    });
}

void PoolCore::drain(Worker& w) noexcept {
  // The dead worker wrote all it ever will; a grandchild holding its socket could keep
  // writing, so read only so much.
  constexpr std::size_t kBudget = 64 << 20;
  std::size_t total = 0;
  int fd = w.sock.native_handle();
  while (total < kBudget) {
    ssize_t n = ::recv(fd, w.rbuf.data(), w.rbuf.size(), MSG_DONTWAIT);
    if (n <= 0) break;
    w.acc.append(w.rbuf.data(), static_cast<std::size_t>(n));
    total += static_cast<std::size_t>(n);
  }
  consume(w);
}

void PoolCore::maybe_gone(Worker& w) noexcept {
  if (!w.exited || w.reading || w.writing || w.watching) return;
  if (!w.poisoned && w.sock.is_open()) drain(w);
  worker_gone(w);
}

void PoolCore::break_locked(const std::string& why, Failures& fails) noexcept {
  if (broken_.empty()) broken_ = why;
  auto e = std::make_exception_ptr(BrokenProcessPool(broken_));
  for (Task& t : pending_)
    fails.emplace_back(std::move(t.completer), e);
  pending_.clear();
  for (auto& w : workers_) {
    for (auto& [id, t] : w->inflight)
      fails.emplace_back(std::move(t.completer), e);
    w->inflight.clear();
    signal(*w, SIGKILL);
  }
}

void PoolCore::worker_gone(Worker& w) noexcept {
  Failures fails;
  std::unique_ptr<Worker> owned;
  {
    std::lock_guard lock(mutex_);
    std::erase(pids_, w.pid);
    bool expected = w.exit_sent && w.inflight.empty() && !w.poisoned;
    if (!expected) {
      std::string pid = std::to_string(w.pid);
      std::string how =
          w.poisoned ? "was killed for sending " + w.violation : describe_status(w.status);
      // Killed from outside (SIGKILL or SIGTERM) is not the worker's own failure.
      bool external = !w.poisoned && WIFSIGNALED(w.status) &&
                      (WTERMSIG(w.status) == SIGKILL || WTERMSIG(w.status) == SIGTERM);
      if (terminate_sig_) {
        break_locked("kettle: the " + config_.kind +
                         "'s workers were terminated (terminate_workers or kill_workers)",
                     fails);
      } else if (!w.ready) {
        // Killed while starting, it is simply replaced (it had no task yet); but workers that
        // keep failing before they are ready (an initializer that crashes, a broken
        // executable) break the pool rather than being restarted forever.
        if (!external && ++startup_deaths_ >= 5)
          break_locked("kettle: worker processes keep dying before they are ready (the last, " +
                           pid + ", " + how +
                           (config_.init_frame.empty() ? "" : " in the initializer") + ")",
                       fails);
      } else if (config_.policy == CrashPolicy::break_pool) {
        break_locked("kettle: a process in the " + config_.kind +
                         " was terminated abruptly while the future was running or pending "
                         "(worker process " +
                         pid + " " + how + ")",
                     fails);
      } else if (!w.inflight.empty()) {
        // The task it was running, if it had started the oldest one it was sent (a worker
        // that died idle had not: what was sent to it then runs elsewhere, unharmed).
        std::uint64_t started =
            w.progress ? w.progress->load(std::memory_order_acquire) : w.inflight.front().first;
        // (A task that every worker dies before starting, say because reading it kills
        // them, fails after three tries rather than killing workers forever.)
        if (w.inflight.front().first <= started || ++w.inflight.front().second.deaths >= 3) {
          fails.emplace_back(std::move(w.inflight.front().second.completer),
                             std::make_exception_ptr(WorkerCrashedError(
                                 "kettle: worker process " + pid + " " + how +
                                     " while running this task; the pool replaced it",
                                 w.pid, w.status)));
          w.inflight.pop_front();
        }
        // The tasks sent after it never started: run them elsewhere, first.
        while (!w.inflight.empty()) {
          pending_.push_front(std::move(w.inflight.back().second));
          w.inflight.pop_back();
        }
      }
    }
    auto it = std::find_if(workers_.begin(), workers_.end(),
                           [&](const auto& p) { return p.get() == &w; });
    owned = std::move(*it);
    workers_.erase(it);
  }
  auto keep = std::move(owned->pool);
  for (auto& [c, e] : fails)
    c->fail(e);
  owned.reset();
  keep->dispatch();
}

}  // namespace kettle::detail::proc
