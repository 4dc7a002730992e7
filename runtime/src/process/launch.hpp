// Internal: starting worker processes and the fork server, and the code they run.
#pragma once

#include <cstdint>
#include <string>

namespace kettle::detail::proc {

// Runs this program again (/proc/self/exe) as `role` ("worker" or "forkserver") with `fd`
// as its fd 3. Returns the pid; throws RuntimeError if it cannot start.
int spawn_self(const char* role, int fd);
// Forks a fork server from this (single-threaded) process, serving on `fd`. Returns its pid.
int fork_server(int fd);

// What a worker or a fork server runs. Never return.
[[noreturn]] void run_worker(int fd);
[[noreturn]] void run_server(int fd);
// Called by the wrapped main when KETTLE_PROCESS_ROLE is set.
[[noreturn]] void run_role(const char* role);
void note_main_wrapped() noexcept;

// Sends one seqpacket record, with `fd` attached if it is not -1. Returns false on error.
bool send_record(int sock, const std::string& bytes, int fd = -1) noexcept;
// "killed by signal 9 (SIGKILL)", "exited with status 3".
std::string describe_status(int status);

}  // namespace kettle::detail::proc
