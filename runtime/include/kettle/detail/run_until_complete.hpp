// Internal: EventLoop::run_until_complete, which needs both the loop and tasks.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <utility>

#include "kettle/detail/future_core.hpp"

namespace kettle {

template <class Aw>
decltype(auto) EventLoop::run_until_complete(Aw&& aw) {
  check_open();
  check_can_run();
  using T = detail::await_value_t<Aw>;
  if constexpr (requires { aw.state()->loop(); }) {
    if (aw.state() && aw.state()->loop() != &core_)
      throw ValueError(
          "The future belongs to a different loop than the one run_until_complete() runs");
  }
  detail::CoreRef<detail::FutureCore> f = detail::ensure_future(core_, std::forward<Aw>(aw));
  struct StopWhenDone : detail::Waiter {
    explicit StopWhenDone(EventLoop& l) noexcept
        : Waiter([](Waiter* w, bool) noexcept { static_cast<StopWhenDone*>(w)->loop.stop(); }),
          loop(l) {}
    EventLoop& loop;
  } stopper(*this);
  if (!f->done()) {
    f->add_waiter(stopper);
    try {
      run_forever();
    } catch (...) {
      f->remove_waiter(stopper);
      throw;
    }
    f->remove_waiter(stopper);
  }
  if (!f->done()) throw RuntimeError("Event loop stopped before the awaited work completed.");
  return detail::future_take<T>(f.get(), f->refs() == 1);
}

}  // namespace kettle
