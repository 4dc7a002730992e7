#include "kettle/subprocess.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <asio/posix/stream_descriptor.hpp>

#include "kettle/event_loop.hpp"
#include "kettle/locks.hpp"
#include "kettle/tasks.hpp"
#include "kettle/timeouts.hpp"
#include "process/launch.hpp"
#include "streams_detail.hpp"

extern char** environ;

namespace kettle {
namespace detail {

// The child's exit, seen through its pidfd on the loop. Outlives its Process while the
// child runs (the pending wait holds it), so that a dropped Process's child is still reaped.
struct ProcessState final : LoopResource, std::enable_shared_from_this<ProcessState> {
  ProcessState(LoopCore& loop, pid_t pid, int pidfd) : loop(&loop), pid(pid) {
    watch.emplace(loop.owner.io_context(), pidfd);
    loop.attach(this);
  }
  ~ProcessState() {
    if (loop) loop->detach(this);
  }

  void start_watching() {
    watch->async_wait(asio::posix::descriptor_base::wait_read,
                      [self = shared_from_this()](const asio::error_code& ec) {
                        if (ec == asio::error::operation_aborted || self->returncode) return;
                        self->reap();
                      });
  }

  void reap() {
    int status = proc::reap_pidfd(watch->native_handle(), false);
    if (status < 0 && errno == EAGAIN) {  // readable before it can be reaped: not yet
      start_watching();
      return;
    }
    // Another error (ECHILD: reaped by someone else, SIGCHLD ignored say): status lost.
    returncode = status < 0 ? 255 : WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    watch.reset();
    exited.set();
    if (loop) {
      loop->detach(this);
      loop = nullptr;
    }
  }

  // The loop closes under a running child: a thread of its own reaps it when it exits, so
  // that it never stays a zombie.
  void on_loop_close() noexcept override {
    loop = nullptr;
    if (returncode || !watching()) {
      watch.reset();
      return;
    }
    int fd = watch->release();
    watch.reset();
    try {
      std::thread([fd] {
        proc::reap_pidfd(fd, true);
        ::close(fd);
      }).detach();
    } catch (...) {
      ::close(fd);  // no thread: it stays a zombie until we exit (nothing else to do)
    }
  }

  // Its group may outlive it (a grandchild in it): that one goes by number, as killpg.
  void signal(int sig, bool group) {
    if (!group && (returncode || !watching()))
      throw ProcessLookupError(ESRCH, "process " + std::to_string(pid) + " has exited");
    int rc = group ? ::kill(-pid, sig) : proc::pidfd_signal(watch->native_handle(), sig);
    if (rc < 0) {
      int e = errno;
      if (e == EINVAL) throw ValueError("send_signal(): invalid signal " + std::to_string(sig));
      raise_os_error(
          std::error_code(e, std::system_category()),
          std::string("cannot signal process ") + (group ? "group " : "") + std::to_string(pid));
    }
  }

  LoopCore* loop;
  pid_t pid;
  bool leads_group = false;
  bool kill_on_drop = false;
  // The pidfd; gone with the loop (Asio objects must go before their io_context).
  std::optional<asio::posix::stream_descriptor> watch;
  bool watching() const noexcept { return watch && watch->is_open(); }
  std::optional<int> returncode;
  Event exited;
  std::optional<StreamWriter> in;
  std::optional<PipeReader> out, err;
  // communicate()'s progress, kept across a timeout or a cancellation.
  bool input_taken = false;
  std::string input;           // communicate()'s, until it is all in the pipe
  std::size_t input_sent = 0;  // bytes of it written so far
  int waiting = 0;             // wait() calls pending
  std::string out_so_far, err_so_far;
};

}  // namespace detail

namespace subprocess {

TimeoutExpired::TimeoutExpired(double timeout, std::string out, std::string err)
    : TimeoutError("communicate() timed out after " + std::to_string(timeout) + " seconds (" +
                   std::to_string(out.size()) + " bytes of stdout and " +
                   std::to_string(err.size()) + " of stderr so far)"),
      timeout_(timeout),
      out_(std::move(out)),
      err_(std::move(err)) {}

Process::Process(std::shared_ptr<detail::ProcessState> st) noexcept : st_(std::move(st)) {
  if (st_->in) stdin_ = *st_->in;
  if (st_->out) stdout_ = st_->out->reader;
  if (st_->err) stderr_ = st_->err->reader;
}
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    Process gone(std::move(*this));
    st_ = std::move(o.st_);
    stdin_ = std::move(o.stdin_);
    stdout_ = std::move(o.stdout_);
    stderr_ = std::move(o.stderr_);
  }
  return *this;
}

