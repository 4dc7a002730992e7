// Test helpers: peers no one here wrote (Python, openssl), run as child processes.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>

#include <kettle/kettle.hpp>

// Starts a shell command with popen; its stdout is read line by line off the loop.
// `cleanup`: a file to remove when the peer goes.
class PeerProcess {
 public:
  explicit PeerProcess(const std::string& command, std::string cleanup = {})
      : pipe_(::popen(("exec " + command).c_str(), "r")), cleanup_(std::move(cleanup)) {}
  PeerProcess(const PeerProcess&) = delete;
  ~PeerProcess() {
    if (pipe_) ::pclose(pipe_);
    if (!cleanup_.empty()) std::remove(cleanup_.c_str());
  }
  // The next line of the peer's output ("" at its end).
  kettle::Coro<std::string> readline() {
    auto read_line = [](FILE* f) {
      char buf[4096];
      return std::string(std::fgets(buf, sizeof buf, f) ? buf : "");
    };
    co_return co_await kettle::to_thread(read_line, pipe_);
  }
  // Waits for the peer to exit; its exit status (128 + signal if killed).
  kettle::Coro<int> wait() {
    auto close_pipe = [](FILE* f) { return ::pclose(f); };
    int status = co_await kettle::to_thread(close_pipe, std::exchange(pipe_, nullptr));
    co_return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  FILE* pipe_;
  std::string cleanup_;
};

// A Python script in a temporary file, run by Debian's /usr/bin/python3 in isolated mode (-I):
// another file in /tmp named like a stdlib module (ssl.py) must not shadow it.
class PythonPeer : public PeerProcess {
 public:
  PythonPeer(const std::string& script, const std::string& args)
      : PythonPeer(write(script), args, 0) {}

 private:
  PythonPeer(const std::string& path, const std::string& args, int)
      : PeerProcess("/usr/bin/python3 -I " + path + " " + args, path) {}
  static std::string write(const std::string& script) {
    static int counter = 0;
    std::string path =
        "/tmp/kettle-peer-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".py";
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(script.c_str(), f);
    std::fclose(f);
    return path;
  }
};
