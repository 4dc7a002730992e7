/// @file
/// kettle/timeouts.hpp — deadlines: asyncio.timeout, timeout_at, wait_for.
///
/// @code
/// // async with asyncio.timeout(2): data = await fetch()
/// Data data = co_await kettle::timeout(2s, fetch());
///
/// // async with asyncio.timeout_at(when) as cm: ... cm.reschedule(...)
/// kettle::Timeout cm = kettle::timeout_at(loop.time() + 2);
/// Data data = co_await cm.run(fetch_with(cm));   // fetch_with may call cm.reschedule()
/// if (cm.expired()) ...
///
/// // asyncio.wait_for(aw, 2): a Coro runs in this task; a Task is awaited
/// int v = co_await kettle::wait_for(compute(), 2s);
/// @endcode
///
/// The body runs inside the current task; no task is created. When the deadline passes the
/// task is cancelled (the body sees CancelledError where it is suspended) and, once the
/// CancelledError has left the body, the scope turns it into kettle::TimeoutError. Only
/// the cancellation the scope caused is converted: a cancellation from outside, or an outer
/// timeout's, goes through unchanged (nested timeouts are counted with
/// Task::cancelling/uncancel, as in asyncio). An exception raised while the body unwinds
/// propagates instead of TimeoutError. The deadline is disarmed on every way out.
/// Cancellation: what the body awaits decides what is left behind (see each awaitable);
/// wait_for of a Task cancels it and waits until it has really finished. Any awaitable
/// works as a body or in wait_for, and wait_for(...) can itself go to create_task.
///
/// C++ has no `async with`, so the body is an awaitable (usually a Coro) handed to the
/// scope. To reach the scope from inside the body, create it first and pass it by
/// reference, as with `cm` above.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "kettle/coro.hpp"
#include "kettle/detail/durations.hpp"
#include "kettle/detail/future_core.hpp"
#include "kettle/detail/task_state.hpp"
#include "kettle/event_loop.hpp"
#include "kettle/exceptions.hpp"

namespace kettle {

namespace detail {
template <class Aw, bool Owned>
class TimeoutAwaiter;
}

/// asyncio.Timeout: a deadline scope for a body run in the current task (what timeout()
/// and timeout_at() return); see timeouts.hpp.
class Timeout {
 public:
  /// The clock of the deadlines (EventLoop::clock).
  using clock = EventLoop::clock;

  /// A deadline at `when` (in EventLoop::clock), or none.
  explicit Timeout(std::optional<clock::time_point> when) noexcept;
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  /// Disarms the deadline if it is still armed.
  ~Timeout() {
    if (node_.armed() || soon_) disarm();
  }

  /// Runs `body` (a Coro or any awaitable) in the current task under this deadline and
  /// returns its result. A Timeout is entered once: running it again raises RuntimeError.
  template <class Aw>
  [[nodiscard]] detail::TimeoutAwaiter<Aw, false> run(Aw&& body);

  /// The deadline in the units of EventLoop::time(), or none.
  std::optional<double> when() const noexcept;
  ///@{
  /// Moves the deadline (none: no deadline); only while the body runs (RuntimeError
  /// otherwise). NaN is ValueError.
  void reschedule(std::optional<double> when);
  void reschedule(std::optional<clock::time_point> when);
  void reschedule(std::nullopt_t) { reschedule(std::optional<clock::time_point>()); }
  ///@}
  /// Whether the deadline passed while the body ran.
  bool expired() const noexcept { return state_ == State::expiring || state_ == State::expired; }