Process::~Process() {
  if (!st_) return;
  if (st_->kill_on_drop && !st_->returncode && st_->watching()) {
    try {
      st_->signal(SIGKILL, false);
    } catch (...) {  // it is exiting already
    }
  }
  // Its pipes close now (a cat whose stdin stays open would never exit); the state lives
  // on, for the reaping, while the child runs.
  st_->in.reset();
  st_->out.reset();
  st_->err.reset();
}

pid_t Process::pid() const noexcept {
  return st_->pid;
}
std::optional<int> Process::returncode() const noexcept {
  return st_->returncode;
}

void Process::send_signal(int sig) {
  st_->signal(sig, false);
}
void Process::send_signal_group(int sig) {
  if (!st_->leads_group)
    throw ValueError(
        "send_signal_group(): the process does not lead a process group of its own (start it "
        "with start_new_session or process_group = 0)");
  st_->signal(sig, true);
}

namespace {

Coro<int> wait_impl(std::shared_ptr<detail::ProcessState> st) {
  if (!st->returncode) {
    // Its pipes are read without bound meanwhile: a child blocked writing to a full pipe
    // would never exit.
    struct Unbounded {
      detail::ProcessState& st;
      void set(bool on) {
        if (st.out) detail::set_unbounded(*st.out->core, on);
        if (st.err) detail::set_unbounded(*st.err->core, on);
      }
      explicit Unbounded(detail::ProcessState& s) : st(s) {
        if (st.waiting++ == 0) set(true);
      }
      ~Unbounded() {
        if (--st.waiting == 0) set(false);
      }
    } unbounded(*st);
    co_await st->exited.wait();
  }
  co_return *st->returncode;
}

Coro<> feed_input(std::shared_ptr<detail::ProcessState> st, std::string input) {
  if (!st->in) co_return;
  StreamWriter w = *st->in;
  try {
    // The first call's input is the input (as Popen.communicate): a call cancelled or timed
    // out half-way is continued, not repeated, by the next one. It goes in slices, each
    // drained, so that the writer's buffer stays small (and in cache) whatever its size.
    if (!st->input_taken) {
      st->input = std::move(input);
      st->input_taken = true;
    }
    constexpr std::size_t kSlice = 256 * 1024;
    while (st->input_sent < st->input.size() && !w.is_closing()) {
      std::size_t n = std::min(kSlice, st->input.size() - st->input_sent);
      w.write(std::string_view(st->input).substr(st->input_sent, n));
      st->input_sent += n;
      co_await w.drain();
    }
    if (!w.is_closing()) co_await w.drain();
  } catch (const BrokenPipeError&) {  // it does not read its input: as asyncio, go on
  } catch (const ConnectionResetError&) {
  }
  st->input = {};
  st->input_sent = 0;
  w.close();  // after what is buffered has gone
}

Coro<> collect(StreamReader r, std::string& into) {
  for (;;) {
    std::string chunk = co_await r.read(1 << 16);
    if (chunk.empty()) co_return;
    if (into.empty())
      into = std::move(chunk);
    else
      into += chunk;
  }
}

Coro<> communicate_all(std::shared_ptr<detail::ProcessState> st, std::string input) {
  std::vector<Coro<>> parts;
  parts.push_back(feed_input(st, std::move(input)));
  if (st->out) parts.push_back(collect(st->out->reader, st->out_so_far));
  if (st->err) parts.push_back(collect(st->err->reader, st->err_so_far));
  co_await gather(parts);
  co_await wait_impl(st);
}

Coro<std::pair<std::string, std::string>> communicate_impl(std::shared_ptr<detail::ProcessState> st,
                                                           std::string input,
                                                           std::optional<double> timeout) {
  if (timeout) {
    try {
      co_await wait_for(communicate_all(st, std::move(input)), *timeout);
    } catch (const TimeoutError&) {
      throw TimeoutExpired(*timeout, st->out_so_far, st->err_so_far);
    }
  } else {
    co_await communicate_all(st, std::move(input));
  }
  co_return std::pair<std::string, std::string>(std::exchange(st->out_so_far, {}),
                                                std::exchange(st->err_so_far, {}));
}

}  // namespace

Coro<int> Process::wait() {
  return wait_impl(st_);
}
Coro<std::pair<std::string, std::string>> Process::communicate(std::string input,
                                                               std::optional<double> timeout) {
  if (timeout && !(*timeout >= 0))
    throw ValueError("communicate(): timeout must be a number >= 0, not " +
                     std::to_string(*timeout));
  return communicate_impl(st_, std::move(input), timeout);
}

}  // namespace subprocess

