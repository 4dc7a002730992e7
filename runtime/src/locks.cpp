#include "kettle/locks.hpp"

#include <limits>
#include <string>

namespace kettle {

namespace detail {
void LoopBound::bind_or_throw(LoopCore* l, const char* what) {
  if (!l)
    throw RuntimeError(std::string(what) +
                       " must run on the thread of the event loop that uses it (from a task or "
                       "a loop callback): kettle's locks and queues are not thread-safe");
  if (!loop_id_) {
    loop_id_ = l->id;
    return;
  }
  throw RuntimeError(std::string(what) +
                     ": this lock or queue is bound to a different event loop (another thread); "
                     "kettle's locks and queues are not thread-safe");
}

void LoopBound::refuse_unless_free(const char* what) const {
  if (!loop_gone_or_owned_here(loop_id_))
    throw RuntimeError(std::string(what) +
                       ": this lock, queue or stream belongs to an event loop of another "
                       "thread; kettle's locks, queues and streams are not thread-safe: use it "
                       "from that loop (call_soon_threadsafe or run_coroutine_threadsafe reach "
                       "it), or once that loop is gone");
}
}  // namespace detail

// Lock

void Lock::release() {
  check_thread("Lock.release()");
  if (!locked_) throw RuntimeError("Lock is not acquired.");
  locked_ = false;
  wake_up_first();
}

void Lock::wake_up_first() {
  // Only the first waiter: if it is done already (woken or cancelled), it is about to run
  // and will pass the wake-up on itself if it has to.
  if (detail::WaitNode* n = waiters_.front()) n->set_done();
}

// Event

void Event::set() {
  check_thread("Event.set()");
  if (value_) return;
  value_ = true;
  for (detail::WaitNode* n = waiters_.front(); n; n = detail::WaitList::next(n))
    n->set_done();
}

// Condition

class Condition::NotifiedAwaiter : private detail::WaitNode {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::Condition::wait()";
  explicit NotifiedAwaiter(Condition& c) noexcept : c_(c) {}
  NotifiedAwaiter(const NotifiedAwaiter&) = delete;
  ~NotifiedAwaiter() {
    if (woken_unclaimed()) {  // notified, never to use it: pass the notification on
      c_.waiters_.remove(*this);
      c_.notify_unchecked(1);
    }
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    c_.waiters_.push_back(*this);
    suspend(h);
  }
  void await_resume() {
    c_.waiters_.remove(*this);
    if (resumed_cancelled()) throw_cancelled();
  }

 private:
  Condition& c_;
};

Coro<bool> Condition::wait() {
  check_loop("Condition.wait()");
  if (!locked()) throw RuntimeError("cannot wait on un-acquired lock");
  release();
  std::exception_ptr err;
  try {
    co_await NotifiedAwaiter(*this);
  } catch (...) {
    err = std::current_exception();
  }
  // Re-acquire the lock even if cancelled; the most recent cancellation wins.
  for (;;) {
    try {
      co_await lock_->acquire();
      break;
    } catch (const CancelledError&) {
      err = std::current_exception();
    }
  }
  if (err) {
    // We may have been notified before the error: pass the notification on (a spurious
    // wake-up for someone is allowed; a lost one is not).
    notify_unchecked(1);
    std::rethrow_exception(err);
  }
  co_return true;
}

void Condition::notify(std::size_t n) {
  check_thread("Condition.notify()");
  if (!locked()) throw RuntimeError("cannot notify on un-acquired lock");
  notify_unchecked(n);
}

void Condition::notify_all() {
  notify(waiters_.size());
}

void Condition::notify_unchecked(std::size_t n) {
  std::size_t idx = 0;
  for (detail::WaitNode* w = waiters_.front(); w && idx < n; w = detail::WaitList::next(w))
    if (!w->done()) {
      ++idx;
      w->set_done();
    }
}

// Semaphore

Semaphore::Semaphore(long value) : value_(value) {
  if (value < 0) throw ValueError("Semaphore initial value must be >= 0");
}

bool Semaphore::locked() const noexcept {
  if (value_ == 0) return true;
  for (detail::WaitNode* n = waiters_.front(); n; n = detail::WaitList::next(n))
    if (n->state() != detail::WaitNode::State::cancelled) return true;
  return false;
}

void Semaphore::release() {
  check_thread("Semaphore.release()");
  if (value_ == std::numeric_limits<long>::max())
    throw ValueError("Semaphore released too many times: its value would overflow");
  ++value_;
  wake_up_next();
}

bool Semaphore::wake_up_next() {
  for (detail::WaitNode* n = waiters_.front(); n; n = detail::WaitList::next(n))
    if (!n->done()) {
      --value_;
      n->set_done();
      return true;
    }
  return false;
}

void BoundedSemaphore::release() {
  if (value_ >= bound_) throw ValueError("BoundedSemaphore released too many times");
  Semaphore::release();
}

// Barrier

Barrier::Barrier(std::size_t parties) : parties_(parties) {
  if (parties < 1) throw ValueError("parties must be > 0");
}

Coro<std::size_t> Barrier::wait() {
  auto held = co_await cond_.scoped();
  co_await block();  // while the barrier drains or resets
  std::size_t index = count_++;
  std::exception_ptr err;
  try {
    if (index + 1 == parties_) {
      state_ = State::draining;  // the last one in releases the others
      cond_.notify_all();
    } else {
      co_await wait_released();
    }
  } catch (...) {
    err = std::current_exception();
  }
  --count_;
  exit();
  if (err) std::rethrow_exception(err);
  co_return index;
}

Coro<> Barrier::block() {
  co_await cond_.wait_for(
      [this] { return state_ != State::draining && state_ != State::resetting; });
  if (state_ == State::broken) throw BrokenBarrierError("Barrier aborted");
}

Coro<> Barrier::wait_released() {
  co_await cond_.wait_for([this] { return state_ != State::filling; });
  if (state_ == State::broken || state_ == State::resetting)
    throw BrokenBarrierError("Abort or reset of barrier");
}

void Barrier::exit() {
  if (count_ == 0) {
    if (state_ == State::resetting || state_ == State::draining) state_ = State::filling;
    cond_.notify_all();
  }
}

Coro<> Barrier::reset() {
  auto held = co_await cond_.scoped();
  if (count_ > 0) {
    if (state_ != State::resetting) state_ = State::resetting;
  } else {
    state_ = State::filling;
  }
  cond_.notify_all();
}

Coro<> Barrier::abort() {
  auto held = co_await cond_.scoped();
  state_ = State::broken;
  cond_.notify_all();
}

}  // namespace kettle