  /// Implementation: where the scope is in its life.
  enum class State : std::uint8_t {
    created,   ///< Not entered yet.
    entered,   ///< The body runs.
    expiring,  ///< The deadline passed and the task was cancelled; the body unwinds.
    expired,   ///< Exited after the deadline passed.
    exited     ///< Exited before the deadline.
  };
  /// Implementation: the scope's state.
  State state() const noexcept { return state_; }
  /// Implementation, for wait_for: a deadline `ns` after entry, armed only if the body
  /// suspends.
  struct Relative {
    std::int64_t ns;  ///< Nanoseconds after entry.
  };
  /// Implementation: a Relative deadline.
  explicit Timeout(Relative rel) noexcept;
  /// Implementation: a deadline at `ns` on the steady clock (already saturated).
  struct At {
    std::int64_t ns;  ///< Steady-clock nanoseconds.
  };
  /// Implementation: an At deadline.
  explicit Timeout(At at) noexcept;
  /// Implementation: enters the scope in the current task (arms the deadline).
  /// RuntimeError if entered before or outside a task.
  void enter() {
    if (relative_mode_ && state_ == State::created) [[likely]]
      enter_relative();
    else
      enter_slow();
  }
  /// Implementation: the body suspended; a Relative deadline is armed now.
  void on_suspend() {
    if (relative_mode_ && !when_ && state_ == State::entered) arm_relative();
  }
  /// Implementation: leaves the scope and disarms the deadline; true if the body's
  /// CancelledError must become TimeoutError.
  bool exit() noexcept {
    if (state_ == State::entered && !node_.armed() && !soon_) [[likely]] {
      state_ = State::exited;  // nothing armed, nothing fired: the common way out
      return false;
    }
    return exit_slow();
  }

 private:
  template <class, bool>
  friend class detail::TimeoutAwaiter;
  // Only before it is entered (a wait_for moved into create_task, say).
  Timeout(Timeout&& o) noexcept;

  struct Fire final : detail::Runnable {
    Timeout* owner;
    void run() noexcept override { owner->on_timeout(); }
  };
  void enter_relative() noexcept;
  void enter_slow();
  void arm_relative();
  bool exit_slow() noexcept;
  void arm();
  void disarm() noexcept;
  void reschedule_ns(std::optional<std::int64_t> when);
  void on_timeout() noexcept;

  std::optional<std::int64_t> when_;  // steady_clock ns
  std::int64_t relative_ = 0;         // Relative mode: the duration, until armed
  std::int64_t entered_coarse_ = 0;   // Relative mode: a cheap reading of the clock at entry
  detail::TaskBase* task_ = nullptr;
  detail::LoopCore* loop_ = nullptr;
  std::uint32_t cancelling_ = 0;
  State state_ = State::created;
  bool relative_mode_ = false;
  detail::TimerNode node_;
  Fire fire_;
  Handle soon_;  // a deadline already due fires through the ready queue, as asyncio does
};

///@{
/// asyncio.timeout(delay) / timeout(None) / timeout_at(when) / timeout_at(None). A delay or
/// deadline more than 100 years away means none; NaN is ValueError.
template <class Rep, class Period>
Timeout timeout(std::chrono::duration<Rep, Period> delay);
Timeout timeout(double delay_seconds);
Timeout timeout(std::nullopt_t) noexcept;
Timeout timeout_at(double when);
Timeout timeout_at(Timeout::clock::time_point when) noexcept;
Timeout timeout_at(std::nullopt_t) noexcept;
///@}

/// `co_await timeout(d, body)`: run `body` under a deadline d from now.
template <class Rep, class Period, class Aw>
[[nodiscard]] detail::TimeoutAwaiter<Aw, true> timeout(std::chrono::duration<Rep, Period> delay,
                                                       Aw&& body);

///@{
/// asyncio.wait_for(aw, timeout). A Coro (or any awaitable) runs in this task; a Task or a
/// gather is awaited (and cancelled on expiry, then waited for until it has really
/// finished). A timeout <= 0 returns the result if it is already there and otherwise
/// cancels at once; a Coro is then never started. std::nullopt: no deadline.
template <class Aw, class Rep, class Period>
[[nodiscard]] detail::TimeoutAwaiter<Aw, true> wait_for(Aw&& aw,
                                                        std::chrono::duration<Rep, Period> t);
template <class Aw>
[[nodiscard]] detail::TimeoutAwaiter<Aw, true> wait_for(Aw&& aw, double seconds);
template <class Aw>
[[nodiscard]] detail::TimeoutAwaiter<Aw, true> wait_for(Aw&& aw, std::nullopt_t);
///@}

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

[[noreturn]] void throw_timeout_error();

// The awaiter of an awaitable the slot owns (so a Task's value is moved out if nobody
// else holds the task).
template <class Aw>
decltype(auto) get_awaiter(Aw& aw) {
  if constexpr (requires { std::move(aw).operator co_await(); })
    return std::move(aw).operator co_await();
  else
    return static_cast<Aw&>(aw);
}

// Builds a non-movable awaiter in place (optional::emplace through a conversion that
// returns the prvalue, which is then not moved).
template <class F>
struct InPlace {
  F make;
  operator decltype(std::declval<F&>()())() { return make(); }
};
template <class F>
InPlace(F) -> InPlace<F>;

// Holds the awaitable and, once awaiting starts, the awaiter it makes. Movable until then,
// so that a combinator holding it can itself be moved (into create_task, say).
template <class Aw>
struct AwaitableSlot {
  using Stored = std::remove_cvref_t<Aw>;
  static constexpr bool makes_awaiter = requires(Stored & s) { std::move(s).operator co_await(); };
  using Made = std::remove_reference_t<decltype(get_awaiter(std::declval<Stored&>()))>;

