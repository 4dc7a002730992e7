/// @file
/// kettle/queues.hpp — queues between tasks (asyncio.queues).
///
/// @code
/// kettle::Queue<Job> q(100);              // bounded: put() waits while full
/// co_await q.put(std::move(job));         // producer
/// Job j = co_await q.get();               // consumer
/// q.task_done();                          // and co_await q.join() waits for all of them
/// q.shutdown();                           // 3.13: puts fail, gets fail once drained
/// @endcode
///
/// Queue<T> is FIFO, LifoQueue<T> LIFO, PriorityQueue<T, Compare> gives the smallest item
/// first (as heapq). T may be move-only. maxsize <= 0 means unbounded.
///
/// Cancellation never loses or duplicates an item: a cancelled put() does not insert; a
/// get() that was woken for an item but is cancelled before it runs leaves the item at the
/// head of the queue and wakes the next getter.
///
/// As in asyncio, a queue is for the tasks of one loop: not thread-safe, and bound to the
/// loop that first awaits one of its methods. Awaiting one from another loop raises
/// RuntimeError, and so does any call from another thread than the loop's while the loop
/// exists. The methods that do not wait may be called by the loop's thread between its runs,
/// and from anywhere once the loop is gone (say, to drain the queue after kettle::run).
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/detail/wait_list.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/locks.hpp"

namespace kettle {

/// asyncio.QueueEmpty: get_nowait() on an empty queue.
class QueueEmpty : public Error {
 public:
  /// "the queue is empty (get_nowait)".
  QueueEmpty() : Error("the queue is empty (get_nowait)") {}
};
/// asyncio.QueueFull: put_nowait() on a full queue.
class QueueFull : public Error {
 public:
  /// "the queue is full (put_nowait)".
  QueueFull() : Error("the queue is full (put_nowait)") {}
};
/// asyncio.QueueShutDown: a put on a queue that was shut down, or a get on one that was
/// shut down and is empty.
class QueueShutDown : public Error {
 public:
  /// "the queue has been shut down".
  QueueShutDown() : Error("the queue has been shut down") {}
};

namespace detail {
template <class T, class Store>
class QueueImpl;
}

template <class T>
class Queue;
template <class T>
class LifoQueue;
template <class T, class Compare = std::less<T>>
class PriorityQueue;

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

template <class T>
struct FifoStore {
  std::deque<T> items;
  void push(T&& v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.front());
    items.pop_front();
    return v;
  }
  std::size_t size() const noexcept { return items.size(); }
};

template <class T>
struct LifoStore {
  std::vector<T> items;
  void push(T&& v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return items.size(); }
};

template <class T, class Compare>
struct HeapStore {
  std::vector<T> items;
  [[no_unique_address]] Compare less;
  // std heap algorithms build a max-heap; invert to take the smallest first.
  bool after(const T& a, const T& b) const { return less(b, a); }
  void push(T&& v) {
    items.push_back(std::move(v));
    std::push_heap(items.begin(), items.end(),
                   [this](const T& a, const T& b) { return after(a, b); });
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(),
                  [this](const T& a, const T& b) { return after(a, b); });
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return items.size(); }
};

template <class T, class Store>
class QueueImpl : private LoopBound {
 public:
  class PutAwaiter;
  class GetAwaiter;

  explicit QueueImpl(long maxsize = 0) : maxsize_(maxsize) { finished_.set(); }
  QueueImpl(const QueueImpl&) = delete;
  QueueImpl& operator=(const QueueImpl&) = delete;

  std::size_t qsize() const noexcept { return store_.size(); }
  long maxsize() const noexcept { return maxsize_; }
  bool empty() const noexcept { return store_.size() == 0; }
  bool full() const noexcept { return maxsize_ > 0 && store_.size() >= std::size_t(maxsize_); }

  // Puts an item, waiting while the queue is full. QueueShutDown once shut down.
  // Cancellation: the item is not inserted.
  [[nodiscard]] PutAwaiter put(T item) { return PutAwaiter(*this, std::move(item)); }
  // QueueFull if full, QueueShutDown if shut down.
  void put_nowait(T item) {
    check_thread("Queue.put_nowait()");
    if (shutdown_) throw QueueShutDown();
    if (full()) throw QueueFull();
    store_.push(std::move(item));
    ++unfinished_;
    finished_.clear();
    getters_.pop_and_wake_next();
  }

  // Takes an item, waiting while the queue is empty. QueueShutDown once shut down and
  // empty (at once after shutdown(immediate)).
  // Cancellation: the item stays in the queue (at its head) for the next getter.
  [[nodiscard]] GetAwaiter get() noexcept { return GetAwaiter(*this); }
  // QueueEmpty if empty (QueueShutDown if also shut down).
  T get_nowait() {
    check_thread("Queue.get_nowait()");
    if (empty()) {
      if (shutdown_) throw QueueShutDown();
      throw QueueEmpty();
    }
    T item = store_.pop();
    putters_.pop_and_wake_next();
    return item;
  }

  // One item fetched by get() is fully processed. ValueError if called too many times.
  void task_done() {
    check_thread("Queue.task_done()");
    if (unfinished_ == 0) throw ValueError("task_done() called too many times");
    if (--unfinished_ == 0) finished_.set();
  }
  // Waits until every item put has had its task_done(). Cancellation: nothing left behind.
  [[nodiscard]] Event::WaitAwaiter join() {
    check_loop("Queue.join()");
    return finished_.wait();
  }

