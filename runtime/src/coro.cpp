#include "kettle/coro.hpp"

#include <cxxabi.h>

#include <cstdio>
#include <typeinfo>

#include "kettle/event_loop.hpp"
#include "symbols.hpp"

namespace kettle::detail {

void CoroPromiseBase::unhandled_exception() noexcept {
  exception_ = std::current_exception();
  // Inspecting the type costs nothing here; finding out later would mean a rethrow.
  const std::type_info* t = abi::__cxa_current_exception_type();
  cancelled_ = t && *t == typeid(CancelledError);
}

void report_never_awaited(const void* frame, const void* created_at) noexcept {
  try {
    // Python: "coroutine 'fetch_data' was never awaited", with where it was created (a
    // return address, or with clang an address inside the call: one byte back is the call's
    // line in both cases).
    std::string message =
        "coroutine '" + short_function(coroutine_function(frame)) + "' was never awaited";
    CodeLocation w = locate(created_at, true);
    std::string where;
    if (!w.file.empty() || !w.function.empty())
      where = "Coroutine created at (most recent call last):\n  File \"" +
              (w.file.empty() ? std::string("?") : w.file) + "\", line " + std::to_string(w.line) +
              ", in " + (w.function.empty() ? std::string("?") : w.function) + "\n";
    if (LoopCore* l = tls_loop) {
      l->owner.call_exception_handler({message, nullptr, {}, where});
    } else {
      std::string text = "kettle: " + message + "\n" + where;
      std::fputs(text.c_str(), stderr);
    }
  } catch (...) {
  }
}

void throw_coro_reused() {
  throw RuntimeError("cannot reuse an already awaited (or empty) kettle::Coro");
}

}  // namespace kettle::detail
