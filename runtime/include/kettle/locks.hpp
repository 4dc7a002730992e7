/// @file
/// kettle/locks.hpp — synchronization primitives for tasks (asyncio.locks).
///
/// @code
/// kettle::Lock lock;
/// {
///   auto held = co_await lock.scoped();   // async with lock:
///   ...                                    // released on every way out of the block
/// }
/// co_await lock.acquire(); ...; lock.release();
///
/// kettle::Event ready;            ready.set();  co_await ready.wait();
/// kettle::Condition cond;         co_await cond.acquire(); co_await cond.wait(); cond.notify();
/// kettle::Semaphore sem(3);       auto slot = co_await sem.scoped();
/// kettle::Barrier barrier(4);     std::size_t index = co_await barrier.wait();
/// @endcode
///
/// As in asyncio, these are for tasks of one loop: they are not thread-safe. Each binds to
/// the loop that first awaits one of its methods; awaiting one from another loop raises
/// RuntimeError, and so does any call from another thread than the loop's while the loop
/// exists. The methods that do not wait (set(), release(), ...) may be called by the loop's
/// thread between its runs, and from anywhere once the loop is gone. All
/// are fair: waiters are served in the order they started waiting. Cancellation never loses a
/// wake-up: a waiter cancelled at the moment it was woken passes it on.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "kettle/coro.hpp"
#include "kettle/detail/wait_list.hpp"
#include "kettle/exceptions.hpp"

namespace kettle {

/// asyncio.BrokenBarrierError: a Barrier was reset or aborted while a task waited on it,
/// or is broken.
class BrokenBarrierError : public Error {
 public:
  /// Error's constructors: the message is what().
  using Error::Error;
};

namespace detail {
template <class Primitive>
class ScopedAcquire;
}

/// Releases what it holds when destroyed (the `async with` of a Lock or Semaphore).
template <class Primitive>
class [[nodiscard]] Held {
 public:
  /// Takes over what o holds; o then holds nothing.
  Held(Held&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Held& operator=(Held&&) = delete;
  /// Releases, if still held. Never throws: if the lock was given up meanwhile (a
  /// Condition::wait whose task was destroyed with its loop while it waited to take the
  /// lock back), there is nothing to release.
  ~Held() {
    if (p_) try {
        p_->release();
      } catch (const Error&) {
      }
  }
  /// Releases now instead of at the end of the scope (once: later calls do nothing).
  void release() {
    if (p_) std::exchange(p_, nullptr)->release();
  }

 private:
  friend class detail::ScopedAcquire<Primitive>;
  explicit Held(Primitive* p) noexcept : p_(p) {}
  Primitive* p_;
};

/// asyncio.Lock: a mutual-exclusion lock for the tasks of one loop. Not reentrant: a task
/// that acquires it twice waits for itself.
class Lock : private detail::LoopBound {
 public:
  class AcquireAwaiter;

  /// An unlocked lock.
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// Waits until the lock is free, then takes it; yields true, as asyncio's.
  /// Cancellation: the lock is not taken (a wake-up meant for this waiter passes on).
  [[nodiscard]] AcquireAwaiter acquire() noexcept;
  /// Frees the lock and wakes the first waiter. RuntimeError if the lock is not held.
  void release();
  /// Whether the lock is held.
  bool locked() const noexcept { return locked_; }
  /// co_await lock.scoped(): a Held<Lock> that releases the lock when it goes.
  [[nodiscard]] detail::ScopedAcquire<Lock> scoped() noexcept;

 private:
  void wake_up_first();
  bool locked_ = false;
  detail::WaitList waiters_;
};

/// asyncio.Event: a flag that tasks can wait to be set.
class Event : private detail::LoopBound {
 public:
  class WaitAwaiter;

  /// An event that is not set.
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// Whether the event is set.
  bool is_set() const noexcept { return value_; }
  /// Wakes every waiter; later waits return at once until clear().
  void set();
  /// Unsets the event: later waits wait for the next set().
  void clear() noexcept { value_ = false; }
  /// Waits until the event is set; yields true.
  /// Cancellation: nothing is left behind.
  [[nodiscard]] WaitAwaiter wait() noexcept;

 private:
  bool value_ = false;
  detail::WaitList waiters_;
};

/// asyncio.Condition: lets tasks wait, holding a Lock, until another task notifies them.
class Condition : private detail::LoopBound {
 public:
  ///@{
  /// Over a lock of its own, or over `lock` (which must outlive the Condition).
  Condition() : own_lock_(std::make_unique<Lock>()), lock_(own_lock_.get()) {}
  explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
  ///@}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  ///@{
  /// The underlying lock's operations (Lock::acquire, release, locked, scoped).
  [[nodiscard]] Lock::AcquireAwaiter acquire() noexcept;
  void release() { lock_->release(); }
  bool locked() const noexcept { return lock_->locked(); }
  [[nodiscard]] detail::ScopedAcquire<Lock> scoped() noexcept;
  ///@}

