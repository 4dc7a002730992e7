#include "kettle/exceptions.hpp"

#include "kettle/detail/durations.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace kettle {

namespace {
std::string group_what(const std::string& message, std::size_t n) {
  return message + " (" + std::to_string(n) + " sub-exception" + (n == 1 ? "" : "s") + ")";
}

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                           std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}
}  // namespace

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
