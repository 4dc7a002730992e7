#include "kettle/detail/future_core.hpp"

#include "kettle/event_loop.hpp"

namespace kettle::detail {

namespace {
// A done callback, queued among the waiters so that it keeps its place in line.
struct CallbackWaiter final : Waiter {
  CallbackWaiter(LoopCore* l, std::function<void()> f) noexcept
      : Waiter(&notify), loop(l), fn(std::move(f)) {}
  static void notify(Waiter* w, bool abandoned) noexcept {
    auto* self = static_cast<CallbackWaiter*>(w);
    if (!abandoned && !self->loop->closed) {
      try {
        self->loop->owner.call_soon(std::move(self->fn));
      } catch (...) {
        self->loop->owner.call_exception_handler(
            {"could not schedule a done callback", std::current_exception(), {}});
      }
    }
    delete self;
  }
  LoopCore* loop;
  std::function<void()> fn;
};
}  // namespace

FutureCore::~FutureCore() {
  // A future dropped while pending (a shield nobody holds any more) frees its callbacks.
  take_waiters([](Waiter* w) {
    if (w->notify == &CallbackWaiter::notify) w->notify(w, true);
  });
  anchor_->release();
}

void FutureCore::destroy() noexcept {
  report_if_never_retrieved();
  dispose();
}

void FutureCore::report_if_never_retrieved() noexcept {
  if (state_ != State::finished || retrieved_ || exc_is_cancel_) return;
  const std::exception_ptr& e = exception_slot();  // no copy (a call) for a value
  if (!e) return;
  ExceptionContext ctx{never_retrieved_message(), e, {}};
  try {
    ctx.task_name = describe_for_handler();
    ctx.source_traceback = source_traceback();
  } catch (...) {
  }
  if (LoopCore* l = anchor_->loop)
    l->owner.call_exception_handler(ctx);
  else
    EventLoop::default_exception_handler(ctx);
}

std::exception_ptr FutureCore::exception() {
  if (state_ == State::pending)
    throw InvalidStateError("Exception is not set: the work is not done yet.");
  if (state_ == State::cancelled) std::rethrow_exception(cancelled_error());
  retrieved_ = true;
  return exception_slot();
}

void FutureCore::check_result() {
  if (state_ == State::pending)
    throw InvalidStateError("Result is not set: the work is not done yet (co_await it first).");
  if (state_ == State::cancelled) std::rethrow_exception(cancelled_error());
  if (std::exception_ptr& e = exception_slot()) {
    retrieved_ = true;
    std::rethrow_exception(e);
  }
}

std::exception_ptr FutureCore::cancelled_error() noexcept {
  std::exception_ptr& e = exception_slot();
  return e ? e : std::make_exception_ptr(CancelledError());
}

void FutureCore::add_waiter(Waiter& w) noexcept {
  if (tail_) {
    w.next = tail_->next;
    tail_->next = &w;
  } else {
    w.next = &w;
  }
  tail_ = &w;
}

void FutureCore::remove_waiter(Waiter& w) noexcept {
  if (!w.linked()) return;
  Waiter* prev = tail_;
  while (prev->next != &w)
    prev = prev->next;
  if (prev == &w)
    tail_ = nullptr;  // it was the only one
  else {
    prev->next = w.next;
    if (tail_ == &w) tail_ = prev;
  }
  w.next = nullptr;
}

void FutureCore::add_done_callback(std::function<void()> fn) {
  LoopCore* l = loop();
  if (!l || l->closed) throw RuntimeError("Event loop is closed");
  if (done())
    l->owner.call_soon(std::move(fn));
  else
    add_waiter(*new CallbackWaiter(l, std::move(fn)));
}

void FutureCore::finish_exception(std::exception_ptr e, bool is_cancelled_error) noexcept {
  exception_slot() = std::move(e);
  exc_is_cancel_ = is_cancelled_error;
  complete(State::finished);
}

void FutureCore::finish_cancelled(std::exception_ptr cancelled_error) noexcept {
  exception_slot() = std::move(cancelled_error);
  complete(State::cancelled);
}

void FutureCore::complete(State s) noexcept {
  add_ref();  // a waiter may drop the last outside reference while we notify
  state_ = s;
  take_waiters([](Waiter* w) { w->notify(w, false); });
  release();
}

void FutureCore::abandon() noexcept {
  take_waiters([](Waiter* w) { w->notify(w, true); });
}

void throw_empty_future(const char* what) {
  throw InvalidStateError(std::string("this ") + what +
                          " handle is empty (default-constructed or moved from)");
}

}  // namespace kettle::detail
