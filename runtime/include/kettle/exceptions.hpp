// kettle/exceptions.hpp — the exception types of asyncio and concurrent.futures.
//
//   CancelledError        thrown at the co_await where a cancelled task was suspended.
//                         It deliberately does NOT derive from std::exception, so that
//                         `catch (const std::exception&)` cannot swallow a cancellation
//                         (the reason Python moved it to BaseException).
//   Error                 base of every other kettle error (a std::runtime_error).
//   RuntimeError          wrong use: no running loop, loop already running or closed, ...
//   TimeoutError          a deadline passed (wait_for, timeout scopes).
//   InvalidStateError     result() of something that is not done, and the like.
//   ValueError            a bad argument value.
//   ExceptionGroup        several exceptions at once (TaskGroup).
//   BrokenExecutor        an executor can no longer run work (BrokenThreadPool,
//                         BrokenProcessPool derive from it).
//   IncompleteReadError   EOF before a stream read got what it needed (partial(): what came).
//   LimitOverrunError     a stream's separator not found within its limit (consumed()).
//   OSError               Python's OSError family: a std::system_error with the errno.
//     ConnectionError       BrokenPipeError, ConnectionAbortedError,
//                           ConnectionRefusedError, ConnectionResetError derive from it.
//     FileNotFoundError, PermissionError.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace kettle {

class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}

  // The message given to cancel(msg); empty when none was given.
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept { return message_.c_str(); }

 private:
  std::string message_;
};

// Python's KeyboardInterrupt: kettle::run raises it when Ctrl-C (SIGINT; SIGTERM too with
// RunOptions::handle_sigterm) interrupted the program, once the main task has unwound. Like
// CancelledError, not a std::exception, so that `catch (const std::exception&)` in user code
// does not swallow it. A program that lets it end main should exit with 128 + signal().
class KeyboardInterrupt {
 public:
  explicit KeyboardInterrupt(int sig = 2) noexcept : signal_(sig) {}
  int signal() const noexcept { return signal_; }
  const char* what() const noexcept {
    return signal_ == 2 ? "KeyboardInterrupt (SIGINT)" : "KeyboardInterrupt (termination signal)";
  }

 private:
  int signal_;
};

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RuntimeError : public Error {
 public:
  using Error::Error;
};

class TimeoutError : public Error {
 public:
  using Error::Error;
  TimeoutError() : Error("the operation timed out") {}
};

class InvalidStateError : public Error {
 public:
  using Error::Error;
};

class ValueError : public Error {
 public:
  using Error::Error;
};

class BrokenExecutor : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

class BrokenThreadPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

class BrokenProcessPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

// The worker process running a task died (a signal, exit(), abort()): that task fails with
// this; the pool replaces the worker and goes on.
class WorkerCrashedError : public BrokenProcessPool {
 public:
  WorkerCrashedError(std::string message, int pid, int status) noexcept;
  int pid() const noexcept { return pid_; }
  // The wait status: WIFSIGNALED/WTERMSIG or WIFEXITED/WEXITSTATUS apply.
  int status() const noexcept { return status_; }

 private:
  int pid_;
  int status_;
};

// An exception of a type kettle cannot recreate, raised by a function in a worker process
// (Python's _RemoteTraceback): the original type's name, its what() and the worker's pid.
class RemoteError : public Error {
 public:
  RemoteError(std::string type_name, std::string message, int pid);
  const std::string& type_name() const noexcept { return type_name_; }
  const std::string& message() const noexcept { return message_; }
  int pid() const noexcept { return pid_; }

 private:
  std::string type_name_;
  std::string message_;
  int pid_;
};

class ExceptionGroup : public Error {
 public:
  ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions);

  const std::string& message() const noexcept { return message_; }
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::string message_;
  std::vector<std::exception_ptr> exceptions_;
};

// asyncio.IncompleteReadError: the stream ended after partial() bytes, before expected()
// (none: a separator was expected).
class IncompleteReadError : public Error {
 public:
  IncompleteReadError(std::string partial, std::optional<std::size_t> expected);
  const std::string& partial() const noexcept { return partial_; }
  std::optional<std::size_t> expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::optional<std::size_t> expected_;
};

// asyncio.LimitOverrunError: no separator within the limit. The data stays in the reader's
// buffer; consumed() is how many bytes of it may be skipped.
class LimitOverrunError : public Error {
 public:
  LimitOverrunError(const std::string& message, std::size_t consumed)
      : Error(message), consumed_(consumed) {}
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

// Python's OSError: what() is "<what>: <strerror>", code() the errno (system_category).
class OSError : public std::system_error {
 public:
  OSError(std::error_code ec, const std::string& what) : std::system_error(ec, what) {}
  OSError(int errno_value, const std::string& what)
      : std::system_error(errno_value, std::system_category(), what) {}
};
class FileNotFoundError : public OSError {
 public:
  using OSError::OSError;
};
class PermissionError : public OSError {
 public:
  using OSError::OSError;
};
class ProcessLookupError : public OSError {
 public:
  using OSError::OSError;
};
class ConnectionError : public OSError {
 public:
  using OSError::OSError;
};
class BrokenPipeError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
class ConnectionAbortedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
class ConnectionRefusedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
class ConnectionResetError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
  explicit ConnectionResetError(const std::string& what) : ConnectionError(ECONNRESET, what) {}
};

// The OSError subclass Python raises for ec's errno (ECONNRESET: ConnectionResetError, ...),
// as an exception_ptr, or thrown.
std::exception_ptr make_os_error(std::error_code ec, const std::string& what);
[[noreturn]] void raise_os_error(std::error_code ec, const std::string& what);

// A one-line description of any exception, CancelledError and foreign types included:
// "kettle::ValueError: bad value". Used by the exception handler and by examples.
std::string describe(const std::exception_ptr& e);

}  // namespace kettle
