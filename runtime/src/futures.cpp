#include "kettle/futures.hpp"

#include "kettle/detail/durations.hpp"
#include "kettle/event_loop.hpp"

namespace kettle::detail {

namespace {
// The waiters' and watchers' lists: doubly linked, unordered, under the future's lock.
template <class N>
void list_push(N*& head, N& n) noexcept {
  n.prev = nullptr;
  n.next = head;
  if (head) head->prev = &n;
  head = &n;
  n.linked = true;
}
template <class N>
bool list_remove(N*& head, N& n) noexcept {
  if (!n.linked) return false;
  if (n.prev)
    n.prev->next = n.next;
  else
    head = n.next;
  if (n.next) n.next->prev = n.prev;
  n.linked = false;
  return true;
}
}  // namespace

SharedStateBase::SharedStateBase() noexcept {
  if (LoopCore* l = tls_loop) origin_ = l->gate;
}

SharedStateBase::~SharedStateBase() {
  if (status() != Status::finished || !exc_ || retrieved_.load(std::memory_order_relaxed)) return;
  // Moved, not copied: whichever thread runs the report holds the last reference.
  ExceptionContext ctx{"Future exception was never retrieved", std::move(exc_), {}};
  if (origin_ && origin_->leads_to(tls_loop)) {
    tls_loop->owner.call_exception_handler(ctx);
    return;
  }
  try {
    auto report = std::make_shared<ExceptionContext>(std::move(ctx));
    if (origin_ && origin_->post_callback([report] {
          if (LoopCore* l = tls_loop) l->owner.call_exception_handler(*report);
        }))
      return;
    ctx = std::move(*report);
  } catch (...) {
  }
  EventLoop::default_exception_handler(ctx);
}

void SharedStateBase::finish_locked(Status s, Notice& n) {
  status_.store(s, std::memory_order_release);
  n.callbacks = std::move(callbacks_);
  for (AsyncWaiter* w = waiters_; w; w = w->next) {
    w->linked = false;
    n.wakes.push_back({w->task, w->gate});
  }
  waiters_ = nullptr;
  while (Watcher* w = watchers_) {
    watchers_ = w->next;
    w->linked = false;
    w->fire();
  }
  cv_.notify_all();
}

bool SharedStateBase::watch(Watcher& w) {
  std::lock_guard lock(mutex_);
  if (done()) return false;
  list_push(watchers_, w);
  return true;
}

void SharedStateBase::unwatch(Watcher& w) noexcept {
  std::lock_guard lock(mutex_);
  list_remove(watchers_, w);
}

void SharedStateBase::notify(Notice& n) noexcept {
  for (Wake& w : n.wakes) {
    try {
      w.gate->post(w.task);  // a closed loop drops it: its tasks are being abandoned
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

void SharedStateBase::wait_and_check(std::optional<std::chrono::duration<double>> timeout,
                                     bool rethrow) {
  std::int64_t ns = timeout ? duration_ns(*timeout, "Future.result()") : kNeverNs;
  if (!done()) {
    if (tls_loop) throw_result_on_loop();
    std::unique_lock lock(mutex_);
    auto is_done = [&] { return done(); };
    if (ns >= kNeverNs) {
      cv_.wait(lock, is_done);
    } else if (!cv_.wait_for(lock, std::chrono::nanoseconds(ns > 0 ? ns : 0), is_done)) {
      throw TimeoutError("the future did not complete within the timeout");
    }
  }
  if (status() == Status::cancelled) throw_for_cancelled_shared();
  if (rethrow && exc_) {
    mark_retrieved();
    std::rethrow_exception(exc_);
  }
}

std::exception_ptr SharedStateBase::exception_for(
    std::optional<std::chrono::duration<double>> timeout) {
  wait_and_check(timeout, false);
  mark_retrieved();
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
  list_push(waiters_, w);
  return true;
}

void SharedStateBase::unlink(AsyncWaiter& w) noexcept {
  std::lock_guard lock(mutex_);
  list_remove(waiters_, w);
}

bool SharedStateBase::abort_wait(AsyncWaiter& w) {
  Notice n;
  bool stop = false;
  {
    std::lock_guard lock(mutex_);
    if (!list_remove(waiters_, w)) return false;  // a completion is already waking the task
    Status s = status();
    if (s == Status::pending) {
      finish_locked(Status::cancelled, n);  // as asyncio: cancelling the waiter cancels it
    } else if (s == Status::running) {
      // The work goes on unless it listens for stop requests; whatever it ends with, its
      // awaiter gave up on it, so an exception (say, the stop request obeyed by throwing)
      // is not "never retrieved" (asyncio does not report it either).
      stop = true;
      mark_retrieved();
    }
  }
  if (stop) stop_.request_stop();  // outside the lock: stop callbacks run inline
  notify(n);
  return true;
}

CoreRef<FutureCore> ForeignWatch::make(LoopCore& loop, std::shared_ptr<SharedStateBase> s) {
  CoreRef<FutureCore> ref(new ForeignWatch(loop, std::move(s)));
  auto* w = static_cast<ForeignWatch*>(ref.get());
  w->relay_ = std::make_shared<Relay>();
  w->relay_->watch = w;
  w->relay_->gate = loop.gate;
  if (!w->s_->watch(*w->relay_)) w->settle();
  return ref;
}

ForeignWatch::~ForeignWatch() {
  if (relay_) {
    s_->unwatch(*relay_);  // after this, fire() is not running and never will
    relay_->watch = nullptr;
  }
}

void ForeignWatch::Relay::fire() noexcept {
  // Under the Future's lock, on the completing thread: hand the news to the loop.
  in_flight = shared_from_this();
  std::shared_ptr<LoopGate> g = gate;
  if (!g->post(this)) in_flight.reset();  // the loop is closed (this may go with it)
}

void ForeignWatch::Relay::run() noexcept {
  auto keep = std::move(in_flight);
  if (watch) watch->settle();
}

void ForeignWatch::settle() noexcept {
  switch (s_->status()) {
    case SharedStateBase::Status::cancelled:
      finish_cancelled(std::make_exception_ptr(CancelledError()));
      break;
    case SharedStateBase::Status::finished:
      if (std::exception_ptr e = s_->exception_unlocked()) {
        retrieved_ = true;  // the Future itself reports it if nobody looks
        finish_exception(std::move(e), false);
      } else {
        finish();
      }
      break;
    default:
      break;
  }
}

BlockingWait::BlockingWait(std::vector<std::shared_ptr<SharedStateBase>> states)
    : nodes_(states.size()) {
  finished_.reserve(nodes_.size());  // each node is pushed at most once: fire() cannot throw
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    n.owner = this;
    n.index = i;
    n.state = std::move(states[i]);
    if (!n.state->watch(n)) {  // done already (another node may be firing meanwhile)
      std::lock_guard lock(mutex_);
      finished_.push_back(i);
    }
  }
}

BlockingWait::~BlockingWait() {
  for (Node& n : nodes_)
    n.state->unwatch(n);
}

void BlockingWait::Node::fire() noexcept {
  {
    std::lock_guard lock(owner->mutex_);
    owner->finished_.push_back(index);
  }
  owner->cv_.notify_all();
}

bool BlockingWait::wait_locked(std::unique_lock<std::mutex>& lock, std::int64_t deadline) {
  if (tls_loop) throw_result_on_loop();
  if (deadline >= kNeverNs) {
    cv_.wait(lock);
    return true;
  }
  std::int64_t left = deadline - now_ns();
  if (left <= 0) return false;
  cv_.wait_for(lock, std::chrono::nanoseconds(left));
  return true;
}

std::optional<std::size_t> BlockingWait::take() {
  std::lock_guard lock(mutex_);
  if (taken_ == finished_.size()) return std::nullopt;
  return finished_[taken_++];
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
