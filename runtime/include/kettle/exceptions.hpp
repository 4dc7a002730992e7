/// @file
/// kettle/exceptions.hpp — the exception types of asyncio and concurrent.futures.
///
/// - `CancelledError`: thrown at the co_await where a cancelled task was suspended.
///   It deliberately does NOT derive from std::exception, so that
///   `catch (const std::exception&)` cannot swallow a cancellation
///   (the reason Python moved it to BaseException).
/// - `Error`: base of every other kettle error (a std::runtime_error).
/// - `RuntimeError`: wrong use: no running loop, loop already running or closed, ...
/// - `TimeoutError`: a deadline passed (wait_for, timeout scopes).
/// - `InvalidStateError`: result() of something that is not done, and the like.
/// - `ValueError`: a bad argument value.
/// - `ExceptionGroup`: several exceptions at once (TaskGroup).
/// - `BrokenExecutor`: an executor can no longer run work (BrokenThreadPool,
///   BrokenProcessPool derive from it).
/// - `IncompleteReadError`: EOF before a stream read got what it needed (partial(): what came).
/// - `LimitOverrunError`: a stream's separator not found within its limit (consumed()).
/// - `OSError`: Python's OSError family: a std::system_error with the errno.
///   - `ConnectionError`: BrokenPipeError, ConnectionAbortedError,
///     ConnectionRefusedError, ConnectionResetError derive from it.
///   - FileNotFoundError, PermissionError, ProcessLookupError (ESRCH).
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace kettle {

/// asyncio.CancelledError: thrown at the co_await where a cancelled task was suspended. Not
/// a std::exception, so that `catch (const std::exception&)` cannot swallow a cancellation.
class CancelledError {
 public:
  /// A cancellation without a message.
  CancelledError() = default;
  /// A cancellation with the message given to cancel(msg).
  explicit CancelledError(std::string message) : message_(std::move(message)) {}

  /// The message given to cancel(msg); empty when none was given.
  const std::string& message() const noexcept { return message_; }
  /// The same message, as a C string.
  const char* what() const noexcept { return message_.c_str(); }

 private:
  std::string message_;
};

/// Python's KeyboardInterrupt: kettle::run raises it when Ctrl-C (SIGINT; SIGTERM too with
/// RunOptions::handle_sigterm) interrupted the program, once the main task has unwound. Like
/// CancelledError, not a std::exception, so that `catch (const std::exception&)` in user code
/// does not swallow it. A program that lets it end main should exit with 128 + signal().
class KeyboardInterrupt {
 public:
  /// An interruption by signal sig (2: SIGINT).
  explicit KeyboardInterrupt(int sig = 2) noexcept : signal_(sig) {}
  /// The signal that interrupted the program.
  int signal() const noexcept { return signal_; }
  /// "KeyboardInterrupt (SIGINT)", or "KeyboardInterrupt (termination signal)" for another
  /// signal.
  const char* what() const noexcept {
    return signal_ == 2 ? "KeyboardInterrupt (SIGINT)" : "KeyboardInterrupt (termination signal)";
  }

 private:
  int signal_;
};

/// The base of every kettle error except CancelledError, KeyboardInterrupt and the OSError
/// family: a std::runtime_error.
class Error : public std::runtime_error {
 public:
  /// std::runtime_error's constructors: the message is what().
  using std::runtime_error::runtime_error;
};

/// Python's RuntimeError: wrong use (no running loop, loop already running or closed, ...).
class RuntimeError : public Error {
 public:
  /// Error's constructors: the message is what().
  using Error::Error;
};

/// asyncio.TimeoutError: a deadline passed (wait_for, timeout scopes).
class TimeoutError : public Error {
 public:
  /// Error's constructors: the message is what().
  using Error::Error;
  /// "the operation timed out".
  TimeoutError() : Error("the operation timed out") {}
};

/// asyncio.InvalidStateError: result() of something that is not done, and the like.
class InvalidStateError : public Error {
 public:
  /// Error's constructors: the message is what().
  using Error::Error;
};

/// Python's ValueError: a bad argument value.
class ValueError : public Error {
 public:
  /// Error's constructors: the message is what().
  using Error::Error;
};

/// concurrent.futures.BrokenExecutor: an executor can no longer run work.
class BrokenExecutor : public RuntimeError {
 public:
  /// RuntimeError's constructors: the message is what().
  using RuntimeError::RuntimeError;
};

/// concurrent.futures.thread.BrokenThreadPool: the work of a ThreadPoolExecutor whose
/// initializer failed.
class BrokenThreadPool : public BrokenExecutor {
 public:
  /// BrokenExecutor's constructors: the message is what().
  using BrokenExecutor::BrokenExecutor;
};

/// concurrent.futures.process.BrokenProcessPool: a process pool can no longer run work.
class BrokenProcessPool : public BrokenExecutor {
 public:
  /// BrokenExecutor's constructors: the message is what().
  using BrokenExecutor::BrokenExecutor;
};

/// The worker process running a task died (a signal, exit(), abort()): that task fails with
/// this; the pool replaces the worker and goes on.
class WorkerCrashedError : public BrokenProcessPool {
 public:
  /// message is what(); pid the worker's, status its wait status.
  WorkerCrashedError(std::string message, int pid, int status) noexcept;
  /// The process id of the worker that died.
  int pid() const noexcept { return pid_; }
  /// The wait status: WIFSIGNALED/WTERMSIG or WIFEXITED/WEXITSTATUS apply.
  int status() const noexcept { return status_; }

 private:
  int pid_;
  int status_;
};

/// An exception of a type kettle cannot recreate, raised by a function in a worker process
/// (Python's _RemoteTraceback): the original type's name, its what() and the worker's pid.
class RemoteError : public Error {
 public:
  /// what() is "<type_name>: <message> (raised in worker process <pid>)".
  RemoteError(std::string type_name, std::string message, int pid);
  /// what() is "<type_name>: <message> (raised in <where>, pid <pid>)", where names the
  /// worker ("Worker 3 of 4 on node7": an MPI rank and its host).
  RemoteError(std::string type_name, std::string message, int pid, const std::string& where);
  /// The name of the original exception's type.
  const std::string& type_name() const noexcept { return type_name_; }
  /// The original exception's what().
  const std::string& message() const noexcept { return message_; }
  /// The process id of the worker that raised it.
  int pid() const noexcept { return pid_; }

 private:
  std::string type_name_;
  std::string message_;
  int pid_;
};

/// Python's ExceptionGroup: several exceptions at once (what a TaskGroup raises when
/// children fail).
class ExceptionGroup : public Error {
 public:
  /// what() is "<message> (<n> sub-exceptions)".
  ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions);

  /// The message, without the count of sub-exceptions.
  const std::string& message() const noexcept { return message_; }
  /// The exceptions it groups.
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::string message_;
  std::vector<std::exception_ptr> exceptions_;
};