  template <class A>
  explicit AwaitableSlot(A&& a) : stored(std::forward<A>(a)) {}
  AwaitableSlot(AwaitableSlot&& o) : stored(std::move(o.stored)) {}

  void start() {
    if constexpr (makes_awaiter)
      if (!made) made.emplace(InPlace{[this]() -> Made { return get_awaiter(stored); }});
  }
  auto& awaiter() noexcept {
    if constexpr (makes_awaiter)
      return *made;
    else
      return stored;
  }

  Stored stored;
  struct None {};
  [[no_unique_address]] std::conditional_t<makes_awaiter, std::optional<Made>, None> made;
};

template <class A>
inline constexpr bool is_loop_future_v = requires(A& a) {
  a.state()->refs();
};
template <class A>
inline constexpr bool is_shared_future_v = requires(A& a) {
  a.state()->stop_token();
};

struct Immediate {};  // wait_for with a timeout <= 0

template <class Aw, bool Owned>
class [[nodiscard]] TimeoutAwaiter {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::wait_for()";

 private:
  using Slot = AwaitableSlot<Aw>;
  using Stored = typename Slot::Stored;

 public:
  // Owned: the awaiter holds the Timeout (timeout(d, body), wait_for).
  template <class A, class TimeoutArg>
  requires Owned TimeoutAwaiter(A&& aw, TimeoutArg&& targ)
      : slot_(std::forward<A>(aw)), cm_(std::forward<TimeoutArg>(targ)) {}
  template <class A>
  requires Owned TimeoutAwaiter(A&& aw, Immediate) : slot_(std::forward<A>(aw)), cm_(std::nullopt) {
    immediate_ = true;
  }
  template <class A>
  requires(!Owned) TimeoutAwaiter(A&& aw, Timeout& cm) : slot_(std::forward<A>(aw)), cm_(cm) {}
  // Movable until awaited.
  TimeoutAwaiter(TimeoutAwaiter&& o)
      : slot_(std::move(o.slot_)),
        cm_(std::forward<Cm>(o.cm_)),
        immediate_(o.immediate_),
        immediate_timed_out_(o.immediate_timed_out_) {}
  TimeoutAwaiter& operator=(const TimeoutAwaiter&) = delete;

  bool await_ready() {
    slot_.start();
    if (immediate_) return immediate_ready();
    cm_.enter();
    return slot_.awaiter().await_ready();
  }

  auto await_suspend(std::coroutine_handle<> h) {
    // Only a pending Task or gather gets here when immediate_: cancel it, wait for it
    // (a future that cancel() completes at once needs no waiting).
    if constexpr (is_loop_future_v<Stored> && !returns_handle) {
      if (immediate_) {
        slot_.stored.cancel();
        if (slot_.stored.done()) return false;
      }
    }
    return suspend_inner(h, !immediate_);
  }

