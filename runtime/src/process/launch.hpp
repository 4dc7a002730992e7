// Internal: starting worker processes and the fork server, and the code they run.
#pragma once

#include <cstdint>
#include <string>

namespace kettle::detail::proc {

// Runs this program again (/proc/self/exe) as `role` ("worker" or "forkserver") with `fd`
// as its fd 3 (and `fd4`, if not -1, as its fd 4). Returns the pid; throws RuntimeError if it
// cannot start.
int spawn_self(const char* role, int fd, int fd4 = -1);
// Forks a fork server from this (single-threaded) process, serving on `fd`. Returns its pid.
int fork_server(int fd);

// What a worker or a fork server runs. Never return. A worker talks on fd 3 and records in
// the shared word mapped from fd 4 (its progress slot) the id of each task as it starts it,
// so that the parent knows, if the worker dies, whether the task it sent last had started.
[[noreturn]] void run_worker();
[[noreturn]] void run_server(int fd);
// Called by the wrapped main when KETTLE_PROCESS_ROLE is set.
[[noreturn]] void run_role(const char* role);
void note_main_wrapped() noexcept;

// One child-exit mechanism for process pools and subprocesses: a child is named by a pidfd
// (pidfd_open(2), for good: never a pid that may have been reused), signalled through it,
// watched for readability on an io_context, and reaped with waitid(P_PIDFD) (never
// waitpid(-1), which would take other libraries' children).
int pidfd_open(int pid) noexcept;
int pidfd_signal(int pidfd, int sig) noexcept;  // 0, or -1 with errno
// Reaps the child: its wait status (as waitpid's), or -1 with errno EAGAIN if it has not
// exited yet (only without `block`), or another errno if it cannot be waited for. A blocking wait
// works on a non-blocking pidfd too.
int reap_pidfd(int pidfd, bool block) noexcept;

// Sends one seqpacket record, with the fds that are not -1 attached. Returns false on error.
bool send_record(int sock, const std::string& bytes, int fd = -1, int fd2 = -1) noexcept;
// "killed by signal 9 (SIGKILL)", "exited with status 3".
std::string describe_status(int status);

}  // namespace kettle::detail::proc