  /// Releases the lock, waits to be notified, re-acquires the lock (even when cancelled:
  /// the lock is held again when CancelledError comes out). RuntimeError if not holding it.
  /// Cancellation: a notification it had received passes to another waiter.
  Coro<bool> wait();
  /// Waits until predicate() is true; returns its last value (as asyncio: the predicate's
  /// own result, not a bool).
  template <class Predicate>
  Coro<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate predicate);
  ///@{
  /// Wakes up to n waiters / all of them. RuntimeError if the lock is not held.
  void notify(std::size_t n = 1);
  void notify_all();
  ///@}

 private:
  class NotifiedAwaiter;
  void notify_unchecked(std::size_t n);

  std::unique_ptr<Lock> own_lock_;
  Lock* lock_;
  detail::WaitList waiters_;
};

/// asyncio.Semaphore: a counter of units; acquire() takes one, waiting while there is
/// none, release() gives one back.
class Semaphore : private detail::LoopBound {
 public:
  class AcquireAwaiter;

  /// A semaphore with `value` units. ValueError if value < 0.
  explicit Semaphore(long value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  virtual ~Semaphore() = default;

  /// Whether acquire() would have to wait.
  bool locked() const noexcept;
  /// Takes one unit, waiting while there is none; yields true, as asyncio's.
  /// Cancellation: no unit is taken (one handed to this waiter is given back).
  [[nodiscard]] AcquireAwaiter acquire() noexcept;
  /// Gives one unit back and wakes the first waiter. ValueError if the value would
  /// overflow.
  virtual void release();
  /// co_await sem.scoped(): a Held<Semaphore> that releases the unit when it goes.
  [[nodiscard]] detail::ScopedAcquire<Semaphore> scoped() noexcept;
  /// The units available now.
  long value() const noexcept { return value_; }

 protected:
  /// Hands a unit to the first waiter not yet woken; false if there is none.
  bool wake_up_next();
  /// Hands units to waiters while there are both.
  void wake_while_available() {
    while (value_ > 0)
      if (!wake_up_next()) break;
  }
  long value_;                ///< The units available.
  detail::WaitList waiters_;  ///< The tasks waiting in acquire(), in order.
};

/// asyncio.BoundedSemaphore: a Semaphore that refuses to be released above its initial
/// value (ValueError).
class BoundedSemaphore : public Semaphore {
 public:
  /// A semaphore with `value` units, never more. ValueError if value < 0.
  explicit BoundedSemaphore(long value = 1) : Semaphore(value), bound_(value) {}
  /// Semaphore::release(); ValueError if the value would exceed the initial one.
  void release() override;

 private:
  long bound_;
};

/// asyncio.Barrier: lets `parties` tasks wait until all of them have arrived.
class Barrier {
 public:
  /// A barrier for `parties` tasks. ValueError if parties < 1.
  explicit Barrier(std::size_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  /// Waits until `parties` tasks are waiting; returns this task's arrival index
  /// (0 .. parties-1). BrokenBarrierError if the barrier is reset or aborted meanwhile.
  /// Cancellation: this task no longer counts as arrived.
  Coro<std::size_t> wait();
  /// Back to the empty state; tasks waiting get BrokenBarrierError.
  Coro<> reset();
  /// Broken: waiting tasks and later waits get BrokenBarrierError.
  Coro<> abort();

  /// How many tasks must arrive to pass the barrier.
  std::size_t parties() const noexcept { return parties_; }
  /// How many tasks are waiting for the others to arrive.
  std::size_t n_waiting() const noexcept { return state_ == State::filling ? count_ : 0; }
  /// Whether the barrier was aborted.
  bool broken() const noexcept { return state_ == State::broken; }

 private:
  enum class State : std::uint8_t { filling, draining, resetting, broken };
  Coro<> block();
  Coro<> wait_released();
  void exit();

  Condition cond_;
  std::size_t parties_;
  std::size_t count_ = 0;
  State state_ = State::filling;
};

// ---------------------------------------------------------------------------------------
// Implementation

/// What Lock::acquire() returns: awaiting it takes the lock and yields true.
class [[nodiscard]] Lock::AcquireAwaiter : private detail::WaitNode {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::Lock::acquire()";
  /// An acquisition of lock.
  explicit AcquireAwaiter(Lock& lock) noexcept : lock_(lock) {}
  AcquireAwaiter(AcquireAwaiter&&) noexcept = default;  ///< Movable until awaited.
  /// A wake-up this waiter did not claim passes to the next waiter.
  ~AcquireAwaiter() {
    if (woken_unclaimed()) {  // the lock was ours to take: the next waiter's now
      lock_.waiters_.remove(*this);
      if (!lock_.locked_) lock_.wake_up_first();
    }
  }
  /// Takes the lock at once if it is free and nobody waits. RuntimeError from a foreign
  /// loop or thread.
  bool await_ready() {
    lock_.check_loop("Lock.acquire()");
    if (!lock_.locked_ && lock_.waiters_.all_cancelled()) {
      lock_.locked_ = true;
      return true;
    }
    return false;
  }
  /// Queues the task behind the other waiters.
  void await_suspend(std::coroutine_handle<> h) {
    lock_.waiters_.push_back(*this);
    suspend(h);
  }
  /// Takes the lock and yields true; CancelledError if the task was cancelled.
  bool await_resume() {
    if (state() == State::idle) return true;  // took the lock without waiting
    lock_.waiters_.remove(*this);
    if (resumed_cancelled()) {
      // Keep the invariant: if the lock is free, the first waiter must be about to run.
      if (!lock_.locked_) lock_.wake_up_first();
      throw_cancelled();
    }
    lock_.locked_ = true;
    return true;
  }

