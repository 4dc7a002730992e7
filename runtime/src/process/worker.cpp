// The worker's side: the task loop a worker process runs, the fork server, and starting
// either of them. Everything here runs in a single-threaded child and leaves with _exit, so
// that no destructor, atexit handler or buffered stdio of the parent's runs twice.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "kettle/detail/process/pool_core.hpp"
#include "kettle/exceptions.hpp"
#include "launch.hpp"

extern char** environ;

#ifndef P_PIDFD
#define P_PIDFD 3  // waitid's idtype for a pidfd (Linux 5.4); older headers lack it
#endif

namespace kettle::detail::proc {

namespace {

bool main_wrapped = false;
std::uint64_t running_task = 0;  // in a worker: the id of the task being run

// Ctrl-C reaches a terminal's whole process group: workers ignore it, and the parent (whose
// kettle::run turns it into KeyboardInterrupt) decides what becomes of them. No worker
// traceback, no half-finished task. A handler inherited through fork() (kettle::run's,
// writing into the parent's Asio pipe) would report the signal to the parent a second time.
void leave_signals_to_the_parent() noexcept {
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_DFL);
}

void close_from(int first) noexcept {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, first, ~0U, 0) == 0) return;
#endif
  for (int fd = first; fd < 1024; ++fd)
    ::close(fd);
}

// The parent may die at any moment: then we must not outlive it.
void die_with_parent(pid_t parent) noexcept {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
}

bool write_all(int fd, const char* p, std::size_t n) noexcept {
  while (n > 0) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

[[noreturn]] void leave(int code) noexcept {
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(code);
}

// Runs one task or initializer frame body (after the kind); appends the reply. A worker
// whose initializer failed reports it and exits.
void run_task(Reader& r, MessageKind kind, std::string& out) {
  std::size_t at = out.size();
  run_call(r, kind, out, &running_task);
  if (static_cast<MessageKind>(out[at + 4]) == MessageKind::init_failed) {
    write_all(3, out.data(), out.size());
    leave(1);
  }
}

}  // namespace

int pidfd_open(int pid) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int pidfd_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

int reap_pidfd(int pidfd, bool block) noexcept {
  if (block) {  // waitid on a non-blocking pidfd does not wait
    int fl = ::fcntl(pidfd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) ::fcntl(pidfd, F_SETFL, fl & ~O_NONBLOCK);
  }
  siginfo_t si{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &si,
                  WEXITED | (block ? 0 : WNOHANG));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return -1;
  if (si.si_pid == 0) {
    errno = EAGAIN;  // not yet
    return -1;
  }
  return si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
                                  : (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
}

bool main_is_wrapped() noexcept {
  return main_wrapped;
}

std::uint64_t worker_task_id() noexcept {
  return running_task;
}

std::size_t usable_cpus() noexcept {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<std::size_t>(n) : 1;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) +
           (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended with wait status " + std::to_string(status);
}

// The worker: reads frames from fd 3, runs them in order, replies in order.
void run_worker() {
  std::atomic<std::uint64_t>* progress = nullptr;
  void* slot = ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, 4, 0);
  if (slot != MAP_FAILED) progress = static_cast<std::atomic<std::uint64_t>*>(slot);
  ::close(4);
  std::string in;
  std::string out;
  std::size_t pos = 0;
  ::fcntl(3, F_SETFD, FD_CLOEXEC);  // programs the user's code runs must not hold it open
  auto flush = [&] {
    std::fflush(stdout);
    std::fflush(stderr);
    if (!out.empty() && !write_all(3, out.data(), out.size())) leave(1);
    out.clear();
  };
  for (;;) {
    while (in.size() - pos >= 4) {
      std::uint32_t n;
      std::memcpy(&n, in.data() + pos, 4);
      if (in.size() - pos - 4 < n) break;
      Reader r(in.data() + pos + 4, n);
      pos += 4 + n;
      auto kind = static_cast<MessageKind>(r.u8());
      if (kind == MessageKind::exit) {
        flush();
        leave(r.left() ? r.u8() : 0);
      }
      if (kind == MessageKind::init) {
        // The first frame: the initializer, if there is one (a bare id if not).
        if (r.left() > sizeof(std::uint64_t)) run_task(r, kind, out);
        out.clear();
        std::size_t f = begin_frame(out, MessageKind::ready);
        end_frame(out, f);
        flush();
        continue;
      }
      // Every earlier reply leaves before the next task starts: if this one kills the
      // process, the parent knows which task did it and loses no finished result.
      if (!out.empty()) flush();
      if (progress && r.left() >= sizeof(std::uint64_t)) {
        std::uint64_t id;
        std::memcpy(&id, r.data(), sizeof id);
        progress->store(id, std::memory_order_release);
      }
      run_task(r, kind, out);
    }
    flush();
    in.erase(0, pos);
    pos = 0;
    std::size_t have = in.size();
    in.resize(have + 65536);
    ssize_t k;
    do {
      k = ::read(3, in.data() + have, 65536);
    } while (k < 0 && errno == EINTR);
    if (k <= 0) leave(0);  // the parent closed our socket (or died): nothing more to do
    in.resize(have + static_cast<std::size_t>(k));
  }
}

