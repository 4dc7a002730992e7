#include "kettle/coro.hpp"

#include <cxxabi.h>

#include <typeinfo>

namespace kettle::detail {

void CoroPromiseBase::unhandled_exception() noexcept {
  exception_ = std::current_exception();
  // Inspecting the type costs nothing here; finding out later would mean a rethrow.
  const std::type_info* t = abi::__cxa_current_exception_type();
  cancelled_ = t && *t == typeid(CancelledError);
}

void throw_coro_reused() {
  throw RuntimeError("cannot reuse an already awaited (or empty) kettle::Coro");
}

}  // namespace kettle::detail