  decltype(auto) await_resume() {
    bool convert = immediate_ ? immediate_timed_out_ : cm_.exit();
    if (!convert) return slot_.awaiter().await_resume();
    try {
      return slot_.awaiter().await_resume();
    } catch (const CancelledError&) {
      throw_timeout_error();
    }
  }

 private:
  bool immediate_ready() {
    if constexpr (is_loop_future_v<Stored>) {
      // Done: its result. Pending: cancelled and waited for (await_suspend).
      immediate_timed_out_ = !slot_.stored.done();
      return !immediate_timed_out_;
    } else if constexpr (is_shared_future_v<Stored>) {
      if (slot_.stored.done()) return true;
      slot_.stored.cancel();  // if it runs already, it gets a stop request
      if (!slot_.stored.cancelled()) slot_.stored.state()->request_stop();
      throw_timeout_error();
    } else {
      // A Coro or other awaitable is dropped unstarted (a Coro silently: asyncio makes it a
      // task and cancels it before it starts).
      if constexpr (requires { typename Stored::promise_type; }) CoroAccess::discard(slot_.stored);
      throw_timeout_error();
    }
  }

  using SuspendResult =
      decltype(std::declval<Slot&>().awaiter().await_suspend(std::coroutine_handle<>()));
  static constexpr bool returns_handle =
      !std::is_void_v<SuspendResult> && !std::is_same_v<SuspendResult, bool>;

  // Suspends in the inner awaitable; arms the deadline if it really suspended.
  auto suspend_inner(std::coroutine_handle<> h, bool arm) {
    using R = SuspendResult;
    if constexpr (std::is_void_v<R>) {
      slot_.awaiter().await_suspend(h);
      if (arm) cm_.on_suspend();
      return true;
    } else if constexpr (std::is_same_v<R, bool>) {
      bool suspended = slot_.awaiter().await_suspend(h);
      if (suspended && arm) cm_.on_suspend();
      return suspended;
    } else {
      auto next = slot_.awaiter().await_suspend(h);
      if (arm) cm_.on_suspend();
      return next;
    }
  }

  using Cm = std::conditional_t<Owned, Timeout, Timeout&>;
  Slot slot_;
  Cm cm_;
  bool immediate_ = false;
  bool immediate_timed_out_ = false;
};

}  // namespace detail

template <class Aw>
detail::TimeoutAwaiter<Aw, false> Timeout::run(Aw&& body) {
  return detail::TimeoutAwaiter<Aw, false>(std::forward<Aw>(body), *this);
}

template <class Rep, class Period>
Timeout timeout(std::chrono::duration<Rep, Period> delay) {
  return Timeout(Timeout::At{detail::now_ns() + detail::duration_ns(delay, "timeout()")});
}

template <class Rep, class Period, class Aw>
detail::TimeoutAwaiter<Aw, true> timeout(std::chrono::duration<Rep, Period> delay, Aw&& body) {
  return detail::TimeoutAwaiter<Aw, true>(
      std::forward<Aw>(body),
      Timeout::At{detail::now_ns() + detail::duration_ns(delay, "timeout()")});
}

template <class Aw, class Rep, class Period>
detail::TimeoutAwaiter<Aw, true> wait_for(Aw&& aw, std::chrono::duration<Rep, Period> t) {
  std::int64_t ns = detail::duration_ns(t, "wait_for()");
  if (ns <= 0) return detail::TimeoutAwaiter<Aw, true>(std::forward<Aw>(aw), detail::Immediate{});
  return detail::TimeoutAwaiter<Aw, true>(std::forward<Aw>(aw), Timeout::Relative{ns});
}

template <class Aw>
detail::TimeoutAwaiter<Aw, true> wait_for(Aw&& aw, double seconds) {
  return wait_for(std::forward<Aw>(aw), std::chrono::duration<double>(seconds));
}

template <class Aw>
detail::TimeoutAwaiter<Aw, true> wait_for(Aw&& aw, std::nullopt_t) {
  return detail::TimeoutAwaiter<Aw, true>(std::forward<Aw>(aw), std::nullopt);
}

}  // namespace kettle
