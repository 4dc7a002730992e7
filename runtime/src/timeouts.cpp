#include "kettle/timeouts.hpp"

#include <time.h>

#include <algorithm>

namespace kettle {

namespace detail {

namespace {
// CLOCK_MONOTONIC_COARSE is the clock of steady_clock read at the last tick: a tenth of
// the cost, at most one tick behind. wait_for reads it on entry, so that a body that
// completes without suspending pays no exact clock read and no timer at all.
std::int64_t coarse_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t coarse_resolution_ns() noexcept {
  static const std::int64_t res = [] {
    timespec ts;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0) return std::int64_t(10'000'000);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }();
  return res;
}

}  // namespace

void throw_timeout_error() {
  throw TimeoutError("the deadline passed (kettle::TimeoutError)");
}

}  // namespace detail

Timeout::Timeout(std::optional<clock::time_point> when) noexcept {
  if (when) when_ = detail::time_point_ns(*when, "timeout_at()");
  fire_.owner = this;
  node_.set_inline_target(&fire_);
}

Timeout::Timeout(Timeout&& o) noexcept
    : when_(o.when_), relative_(o.relative_), relative_mode_(o.relative_mode_) {
  fire_.owner = this;
  node_.set_inline_target(&fire_);
}

Timeout::Timeout(At at) noexcept : when_(at.ns) {
  fire_.owner = this;
  node_.set_inline_target(&fire_);
}

Timeout::Timeout(Relative rel) noexcept : relative_(rel.ns), relative_mode_(true) {
  fire_.owner = this;
  node_.set_inline_target(&fire_);
}

std::optional<double> Timeout::when() const noexcept {
  if (!when_) return std::nullopt;
  return double(*when_) * 1e-9;
}

void Timeout::enter_relative() noexcept {
  // wait_for: bind to the running task; the deadline is armed only if the body suspends.
  detail::LoopCore* l = detail::tls_loop;
  if (!l || !l->current_task) [[unlikely]] {
    enter_slow();  // raises
    return;
  }
  task_ = l->current_task;
  loop_ = l;
  cancelling_ = task_->cancelling();
  state_ = State::entered;
  entered_coarse_ = detail::coarse_now_ns();
}

void Timeout::enter_slow() {
  if (state_ != State::created) throw RuntimeError("Timeout has already been entered");
  detail::LoopCore* l = detail::tls_loop;
  if (!l || !l->current_task) throw RuntimeError("Timeout should be used inside a task");
  task_ = l->current_task;
  loop_ = l;
  cancelling_ = task_->cancelling();
  state_ = State::entered;
  if (relative_mode_)
    entered_coarse_ = detail::coarse_now_ns();
  else
    arm();
}

void Timeout::arm_relative() {
  // Either bound is at least the entry time plus the timeout; take the nearer.
  std::int64_t now = detail::now_ns();
  when_ = std::min(entered_coarse_ + detail::coarse_resolution_ns() + relative_, now + relative_);
  arm();
}

void Timeout::arm() {
  if (!when_) return;
  if (*when_ <= detail::now_ns()) {
    // Already due: as asyncio's call_soon(_on_timeout), before the task's next step.
    soon_ = loop_->owner.call_soon([this] { on_timeout(); });
    return;
  }
  node_.when = *when_;
  loop_->timers.push(&node_);
}

void Timeout::disarm() noexcept {
  if (node_.armed()) loop_->timers.remove(&node_);
  if (soon_) {
    soon_.cancel();
    soon_ = Handle();
  }
}

void Timeout::on_timeout() noexcept {
  if (state_ != State::entered) return;
  state_ = State::expiring;
  try {
    task_->cancel({});
  } catch (...) {
    loop_->owner.call_exception_handler(
        {"could not cancel a task at its deadline", std::current_exception(), {}});
  }
}

bool Timeout::exit_slow() noexcept {
  disarm();
  if (state_ == State::expiring) {
    state_ = State::expired;
    // Ours to handle only if no other cancellation is pending.
    return task_->uncancel() <= cancelling_;
  }
  if (state_ == State::entered) state_ = State::exited;
  return false;
}

void Timeout::reschedule(std::optional<double> when) {
  std::optional<std::int64_t> ns;
  if (when) ns = detail::seconds_ns(*when, "Timeout.reschedule()");
  reschedule_ns(ns);
}

void Timeout::reschedule(std::optional<clock::time_point> when) {
  std::optional<std::int64_t> ns;
  if (when) ns = detail::time_point_ns(*when, "Timeout.reschedule()");
  reschedule_ns(ns);
}

void Timeout::reschedule_ns(std::optional<std::int64_t> when) {
  if (state_ != State::entered) {
    if (state_ == State::created) throw RuntimeError("Timeout has not been entered");
    const char* what = state_ == State::expiring  ? "expiring"
                       : state_ == State::expired ? "expired"
                                                  : "finished";
    throw RuntimeError(std::string("Cannot change state of ") + what + " Timeout");
  }
  disarm();
  relative_mode_ = false;
  when_ = when;
  arm();
}

Timeout timeout(double delay_seconds) {
  return timeout(std::chrono::duration<double>(delay_seconds));
}

Timeout timeout(std::nullopt_t) noexcept {
  return Timeout(std::nullopt);
}

Timeout timeout_at(double when) {
  return Timeout(Timeout::At{detail::seconds_ns(when, "timeout_at()")});
}

Timeout timeout_at(Timeout::clock::time_point when) noexcept {
  return Timeout(when);
}

Timeout timeout_at(std::nullopt_t) noexcept {
  return Timeout(std::nullopt);
}

}  // namespace kettle