/// asyncio.IncompleteReadError: the stream ended after partial() bytes, before expected()
/// (none: a separator was expected).
class IncompleteReadError : public Error {
 public:
  /// what() is "<n> bytes read on a total of <expected> expected bytes".
  IncompleteReadError(std::string partial, std::optional<std::size_t> expected);
  /// The bytes read before the end of the stream.
  const std::string& partial() const noexcept { return partial_; }
  /// How many bytes were expected; none when a separator was.
  std::optional<std::size_t> expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::optional<std::size_t> expected_;
};

/// asyncio.LimitOverrunError: no separator within the limit. The data stays in the reader's
/// buffer; consumed() is how many bytes of it may be skipped.
class LimitOverrunError : public Error {
 public:
  /// message is what().
  LimitOverrunError(const std::string& message, std::size_t consumed)
      : Error(message), consumed_(consumed) {}
  /// How many bytes of the buffer may be skipped.
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

/// Python's OSError: what() is "<what>: <strerror>", code() the errno (system_category).
class OSError : public std::system_error {
 public:
  ///@{
  /// The error ec (or errno_value, in the system category), with what() "<what>: <strerror>".
  OSError(std::error_code ec, const std::string& what) : std::system_error(ec, what) {}
  OSError(int errno_value, const std::string& what)
      : std::system_error(errno_value, std::system_category(), what) {}
  ///@}
};
/// Python's FileNotFoundError (ENOENT).
class FileNotFoundError : public OSError {
 public:
  /// OSError's constructors.
  using OSError::OSError;
};
/// Python's PermissionError (EACCES, EPERM).
class PermissionError : public OSError {
 public:
  /// OSError's constructors.
  using OSError::OSError;
};
/// Python's ProcessLookupError (ESRCH).
class ProcessLookupError : public OSError {
 public:
  /// OSError's constructors.
  using OSError::OSError;
};
/// Python's ConnectionError: the base of the connection errors.
class ConnectionError : public OSError {
 public:
  /// OSError's constructors.
  using OSError::OSError;
};
/// Python's BrokenPipeError (EPIPE, ESHUTDOWN).
class BrokenPipeError : public ConnectionError {
 public:
  /// OSError's constructors.
  using ConnectionError::ConnectionError;
};
/// Python's ConnectionAbortedError (ECONNABORTED).
class ConnectionAbortedError : public ConnectionError {
 public:
  /// OSError's constructors.
  using ConnectionError::ConnectionError;
};
/// Python's ConnectionRefusedError (ECONNREFUSED).
class ConnectionRefusedError : public ConnectionError {
 public:
  /// OSError's constructors.
  using ConnectionError::ConnectionError;
};
/// Python's ConnectionResetError (ECONNRESET).
class ConnectionResetError : public ConnectionError {
 public:
  /// OSError's constructors.
  using ConnectionError::ConnectionError;
  /// ECONNRESET, with what() "<what>: <strerror>".
  explicit ConnectionResetError(const std::string& what) : ConnectionError(ECONNRESET, what) {}
};

///@{
/// The OSError subclass Python raises for ec's errno (ECONNRESET: ConnectionResetError, ...),
/// as an exception_ptr, or thrown.
std::exception_ptr make_os_error(std::error_code ec, const std::string& what);
[[noreturn]] void raise_os_error(std::error_code ec, const std::string& what);
///@}

/// A one-line description of any exception, CancelledError and foreign types included:
/// "kettle::ValueError: bad value". Used by the exception handler and by examples.
std::string describe(const std::exception_ptr& e);

}  // namespace kettle
