// Test helpers shared by the test files: exceptions from awaits, descriptor counts, this
// test binary run again as a helper process, and waiting for processes to be gone.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

// EXPECT_THROW for an expression that may contain co_await (gtest's cannot).
#define CO_EXPECT_THROW(expr, Type)                        \
  do {                                                     \
    bool thrown_ = false;                                  \
    try {                                                  \
      (void)(expr);                                        \
    } catch (const Type&) {                                \
      thrown_ = true;                                      \
    }                                                      \
    EXPECT_TRUE(thrown_) << #expr " did not raise " #Type; \
  } while (0)

inline std::size_t open_fds() {
  std::size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

// Runs this test binary again with only `test` (a helper that skips itself unless `env`, a
// "NAME=value", is set), in a session of its own if asked. Returns its pid, or -1.
inline pid_t spawn_helper_test(const std::string& test, const std::string& env,
                               bool new_session = false) {
  std::string filter = "--gtest_filter=" + test;
  std::string self = std::filesystem::read_symlink("/proc/self/exe");
  std::string env_entry = env;
  char* argv[] = {self.data(), filter.data(), nullptr};
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e)
    envp.push_back(*e);
  envp.push_back(env_entry.data());
  envp.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (new_session) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t child = -1;
  if (::posix_spawn(&child, self.c_str(), nullptr, &attr, argv, envp.data()) != 0) child = -1;
  posix_spawnattr_destroy(&attr);
  return child;
}

// Its wait status once it exits within `limit`; otherwise it (and its group, if it leads
// one) is killed and there is none.
inline std::optional<int> wait_helper(pid_t child, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    if (::waitpid(child, &status, WNOHANG) == child) return status;
    if (std::chrono::steady_clock::now() > end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(-child, SIGKILL);
  ::kill(child, SIGKILL);
  ::waitpid(child, &status, 0);
  return std::nullopt;
}

// Whether the process is gone: no such pid, or a zombie nobody reaps (PID 1 in a container
// may not).
inline bool process_gone(int pid) {
  if (::kill(pid, 0) != 0) return true;
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return true;
  char buf[512] = {};
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string s(buf, n);
  auto close = s.rfind(')');
  return close != std::string::npos && close + 2 < s.size() && s[close + 2] == 'Z';
}

// Whether all of them are gone within `limit` (a process killed a moment ago may still be
// dying).
inline bool wait_gone(const std::vector<int>& pids, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool all = true;
    for (int p : pids)
      all = all && process_gone(p);
    if (all) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}