  // Puts raise QueueShutDown from now on; gets raise it once the queue is empty, or at
  // once with immediate=true, which also drops the items left (counting them as done, so
  // that join() returns). Every waiting put() and get() is woken to find out.
  void shutdown(bool immediate = false) {
    check_thread("Queue.shutdown()");
    shutdown_ = true;
    if (immediate) {
      while (!empty()) {
        (void)store_.pop();
        if (unfinished_ > 0) --unfinished_;
      }
      if (unfinished_ == 0) finished_.set();
    }
    while (getters_.pop_and_wake_next()) {
    }
    while (putters_.pop_and_wake_next()) {
    }
  }
  bool is_shut_down() const noexcept { return shutdown_; }

 private:
  // One wait for room (a putter) or for an item (a getter), with asyncio's except clause.
  class Waiting : private WaitNode {
   public:
    Waiting(QueueImpl& q, bool putter) noexcept : q_(q), putter_(putter) {}
    Waiting(const Waiting&) = delete;
    ~Waiting() {
      if (woken_unclaimed()) {
        list().remove(*this);
        pass_on();
      }
    }
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      list().push_back(*this);
      suspend(h);
    }
    void await_resume() {
      bool woken = state() == State::done;
      list().remove(*this);  // may have been removed by the waker or a shutdown already
      if (resumed_cancelled()) {
        if (woken) pass_on();
        throw_cancelled();
      }
    }

   private:
    WaitList& list() noexcept { return putter_ ? q_.putters_ : q_.getters_; }
    // Woken for room or an item it will not use: the next in line gets the wake-up.
    void pass_on() {
      if (putter_ ? !q_.full() : !q_.empty()) list().pop_and_wake_next();
    }
    QueueImpl& q_;
    bool putter_;
  };

  Coro<> put_slow(T item) {
    while (full()) {
      if (shutdown_) throw QueueShutDown();
      co_await Waiting(*this, true);
    }
    put_nowait(std::move(item));
  }

  Coro<T> get_slow() {
    while (empty()) {
      if (shutdown_) throw QueueShutDown();
      co_await Waiting(*this, false);
    }
    co_return get_nowait();
  }

  Store store_;
  long maxsize_;
  std::size_t unfinished_ = 0;
  WaitList getters_;
  WaitList putters_;
  Event finished_;  // set while no task is unfinished
  bool shutdown_ = false;
};

// put(): inserts at once when there is room (no coroutine frame); otherwise runs the
// waiting loop as a coroutine.
template <class T, class Store>
class [[nodiscard]] QueueImpl<T, Store>::PutAwaiter {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::Queue::put()";
  PutAwaiter(QueueImpl& q, T item) : q_(q), item_(std::move(item)) {}
  PutAwaiter(PutAwaiter&&) = default;  // until awaited
  PutAwaiter& operator=(const PutAwaiter&) = delete;

  bool await_ready() {
    q_.check_loop("Queue.put()");
    if (q_.full()) return false;
    q_.put_nowait(std::move(*item_));  // QueueShutDown if shut down
    return true;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    slow_.emplace(q_.put_slow(std::move(*item_)));
    awaiter_.emplace(std::move(*slow_).operator co_await());
    return !awaiter_->await_ready() && awaiter_->await_suspend(h);
  }
  void await_resume() {
    if (awaiter_) awaiter_->await_resume();
  }

 private:
  QueueImpl& q_;
  std::optional<T> item_;
  std::optional<Coro<>> slow_;
  std::optional<typename Coro<>::Awaiter> awaiter_;
};

template <class T, class Store>
class [[nodiscard]] QueueImpl<T, Store>::GetAwaiter {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::Queue::get()";
  explicit GetAwaiter(QueueImpl& q) noexcept : q_(q) {}
  GetAwaiter(GetAwaiter&&) = default;  // until awaited
  GetAwaiter& operator=(const GetAwaiter&) = delete;

  bool await_ready() {
    q_.check_loop("Queue.get()");
    return !q_.empty();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    slow_.emplace(q_.get_slow());
    awaiter_.emplace(std::move(*slow_).operator co_await());
    return !awaiter_->await_ready() && awaiter_->await_suspend(h);
  }
  T await_resume() {
    if (awaiter_) return awaiter_->await_resume();
    return q_.get_nowait();
  }

 private:
  QueueImpl& q_;
  std::optional<Coro<T>> slow_;
  std::optional<typename Coro<T>::Awaiter> awaiter_;
};

}  // namespace detail

/// asyncio.Queue: a first-in, first-out queue between the tasks of one loop. Methods, as
/// asyncio's: `co_await put(item)` (waits while full), `put_nowait(item)` (QueueFull),
/// `co_await get()` (waits while empty), `get_nowait()` (QueueEmpty), `task_done()`,
/// `co_await join()`, `shutdown(immediate)`, `qsize()`, `maxsize()`, `empty()`, `full()`;
/// see queues.hpp.
template <class T>
class Queue : public detail::QueueImpl<T, detail::FifoStore<T>> {
 public:
  /// Queue(maxsize = 0): at most maxsize items; maxsize <= 0 means unbounded.
  using detail::QueueImpl<T, detail::FifoStore<T>>::QueueImpl;
};

/// asyncio.LifoQueue: a Queue that gives the item put last first.
template <class T>
class LifoQueue : public detail::QueueImpl<T, detail::LifoStore<T>> {
 public:
  /// LifoQueue(maxsize = 0): at most maxsize items; maxsize <= 0 means unbounded.
  using detail::QueueImpl<T, detail::LifoStore<T>>::QueueImpl;
};

/// asyncio.PriorityQueue: a Queue that gives the smallest item (by Compare) first, as
/// heapq.
template <class T, class Compare>
class PriorityQueue : public detail::QueueImpl<T, detail::HeapStore<T, Compare>> {
 public:
  /// PriorityQueue(maxsize = 0): at most maxsize items; maxsize <= 0 means unbounded.
  using detail::QueueImpl<T, detail::HeapStore<T, Compare>>::QueueImpl;
};

}  // namespace kettle