 private:
  Lock& lock_;
};

inline Lock::AcquireAwaiter Lock::acquire() noexcept {
  return AcquireAwaiter(*this);
}
inline Lock::AcquireAwaiter Condition::acquire() noexcept {
  return lock_->acquire();
}

/// What Event::wait() returns: awaiting it waits until the event is set and yields true.
class [[nodiscard]] Event::WaitAwaiter : private detail::WaitNode {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::Event::wait()";
  /// A wait for e.
  explicit WaitAwaiter(Event& e) noexcept : e_(e) {}
  WaitAwaiter(WaitAwaiter&&) noexcept = default;  ///< Movable until awaited.
  /// True if the event is set. RuntimeError from a foreign loop or thread.
  bool await_ready() {
    e_.check_loop("Event.wait()");
    return e_.value_;
  }
  /// Queues the task until set().
  void await_suspend(std::coroutine_handle<> h) {
    e_.waiters_.push_back(*this);
    suspend(h);
  }
  /// Yields true; CancelledError if the task was cancelled.
  bool await_resume() {
    if (state() == State::idle) return true;
    e_.waiters_.remove(*this);
    if (resumed_cancelled()) throw_cancelled();
    return true;
  }

 private:
  Event& e_;
};

inline Event::WaitAwaiter Event::wait() noexcept {
  return WaitAwaiter(*this);
}

/// What Semaphore::acquire() returns: awaiting it takes a unit and yields true.
class [[nodiscard]] Semaphore::AcquireAwaiter : private detail::WaitNode {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::Semaphore::acquire()";
  /// An acquisition of a unit of s.
  explicit AcquireAwaiter(Semaphore& s) noexcept : s_(s) {}
  AcquireAwaiter(AcquireAwaiter&&) noexcept = default;  ///< Movable until awaited.
  /// A unit taken for this waiter but not claimed is given back.
  ~AcquireAwaiter() {
    if (woken_unclaimed()) {  // a unit was taken for us: give it back
      s_.waiters_.remove(*this);
      ++s_.value_;
      s_.wake_while_available();
    }
  }
  /// Takes a unit at once if acquire() need not wait. RuntimeError from a foreign loop or
  /// thread.
  bool await_ready() {
    s_.check_loop("Semaphore.acquire()");
    if (!s_.locked()) {
      --s_.value_;
      return true;
    }
    return false;
  }
  /// Queues the task behind the other waiters.
  void await_suspend(std::coroutine_handle<> h) {
    s_.waiters_.push_back(*this);
    suspend(h);
  }
  /// Yields true with the unit taken; CancelledError (and the unit given back) if the task
  /// was cancelled.
  bool await_resume() {
    if (state() == State::idle) return true;
    s_.waiters_.remove(*this);
    bool cancelled = resumed_cancelled();
    // Woken (value already taken for us) but cancelled: give it back.
    if (cancelled && state() == State::done) ++s_.value_;
    // New waiters may have had to wait behind us for FIFO order: wake as many as allowed.
    s_.wake_while_available();
    if (cancelled) throw_cancelled();
    return true;
  }

 private:
  Semaphore& s_;
};

inline Semaphore::AcquireAwaiter Semaphore::acquire() noexcept {
  return AcquireAwaiter(*this);
}

namespace detail {
// co_await x.scoped(): acquires, then hands out a Held<X>.
template <class Primitive>
class [[nodiscard]] ScopedAcquire {
 public:
  explicit ScopedAcquire(Primitive& p) noexcept : p_(p), inner_(p.acquire()) {}
  ScopedAcquire(ScopedAcquire&&) noexcept = default;  // until awaited
  bool await_ready() { return inner_.await_ready(); }
  void await_suspend(std::coroutine_handle<> h) { inner_.await_suspend(h); }
  Held<Primitive> await_resume() {
    (void)inner_.await_resume();
    return Held<Primitive>(&p_);
  }

 private:
  Primitive& p_;
  typename Primitive::AcquireAwaiter inner_;
};
}  // namespace detail

inline detail::ScopedAcquire<Lock> Lock::scoped() noexcept {
  return detail::ScopedAcquire<Lock>(*this);
}
inline detail::ScopedAcquire<Lock> Condition::scoped() noexcept {
  return detail::ScopedAcquire<Lock>(*lock_);
}
inline detail::ScopedAcquire<Semaphore> Semaphore::scoped() noexcept {
  return detail::ScopedAcquire<Semaphore>(*this);
}

template <class Predicate>
Coro<std::decay_t<std::invoke_result_t<Predicate&>>> Condition::wait_for(Predicate predicate) {
  auto result = predicate();
  while (!result) {
    co_await wait();
    result = predicate();
  }
  co_return result;
}

}  // namespace kettle