namespace {

using subprocess::DEVNULL;
using subprocess::INHERIT;
using subprocess::PIPE;
using subprocess::STDOUT;

// The options, owned (copied from the caller's views when the call is made).
struct SpawnConfig {
  explicit SpawnConfig(const subprocess::Options& o)
      : stdio{o.stdin_, o.stdout_, o.stderr_},
        cwd(o.cwd),
        pass_fds(o.pass_fds.begin(), o.pass_fds.end()),
        start_new_session(o.start_new_session),
        process_group(o.process_group),
        limit(o.limit),
        kill_on_drop(o.kill_on_drop) {
    if (o.env) {
      env.emplace();
      for (const auto& [k, v] : *o.env)
        env->push_back(k + "=" + v);
    }
  }
  int stdio[3];
  std::string cwd;
  std::optional<std::vector<std::string>> env;
  std::vector<int> pass_fds;
  bool start_new_session;
  std::optional<pid_t> process_group;
  std::size_t limit;
  bool kill_on_drop;
};

// Descriptors closed on every path unless released.
struct Fds {
  std::vector<int> fds;
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void release(int fd) { fds.erase(std::find(fds.begin(), fds.end(), fd)); }
  ~Fds() {
    for (int fd : fds)
      ::close(fd);
  }
};

[[noreturn]] void raise_errno(int e, const std::string& what) {
  raise_os_error(std::error_code(e, std::system_category()), what);
}

// Where execvp would find `program`, looking in `path` (Python: the child's PATH).
std::string find_program(const std::string& program, const std::string& path) {
  if (program.empty()) raise_errno(ENOENT, "No such file or directory: ''");
  if (program.find('/') != std::string::npos) return program;
  int first_error = ENOENT;
  std::size_t i = 0;
  for (;;) {
    std::size_t j = path.find(':', i);
    std::string dir = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
    std::string full = (dir.empty() ? "." : dir) + "/" + program;
    struct stat st;
    if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(full.c_str(), X_OK) == 0) return full;
      first_error = EACCES;
    }
    if (j == std::string::npos) break;
    i = j + 1;
  }
  raise_errno(first_error,
              (first_error == ENOENT ? "No such file or directory: '" : "Permission denied: '") +
                  program + "'");
}

std::string path_of(const std::optional<std::vector<std::string>>& env) {
  if (env) {
    for (const std::string& e : *env)
      if (e.rfind("PATH=", 0) == 0) return e.substr(5);
  } else if (const char* p = std::getenv("PATH")) {
    return p;
  }
  return "/bin:/usr/bin";  // as confstr(_CS_PATH)
}

int set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) raise_errno(errno, "fcntl");
  return fd;
}

// A descriptor of ours at 3 or above, so that placing the child's 0-2 cannot clobber it.
int above_stdio(Fds& fds, int fd) {
  if (fd > 2) return fd;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (high < 0) raise_errno(errno, "fcntl");
  return fds.add(high);
}

struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
};
struct SpawnAttr {
  posix_spawnattr_t a;
  SpawnAttr() { posix_spawnattr_init(&a); }
  ~SpawnAttr() { posix_spawnattr_destroy(&a); }
};