bool send_record(int sock, const std::string& bytes, int fd, int fd2) noexcept {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  int fds[2] = {fd, fd2};
  int n = fd2 >= 0 ? 2 : fd >= 0 ? 1 : 0;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)];
  if (n > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  }
  for (;;) {
    if (::sendmsg(sock, &msg, MSG_NOSIGNAL) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

// The fork server: forks a worker for each FORK request (the worker's socket comes with
// it), reports each one's pid, and reports each exit with its wait status. It was started
// while its parent had one thread (or exec'd fresh), so forking here is safe. When its
// parent goes away it kills its workers and exits.
void run_server(int fd) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &chld, &old);
  int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) ::_exit(1);
  std::unordered_set<pid_t> children;
  pid_t self = ::getpid();
  auto reply = [&](std::string& rec) {
    if (!send_record(fd, rec)) {
      for (pid_t c : children)
        ::kill(c, SIGKILL);
      ::_exit(0);
    }
  };
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) continue;
    if (p[1].revents) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) > 0) {
      }
      int status;
      pid_t c;
      while ((c = ::waitpid(-1, &status, WNOHANG)) > 0) {
        children.erase(c);
        std::string rec;
        Writer w(rec);
        w.u8(static_cast<std::uint8_t>(MessageKind::exited));
        w.i32(c);
        w.i32(status);
        reply(rec);
      }
    }
    if (!p[0].revents) continue;
    char buf[64];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // the parent is gone
      for (pid_t c : children)
        ::kill(c, SIGKILL);
      ::_exit(0);
    }
    int fds[2] = {-1, -1};  // the worker's socket and its progress slot
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        std::memcpy(fds, CMSG_DATA(c),
                    std::min<std::size_t>(sizeof fds, c->cmsg_len - CMSG_LEN(0)));
    int wfd = fds[0];
    Reader r(buf, static_cast<std::size_t>(n));
    if (static_cast<MessageKind>(r.u8()) != MessageKind::fork || wfd < 0) ::_exit(2);
    std::uint64_t req = r.u64();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(sfd);
      ::close(fd);
      ::sigprocmask(SIG_SETMASK, &old, nullptr);
      ::dup2(wfd, 3);
      ::dup2(fds[1], 4);
      close_from(5);
      die_with_parent(self);
      run_worker();
    }
    int err = errno;
    ::close(wfd);
    ::close(fds[1]);
    // The parent signals and watches the worker through a pidfd, opened here, where the
    // child cannot have been reaped yet: it always names this very process.
    int pfd = -1;
    if (pid > 0) {
      pfd = pidfd_open(pid);
      if (pfd < 0) {
        err = errno;
        ::kill(pid, SIGKILL);  // our unreaped child: the pid is still its own
        pid = -1;
      } else {
        children.insert(pid);
      }
    }
    std::string rec;
    Writer w(rec);
    w.u8(static_cast<std::uint8_t>(MessageKind::forked));
    w.u64(req);
    w.i32(pid > 0 ? pid : -err);
    if (!send_record(fd, rec, pfd)) {
      for (pid_t c : children)
        ::kill(c, SIGKILL);
      ::_exit(0);
    }
    if (pfd >= 0) ::close(pfd);
  }
}

