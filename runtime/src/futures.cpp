#include "kettle/futures.hpp"

#include "kettle/event_loop.hpp"

namespace kettle::detail {

void SharedStateBase::finish_locked(Status s, Notice& n) {
  status_.store(s, std::memory_order_release);
  n.callbacks = std::move(callbacks_);
  for (AsyncWaiter* w = waiters_; w; w = w->next) {
    w->linked = false;
    n.wakes.push_back({w->task, w->loop, w->gate});
  }
  waiters_ = nullptr;
  cv_.notify_all();
}

void SharedStateBase::notify(Notice& n) noexcept {
  for (Wake& w : n.wakes) {
    try {
      if (tls_loop == w.loop)
        w.loop->schedule(w.task);  // completed on the task's own loop: no cross-thread post
      else
        w.gate->post(w.task);
    } catch (...) {
      report_callback_error(std::current_exception());
    }
  }
  for (auto& fn : n.callbacks) {
    try {
      fn();
    } catch (...) {
      report_callback_error(std::current_exception());
    }
  }
}

bool SharedStateBase::cancel() {
  Notice n;
  {
    std::lock_guard lock(mutex_);
    Status s = status();
    if (s == Status::cancelled) return true;
    if (s != Status::pending) return false;
    finish_locked(Status::cancelled, n);
  }
  notify(n);
  return true;
}

bool SharedStateBase::set_running_or_notify_cancel() {
  std::lock_guard lock(mutex_);
  Status s = status();
  if (s == Status::cancelled) return false;
  if (s != Status::pending)
    throw RuntimeError("set_running_or_notify_cancel() on a future that is running or done");
  status_.store(Status::running, std::memory_order_release);
  return true;
}

void SharedStateBase::set_exception(std::exception_ptr e) {
  if (!e) throw ValueError("set_exception() needs an exception (the pointer is null)");
  complete([&] { exc_ = std::move(e); });
}

void SharedStateBase::wait_and_check(std::optional<double> timeout, bool rethrow) {
  if (!done()) {
    if (tls_loop) throw_result_on_loop();
    std::unique_lock lock(mutex_);
    auto is_done = [&] { return done(); };
    if (!timeout) {
      cv_.wait(lock, is_done);
    } else if (!cv_.wait_for(lock, std::chrono::duration<double>(*timeout), is_done)) {
      throw TimeoutError("the future did not complete within the timeout");
    }
  }
  if (status() == Status::cancelled) throw_for_cancelled_shared();
  if (rethrow && exc_) std::rethrow_exception(exc_);
}

std::exception_ptr SharedStateBase::exception_for(std::optional<double> timeout) {
  wait_and_check(timeout, false);
  return exc_;
}

void SharedStateBase::add_callback(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    if (!done()) {
      callbacks_.push_back(std::move(fn));
      return;
    }
  }
  try {
    fn();
  } catch (...) {
    report_callback_error(std::current_exception());
  }
}

bool SharedStateBase::link(AsyncWaiter& w) {
  std::lock_guard lock(mutex_);
  if (done()) return false;
  w.prev = nullptr;
  w.next = waiters_;
  if (waiters_) waiters_->prev = &w;
  waiters_ = &w;
  w.linked = true;
  return true;
}

void SharedStateBase::unlink(AsyncWaiter& w) noexcept {
  std::lock_guard lock(mutex_);
  if (!w.linked) return;
  if (w.prev)
    w.prev->next = w.next;
  else
    waiters_ = w.next;
  if (w.next) w.next->prev = w.prev;
  w.linked = false;
}

bool SharedStateBase::abort_wait(AsyncWaiter& w) {
  Notice n;
  bool stop = false;
  {
    std::lock_guard lock(mutex_);
    if (!w.linked) return false;  // a completion is already waking the task
    if (w.prev)
      w.prev->next = w.next;
    else
      waiters_ = w.next;
    if (w.next) w.next->prev = w.prev;
    w.linked = false;
    Status s = status();
    if (s == Status::pending)
      finish_locked(Status::cancelled, n);  // as asyncio: cancelling the waiter cancels it
    else
      stop = s == Status::running;  // the work goes on unless it listens for stop requests
  }
  if (stop) stop_.request_stop();  // outside the lock: stop callbacks run inline
  notify(n);
  return true;
}

void throw_for_cancelled_shared() {
  throw CancelledError();
}

void throw_result_on_loop() {
  throw RuntimeError(
      "Future.result() would block the event loop running on this thread: co_await the "
      "future instead");
}

void report_callback_error(std::exception_ptr e) noexcept {
  ExceptionContext ctx{"exception calling a Future's done callback", std::move(e), {}};
  if (LoopCore* l = tls_loop)
    l->owner.call_exception_handler(ctx);
  else
    EventLoop::default_exception_handler(ctx);
}

}  // namespace kettle::detail