std::shared_ptr<detail::ProcessState> spawn(std::string program, std::vector<std::string> args,
                                            const SpawnConfig& c) {
  detail::LoopCore* loop = detail::tls_loop;
  if (!loop) throw RuntimeError("create_subprocess_*() needs a running event loop");
  for (int i = 0; i < 3; ++i)
    if (c.stdio[i] < INHERIT || (c.stdio[i] == STDOUT && i != 2))
      throw ValueError("create_subprocess_*(): invalid value " + std::to_string(c.stdio[i]) +
                       " for " +
                       (i == 0   ? "stdin"
                        : i == 1 ? "stdout"
                                 : "stderr") +
                       " (PIPE, DEVNULL, INHERIT, a descriptor, or STDOUT for stderr)");
  if (c.start_new_session && c.process_group)
    throw ValueError(
        "create_subprocess_*(): start_new_session and process_group exclude each other");
  if (c.limit == 0) throw ValueError("create_subprocess_*(): limit must be greater than 0");
  for (int fd : c.pass_fds)
    if (fd < 0 || ::fcntl(fd, F_GETFD) < 0)
      throw ValueError("create_subprocess_*(): pass_fds holds " + std::to_string(fd) +
                       ", which is not an open descriptor");

  std::string path = find_program(program, path_of(c.env));
  Fds fds;
  FileActions fa;
  int parent_end[3] = {-1, -1, -1};
  int devnull = -1;
  for (int i = 0; i < 3; ++i) {
    int v = c.stdio[i], child = -1;
    if (v == PIPE) {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) < 0) raise_errno(errno, "pipe2");
      fds.add(p[0]);
      fds.add(p[1]);
      parent_end[i] = set_nonblocking(i == 0 ? p[1] : p[0]);
      child = above_stdio(fds, i == 0 ? p[0] : p[1]);
    } else if (v == DEVNULL) {
      if (devnull < 0) {
        devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) raise_errno(errno, "open /dev/null");
        fds.add(devnull);
        devnull = above_stdio(fds, devnull);
      }
      child = devnull;
    } else if (v == STDOUT) {
      child = 1;  // after 1 is in place: file actions run in order
    } else if (v >= 0) {
      child = v == i ? v : above_stdio(fds, v);
    }
    if (child >= 0) posix_spawn_file_actions_adddup2(&fa.fa, child, i);  // dup2(i, i) keeps it open
  }
  // Only 0-2 and pass_fds go to the child: everything above the highest passed one is
  // closed there (even what another thread opens meanwhile), and below it what is not
  // close-on-exec.
  int top = 2;
  for (int fd : c.pass_fds) {
    posix_spawn_file_actions_adddup2(&fa.fa, fd, fd);  // clears close-on-exec (glibc >= 2.29)
    top = std::max(top, fd);
  }
  if (top > 2) {
    if (DIR* d = ::opendir("/proc/self/fd")) {
      int self = ::dirfd(d);
      while (dirent* e = ::readdir(d)) {
        int fd = std::atoi(e->d_name);
        if (fd <= 2 || fd >= top || fd == self ||
            std::count(c.pass_fds.begin(), c.pass_fds.end(), fd))
          continue;
        int flags = ::fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) posix_spawn_file_actions_addclose(&fa.fa, fd);
      }
      ::closedir(d);
    }
  }
  posix_spawn_file_actions_addclosefrom_np(&fa.fa, top + 1);
  if (!c.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa.fa, c.cwd.c_str());

  SpawnAttr attr;
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr.a, &none);
  // As Python: what the parent ignores for its own sake is the default again in the child.
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  posix_spawnattr_setsigdefault(&attr.a, &defaults);
  if (c.start_new_session) flags |= POSIX_SPAWN_SETSID;
  if (c.process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr.a, *c.process_group);
  }
  posix_spawnattr_setflags(&attr.a, flags);

  std::vector<char*> argv;
  argv.push_back(program.data());
  for (std::string& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (c.env) {
    for (const std::string& e : *c.env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, path.c_str(), &fa.fa, &attr.a, argv.data(),
                         c.env ? envp.data() : environ);
  if (rc != 0) {
    if (rc == ENOENT && !c.cwd.empty() && ::access(c.cwd.c_str(), F_OK) != 0)
      raise_errno(rc, "No such file or directory (cwd): '" + c.cwd + "'");
    raise_errno(rc, std::string(std::strerror(rc)) + ": '" + program + "'");
  }
  int pidfd = detail::proc::pidfd_open(pid);
  if (pidfd < 0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    raise_errno(e, "pidfd_open");
  }
  std::shared_ptr<detail::ProcessState> st;
  try {
    st = std::make_shared<detail::ProcessState>(*loop, pid, pidfd);
  } catch (...) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(pidfd);
    throw;
  }
  st->leads_group = c.start_new_session || (c.process_group && *c.process_group == 0);
  st->kill_on_drop = c.kill_on_drop;
  st->start_watching();  // reaped whatever happens next
  std::string who = "process " + std::to_string(pid) + "'s ";
  // From here the parent's ends belong to their streams.
  if (parent_end[0] >= 0) {
    fds.release(parent_end[0]);
    st->in = detail::make_pipe_writer(*loop, parent_end[0], who + "stdin");
  }
  if (parent_end[1] >= 0) {
    fds.release(parent_end[1]);
    st->out = detail::make_pipe_reader(*loop, parent_end[1], c.limit, who + "stdout");
  }
  if (parent_end[2] >= 0) {
    fds.release(parent_end[2]);
    st->err = detail::make_pipe_reader(*loop, parent_end[2], c.limit, who + "stderr");
  }
  return st;
}

Coro<subprocess::Process> exec_impl(std::string program, std::vector<std::string> args,
                                    SpawnConfig config) {
  co_return subprocess::Process(spawn(std::move(program), std::move(args), config));
}

}  // namespace

Coro<subprocess::Process> create_subprocess_exec(std::string_view program,
                                                 const std::vector<std::string>& args,
                                                 subprocess::Options options) {
  return exec_impl(std::string(program), args, SpawnConfig(options));
}

Coro<subprocess::Process> create_subprocess_shell(std::string_view cmd,
                                                  subprocess::Options options) {
  std::vector<std::string> args{"-c", std::string(cmd)};
  return exec_impl("/bin/sh", std::move(args), SpawnConfig(options));
}

}  // namespace kettle
