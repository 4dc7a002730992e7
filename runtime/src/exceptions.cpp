#include "kettle/exceptions.hpp"

#include "kettle/detail/durations.hpp"
#include "symbols.hpp"

#include <cxxabi.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace kettle {

namespace {
std::string group_what(const std::string& message, std::size_t n) {
  return message + " (" + std::to_string(n) + " sub-exception" + (n == 1 ? "" : "s") + ")";
}
}  // namespace

using detail::demangle;

IncompleteReadError::IncompleteReadError(std::string partial, std::optional<std::size_t> expected)
    : Error(std::to_string(partial.size()) + " bytes read on a total of " +
            (expected ? std::to_string(*expected) : std::string("undefined")) + " expected bytes"),
      partial_(std::move(partial)),
      expected_(expected) {}

std::exception_ptr make_os_error(std::error_code ec, const std::string& what) {
  if (ec.category() == std::system_category() || ec.category() == std::generic_category()) {
    switch (ec.value()) {
      case EPIPE:
      case ESHUTDOWN:
        return std::make_exception_ptr(BrokenPipeError(ec, what));
      case ECONNABORTED:
        return std::make_exception_ptr(ConnectionAbortedError(ec, what));
      case ECONNREFUSED:
        return std::make_exception_ptr(ConnectionRefusedError(ec, what));
      case ECONNRESET:
        return std::make_exception_ptr(ConnectionResetError(ec, what));
      case ENOENT:
        return std::make_exception_ptr(FileNotFoundError(ec, what));
      case EACCES:
      case EPERM:
        return std::make_exception_ptr(PermissionError(ec, what));
      case ESRCH:
        return std::make_exception_ptr(ProcessLookupError(ec, what));
      default:
        break;
    }
  }
  return std::make_exception_ptr(OSError(ec, what));
}

void raise_os_error(std::error_code ec, const std::string& what) {
  std::rethrow_exception(make_os_error(ec, what));
}

ExceptionGroup::ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
    : Error(group_what(message, exceptions.size())),
      message_(std::move(message)),
      exceptions_(std::move(exceptions)) {}

WorkerCrashedError::WorkerCrashedError(std::string message, int pid, int status) noexcept
    : BrokenProcessPool(message), pid_(pid), status_(status) {}

RemoteError::RemoteError(std::string type_name, std::string message, int pid)
    : Error(type_name + ": " + message + " (raised in worker process " + std::to_string(pid) + ")"),
      type_name_(std::move(type_name)),
      message_(std::move(message)),
      pid_(pid) {}

RemoteError::RemoteError(std::string type_name, std::string message, int pid,
                         const std::string& where)
    : Error(type_name + ": " + message + " (raised in " + where + ", pid " + std::to_string(pid) +
            ")"),
      type_name_(std::move(type_name)),
      message_(std::move(message)),
      pid_(pid) {}

std::string describe(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError& c) {
    return c.message().empty() ? "kettle::CancelledError"
                               : "kettle::CancelledError: " + c.message();
  } catch (const std::exception& x) {
    return demangle(typeid(x).name()) + ": " + x.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return t ? demangle(t->name()) : std::string("unknown exception");
  }
}

namespace detail {
void throw_nan_duration(const char* what) {
  throw ValueError(std::string(what) + ": the duration is NaN (not a number)");
}
}  // namespace detail

}  // namespace kettle