int spawn_self(const char* role, int fd, int fd4) {
  // Move the fds out of the way of 3 and 4 first (dup2 onto itself would keep its
  // close-on-exec flag); 5 is the lowest floor that does, and works under any fd limit.
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 5);
  int high4 = fd4 >= 0 ? ::fcntl(fd4, F_DUPFD_CLOEXEC, 5) : -1;
  if (high < 0 || (fd4 >= 0 && high4 < 0)) {
    int e = errno;
    if (high >= 0) ::close(high);
    throw RuntimeError(std::string("kettle: fcntl failed: ") + std::strerror(e));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, high, 3);
  if (high4 >= 0) posix_spawn_file_actions_adddup2(&fa, high4, 4);
  std::vector<std::string> env_store;
  std::vector<char*> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "KETTLE_PROCESS_ROLE=", 20) != 0 &&
        std::strncmp(*e, "KETTLE_PARENT_PID=", 18) != 0)
      env.push_back(*e);
  env_store.push_back(std::string("KETTLE_PROCESS_ROLE=") + role);
  env_store.push_back("KETTLE_PARENT_PID=" + std::to_string(::getpid()));
  for (auto& s : env_store)
    env.push_back(s.data());
  env.push_back(nullptr);
  std::string name = std::string("kettle-") + role;
  char* argv[] = {name.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, env.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(high);
  if (high4 >= 0) ::close(high4);
  if (rc != 0)
    throw RuntimeError(std::string("kettle: cannot start a ") + role +
                       " process (posix_spawn of /proc/self/exe): " + std::strerror(rc));
  return pid;
}

int fork_server(int fd) {
  std::fflush(nullptr);  // or the server's workers would print our buffered output again
  // No signal may reach the child before its handlers are reset: an inherited handler
  // (a loop's, writing into the parent's Asio pipe) would report it to the parent.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw RuntimeError(std::string("kettle: fork failed: ") + std::strerror(e));
  }
  if (pid != 0) ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid == 0) {
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction sa {};
      if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_IGN &&
          sa.sa_handler != SIG_DFL)
        ::signal(sig, SIG_DFL);
    }
    leave_signals_to_the_parent();
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    ::dup2(fd, 3);
    close_from(4);
    run_server(3);
  }
  return pid;
}

// A role is taken only from the process that started us, over the socket it made: a stray
// KETTLE_PROCESS_ROLE (inherited, or set by whoever runs a setuid program) is an error.
void check_role(const std::string& role) {
  auto refuse = [&](const char* why) {
    std::fprintf(stderr,
                 "kettle: KETTLE_PROCESS_ROLE=%s is set, but %s. Only a kettle process pool starts "
                 "workers: unset KETTLE_PROCESS_ROLE to run this program.\n",
                 role.c_str(), why);
    ::_exit(2);
  };
  if (::getauxval(AT_SECURE)) refuse("this program runs setuid or setgid");
  if (role != "worker" && role != "forkserver") refuse("that is not a kettle role");
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(3, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    refuse("fd 3 is not a socket to a kettle process");
  if (cred.pid != ::getppid() || cred.uid != ::getuid())
    refuse("fd 3 was not made by the process that started this one");
  const char* parent = std::getenv("KETTLE_PARENT_PID");
  if (!parent || std::atoi(parent) != ::getppid())
    refuse("KETTLE_PARENT_PID does not name our parent");
}

void run_role(const char* role) {
  leave_signals_to_the_parent();
  std::string r = role;
  check_role(r);
  pid_t ppid = ::getppid();
  ::unsetenv("KETTLE_PROCESS_ROLE");
  ::unsetenv("KETTLE_PARENT_PID");
  close_from(r == "worker" ? 5 : 4);
  if (r == "worker") {
    die_with_parent(ppid);
    run_worker();
  }
  // The fork server is not tied to the thread that started it: it leaves when its socket
  // closes.
  run_server(3);
}

void note_main_wrapped() noexcept {
  main_wrapped = true;
}

}  // namespace kettle::detail::proc
