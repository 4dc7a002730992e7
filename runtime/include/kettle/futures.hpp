/// @file
/// kettle/futures.hpp — the one-shot result that any thread can complete
/// (asyncio.Future and concurrent.futures.Future in one type).
///
/// @code
/// kettle::Future<int> f;
/// std::thread([f]() mutable { f.set_result(42); }).detach();
/// int v = co_await f;          // from a task: resumed on the task's own loop
/// int w = f.result(1s);        // from a plain thread: blocks, TimeoutError after 1 s
/// @endcode
///
/// States: pending → (running →) finished, or pending → cancelled. cancel() succeeds only
/// while pending, as in concurrent.futures; executors mark a future running when its work
/// starts (set_running_or_notify_cancel). A future nobody runs behaves like asyncio.Future:
/// cancel() always succeeds until it is done.
///
/// Cancellation: if the task awaiting a Future is cancelled while it waits, the future is
/// cancelled too if it is still pending; running work goes on (and gets a stop request, see
/// stop_token()) while the task sees CancelledError at once.
///
/// result() and exception() block only off the loop: on a loop thread, waiting would
/// deadlock the loop, so they raise RuntimeError unless the future is done.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kettle/detail/durations.hpp"
#include "kettle/detail/future_core.hpp"
#include "kettle/detail/task_state.hpp"
#include "kettle/exceptions.hpp"

namespace kettle {

namespace detail {
class SharedStateBase;
template <class T>
class SharedState;
template <class T, bool Take>
class SharedFutureAwaiter;
}  // namespace detail

/// The one-shot result that any thread can complete: asyncio.Future and
/// concurrent.futures.Future in one type. Copies share the same state; see futures.hpp for
/// the states and for cancellation.
template <class T = void>
class Future {
 public:
  /// The result type.
  using value_type = T;
  /// Timeouts, in seconds.
  using Duration = std::chrono::duration<double>;

  Future();  ///< A pending future.

  bool cancel();  ///< True if it is (now) cancelled; false once running or finished.
  /// True if the future was cancelled.
  bool cancelled() const noexcept;
  /// True while its work runs (after set_running_or_notify_cancel(), until done).
  bool running() const noexcept;
  /// True once it has a result or an exception, or was cancelled.
  bool done() const noexcept;

  /// The value (rethrows the exception; CancelledError if cancelled). Blocks until done,
  /// at most `timeout` (then TimeoutError; more than 100 years: no limit; NaN: ValueError).
  /// On a loop thread: RuntimeError unless done.
  decltype(auto) result(std::optional<Duration> timeout = std::nullopt) const;
  /// The exception (null if it succeeded); same waiting rules as result().
  std::exception_ptr exception(std::optional<Duration> timeout = std::nullopt) const;

  /// fn(Future<T>&) or fn(), called once the future is done: at once (on this thread) if it
  /// already is, else on the thread that completes it. Exceptions from fn are reported to
  /// stderr, never propagated.
  template <class F>
  void add_done_callback(F&& fn) const;

  ///@{
  /// Completion, from any thread. InvalidStateError if already done (or cancelled).
  template <class U = T>
  requires(!std::is_void_v<T> && std::is_constructible_v<T, U&&>) void set_result(U&& value) const;
  void set_result() const requires std::is_void_v<T>;
  void set_exception(std::exception_ptr e) const;
  ///@}

  /// For executors: false (and nothing to run) if the future was cancelled; otherwise marks
  /// it running, after which cancel() fails. RuntimeError if called twice.
  bool set_running_or_notify_cancel() const;
  /// Asked to stop when an awaiting task is cancelled while the work runs, or when an
  /// executor shuts down with cancel_futures. Work that takes a std::stop_token gets it.
  std::stop_token stop_token() const noexcept;

  ///@{
  /// Awaiting from a task (of any loop) waits for the future and gives its value (from an
  /// rvalue that nobody else holds, moved out; otherwise copied) or rethrows its
  /// exception; CancelledError if it was cancelled. The task resumes on its own loop.
  detail::SharedFutureAwaiter<T, false> operator co_await() const& noexcept;
  detail::SharedFutureAwaiter<T, true> operator co_await() && noexcept;
  ///@}

  /// True if both refer to the same future.
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.s_ == b.s_; }

  /// Implementation: a Future on the shared state s.
  explicit Future(std::shared_ptr<detail::SharedState<T>> s) noexcept : s_(std::move(s)) {}
  /// Implementation: the shared state.
  const std::shared_ptr<detail::SharedState<T>>& state() const noexcept { return s_; }

 private:
  std::shared_ptr<detail::SharedState<T>> s_;
};

/// When wait() returns (asyncio.wait and concurrent.futures.wait).
enum class ReturnWhen : std::uint8_t {
  first_completed,  ///< As soon as one future is done (or cancelled).
  first_exception,  ///< As soon as one finishes with an exception; else when all are done.
  all_completed     ///< When every future is done.
};
/// asyncio.FIRST_COMPLETED: ReturnWhen::first_completed.
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::first_completed;
/// asyncio.FIRST_EXCEPTION: ReturnWhen::first_exception.
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::first_exception;
/// asyncio.ALL_COMPLETED: ReturnWhen::all_completed.
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::all_completed;

/// concurrent.futures.wait and as_completed, for plain threads (they block). From a task,
/// use kettle::wait and kettle::as_completed, which take Futures too.
///
/// @code
/// auto [done, not_done] = kettle::concurrent::wait(futures, 2s, kettle::FIRST_COMPLETED);
/// for (kettle::Future<int> f : kettle::concurrent::as_completed(futures, 5s)) f.result();
/// @endcode
///
/// A future given twice counts once. On a loop thread they raise RuntimeError rather than
/// block the loop (unless nothing needs waiting for).
namespace concurrent {

/// What concurrent::wait() returns: concurrent.futures.wait's `(done, not_done)`.
template <class T>
struct DoneAndNotDone {
  std::vector<Future<T>> done;      ///< The futures that are done.
  std::vector<Future<T>> not_done;  ///< The futures not done yet.
};

/// Waits until return_when holds or the timeout passes (then returns what it has: it never
/// raises TimeoutError). The futures keep their order within done and not_done.
template <class Range>
auto wait(Range&& futures, std::optional<std::chrono::duration<double>> timeout = std::nullopt,
          ReturnWhen return_when = ALL_COMPLETED);

template <class T>
class AsCompletedFutures;

/// The futures in the order they complete (those done already first). Iterating past the
/// timeout, counted from this call, raises TimeoutError.
template <class Range>
auto as_completed(Range&& futures,
                  std::optional<std::chrono::duration<double>> timeout = std::nullopt);

}  // namespace concurrent

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

// A task waiting on a SharedState, possibly from another thread than the completer.
struct AsyncWaiter {
  AsyncWaiter* prev = nullptr;
  AsyncWaiter* next = nullptr;
  TaskBase* task = nullptr;
  std::shared_ptr<LoopGate> gate;
  bool linked = false;
};

class SharedStateBase;

// Told once when a future is done (concurrent.futures' _Waiter): a blocking
// concurrent::wait or as_completed, or a loop watching the future for kettle::wait. fire()
// runs under the future's lock, so that once unwatch() has returned it is not running and
// never will: the watcher may then go.
struct Watcher {
  virtual void fire() noexcept = 0;
  Watcher* prev = nullptr;
  Watcher* next = nullptr;
  bool linked = false;

 protected:
  ~Watcher() = default;
};

class SharedStateBase {
 public:
  enum class Status : std::uint8_t { pending, running, cancelled, finished };

  SharedStateBase() noexcept;  // remembers the loop it was made on, if any
  SharedStateBase(const SharedStateBase&) = delete;
  SharedStateBase& operator=(const SharedStateBase&) = delete;
  // An exception nobody retrieved (result(), exception(), co_await) is reported to the
  // exception handler of the loop the future was made on (stderr if none).
  virtual ~SharedStateBase();

  Status status() const noexcept { return status_.load(std::memory_order_acquire); }
  bool done() const noexcept {
    Status s = status();
    return s == Status::cancelled || s == Status::finished;
  }

  bool cancel();
  bool set_running_or_notify_cancel();
  // Completes with the value the subclass stored under the lock (store() returns false if
  // the future was already done).
  template <class Store>
  void complete(Store&& store);
  void set_exception(std::exception_ptr e);
  std::stop_token stop_token() const noexcept { return stop_.get_token(); }
  void request_stop() noexcept { stop_.request_stop(); }

  // Waits (off-loop) until done, at most `timeout` seconds; then throws what result()
  // must throw for a failed or cancelled future.
  void wait_and_check(std::optional<std::chrono::duration<double>> timeout, bool rethrow);
  std::exception_ptr exception_for(std::optional<std::chrono::duration<double>> timeout);

  void add_callback(std::function<void()> fn);

  // False (nothing registered) if the future is done already.
  bool watch(Watcher& w);
  void unwatch(Watcher& w) noexcept;
  void mark_retrieved() noexcept { retrieved_.store(true, std::memory_order_relaxed); }

  // Awaiting from a task. link() returns false if the future is already done.
  bool link(AsyncWaiter& w);
  // The awaiting task is being cancelled: true if the wait was aborted (the waiter is
  // unlinked and the task will be woken), false if a completion already woke it.
  bool abort_wait(AsyncWaiter& w);
  void unlink(AsyncWaiter& w) noexcept;

  virtual void* value_address() noexcept = 0;
  std::exception_ptr exception_unlocked() const noexcept { return exc_; }

 protected:
  std::mutex mutex_;

 private:
  // A task to wake, copied out of its waiter under the lock (the waiter may be gone by the
  // time the wake-up is delivered; the task and the gate are not).
  struct Wake {
    TaskBase* task;
    std::shared_ptr<LoopGate> gate;
  };
  struct Notice {
    std::vector<std::function<void()>> callbacks;
    std::vector<Wake> wakes;
  };
  // Under the lock: marks the future done and takes what must be notified.
  void finish_locked(Status s, Notice& n);
  static void notify(Notice& n) noexcept;

  std::condition_variable cv_;
  std::atomic<Status> status_{Status::pending};
  std::atomic<bool> retrieved_{false};
  std::exception_ptr exc_;
  std::vector<std::function<void()>> callbacks_;
  AsyncWaiter* waiters_ = nullptr;    // doubly linked, unordered
  Watcher* watchers_ = nullptr;       // doubly linked, unordered
  std::shared_ptr<LoopGate> origin_;  // the loop the future was made on, for reports
  std::stop_source stop_;
};

template <class Store>
void SharedStateBase::complete(Store&& store) {
  Notice n;
  {
    std::lock_guard lock(mutex_);
    Status s = status();
    if (s == Status::cancelled || s == Status::finished)
      throw InvalidStateError("the future is already done (or cancelled)");
    store();
    finish_locked(Status::finished, n);
  }
  notify(n);
}

template <class T>
class SharedState final : public SharedStateBase {
 public:
  void* value_address() noexcept override {
    if constexpr (std::is_void_v<T>)
      return nullptr;
    else
      return &*value_;
  }
  struct Empty {};
  [[no_unique_address]] std::conditional_t<std::is_void_v<T>, Empty, std::optional<T>> value_;
};

template <class T>
T shared_take(SharedStateBase& s, bool steal) {
  if constexpr (!std::is_void_v<T>) {
    T& v = *static_cast<T*>(s.value_address());
    if constexpr (std::is_copy_constructible_v<T>) {
      if (!steal) return v;
    }
    return std::move(v);
  }
}

void throw_for_cancelled_shared();

template <class T, bool Take>
class SharedFutureAwaiter : private CancelHook, private AsyncWaiter {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "co_await kettle::Future (a thread or process result)";
  explicit SharedFutureAwaiter(std::shared_ptr<SharedState<T>> s) noexcept
      : CancelHook{&hook}, s_(std::move(s)) {}
  SharedFutureAwaiter(const SharedFutureAwaiter&) = delete;
  SharedFutureAwaiter& operator=(const SharedFutureAwaiter&) = delete;
  // Destroyed while suspended (its task dropped by a closing loop, maybe long after the loop
  // itself is gone): leave the future's list, under its lock (a completion may be taking
  // this waiter out at the same moment).
  ~SharedFutureAwaiter() {
    if (anchor_) {
      s_->unlink(*this);
      uncount();
    }
  }

  bool await_ready() const noexcept { return s_->done(); }

  bool await_suspend(std::coroutine_handle<> h) {
    TaskBase& t = current_task_for_await();
    task = &t;
    gate = tls_loop->gate;
    if (!s_->link(*this)) return false;  // completed meanwhile
    anchor_ = tls_loop->anchor;
    anchor_->add_ref();
    ++tls_loop->foreign_waits;
    t.suspend(h, this);
    return true;
  }

  T await_resume() {
    // Resumed: the completion or the abort took this waiter out of the list already.
    if (anchor_) {
      uncount();
      if (task->take_cancel() | aborted_) task->throw_cancelled();
    }
    auto st = s_->status();
    if (st == SharedStateBase::Status::cancelled) throw_for_cancelled_shared();
    if (std::exception_ptr e = s_->exception_unlocked()) {
      s_->mark_retrieved();
      std::rethrow_exception(e);
    }
    // Awaited as an rvalue and nobody else holds it (ours and the awaited handle): move.
    return shared_take<T>(*s_, Take && s_.use_count() <= 2);
  }

 private:
  static bool hook(CancelHook* h) {
    auto* a = static_cast<SharedFutureAwaiter*>(h);
    if (!a->s_->abort_wait(*a)) return false;
    a->aborted_ = true;
    a->task->wake();
    return true;
  }

  void uncount() noexcept {
    if (LoopCore* l = anchor_->loop) --l->foreign_waits;
    std::exchange(anchor_, nullptr)->release();
  }

  std::shared_ptr<SharedState<T>> s_;
  LoopAnchor* anchor_ = nullptr;  // while suspended: counted in the loop's foreign_waits
  bool aborted_ = false;
};

[[noreturn]] void throw_result_on_loop();
void report_callback_error(std::exception_ptr e) noexcept;

// A loop-local future that follows a Future (what kettle::wait watches): settled on its
// loop once the Future is done, through the loop's gate. Cancelling it cancels the Future.
class ForeignWatch final : public FutureCore {
 public:
  static CoreRef<FutureCore> make(LoopCore& loop, std::shared_ptr<SharedStateBase> s);
  ~ForeignWatch() override;

  bool cancel(std::string_view) override { return s_->cancel(); }
  void* value_address() noexcept override { return nullptr; }

 private:
  // Registered with the Future; carries the news to the loop (it outlives the watch while
  // it is on its way).
  struct Relay final : Watcher, Runnable, std::enable_shared_from_this<Relay> {
    void fire() noexcept override;
    void run() noexcept override;
    void drop() noexcept override { in_flight.reset(); }
    ForeignWatch* watch = nullptr;  // loop thread only; null once the watch is gone
    std::shared_ptr<LoopGate> gate;
    std::shared_ptr<Relay> in_flight;
  };

  ForeignWatch(LoopCore& loop, std::shared_ptr<SharedStateBase> s) noexcept
      : FutureCore(loop), s_(std::move(s)) {}
  std::exception_ptr& exception_slot() noexcept override { return exc_; }
  void settle() noexcept;

  std::shared_ptr<SharedStateBase> s_;
  std::shared_ptr<Relay> relay_;
  std::exception_ptr exc_;
};

// Watches several futures from a blocking thread: which are done, in completion order.
class BlockingWait {
 public:
  // Registers with every state; those done already are counted done at once, in order.
  explicit BlockingWait(std::vector<std::shared_ptr<SharedStateBase>> states);
  ~BlockingWait();  // unregisters from every state that has not fired
  BlockingWait(const BlockingWait&) = delete;
  BlockingWait& operator=(const BlockingWait&) = delete;

  // Waits until stop(finished so far) is true or the deadline (steady ns; kNeverNs and
  // beyond: none) passes; returns stop's last value. RuntimeError on a loop thread if it
  // would have to wait.
  template <class Stop>
  bool wait_until(Stop stop, std::int64_t deadline);
  // The index of the next future to complete, if one has; in completion order.
  std::optional<std::size_t> take();
  std::size_t size() const noexcept { return nodes_.size(); }
  const SharedStateBase& state(std::size_t i) const noexcept { return *nodes_[i].state; }

 private:
  struct Node final : Watcher {
    void fire() noexcept override;
    BlockingWait* owner = nullptr;
    std::size_t index = 0;
    std::shared_ptr<SharedStateBase> state;
  };
  bool wait_locked(std::unique_lock<std::mutex>& lock, std::int64_t deadline);

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::size_t> finished_;  // indices, in completion order
  std::size_t taken_ = 0;
  std::vector<Node> nodes_;
};

template <class Stop>
bool BlockingWait::wait_until(Stop stop, std::int64_t deadline) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (stop(finished_)) return true;
    if (!wait_locked(lock, deadline)) return stop(finished_);
  }
}

// The futures of a range, each once, in their first order.
template <class T, class Range>
std::vector<Future<T>> unique_futures(Range&& futures) {
  std::vector<Future<T>> out;
  std::unordered_set<const void*> seen;
  for (auto&& f : futures) {
    if (!f.state()) throw_empty_future("Future");
    if (seen.insert(f.state().get()).second) out.push_back(f);
  }
  return out;
}

template <class T>
std::vector<std::shared_ptr<SharedStateBase>> states_of(const std::vector<Future<T>>& fs) {
  std::vector<std::shared_ptr<SharedStateBase>> out;
  out.reserve(fs.size());
  for (const Future<T>& f : fs)
    out.push_back(f.state());
  return out;
}

}  // namespace detail

template <class T>
Future<T>::Future() : s_(std::make_shared<detail::SharedState<T>>()) {}

template <class T>
bool Future<T>::cancel() {
  return s_->cancel();
}
template <class T>
bool Future<T>::cancelled() const noexcept {
  return s_->status() == detail::SharedStateBase::Status::cancelled;
}
template <class T>
bool Future<T>::running() const noexcept {
  return s_->status() == detail::SharedStateBase::Status::running;
}
template <class T>
bool Future<T>::done() const noexcept {
  return s_->done();
}

template <class T>
decltype(auto) Future<T>::result(std::optional<Duration> timeout) const {
  s_->wait_and_check(timeout, true);
  if constexpr (std::is_void_v<T>)
    return;
  else
    return static_cast<const T&>(*static_cast<T*>(s_->value_address()));
}

template <class T>
std::exception_ptr Future<T>::exception(std::optional<Duration> timeout) const {
  return s_->exception_for(timeout);
}

template <class T>
template <class F>
void Future<T>::add_done_callback(F&& fn) const {
  if constexpr (std::is_invocable_v<std::decay_t<F>&, Future<T>&>) {
    s_->add_callback([self = *this, f = std::forward<F>(fn)]() mutable { f(self); });
  } else {
    static_assert(std::is_invocable_v<std::decay_t<F>&>,
                  "kettle: a done callback takes the Future (Future<T>&) or nothing");
    s_->add_callback(std::function<void()>(std::forward<F>(fn)));
  }
}

template <class T>
template <class U>
requires(!std::is_void_v<T> &&
         std::is_constructible_v<T, U&&>) void Future<T>::set_result(U&& value) const {
  s_->complete([&] { s_->value_.emplace(std::forward<U>(value)); });
}

template <class T>
void Future<T>::set_result() const requires std::is_void_v<T> {
  s_->complete([] {});
}

template <class T>
void Future<T>::set_exception(std::exception_ptr e) const {
  s_->set_exception(std::move(e));
}

template <class T>
bool Future<T>::set_running_or_notify_cancel() const {
  return s_->set_running_or_notify_cancel();
}

template <class T>
std::stop_token Future<T>::stop_token() const noexcept {
  return s_->stop_token();
}

template <class T>
detail::SharedFutureAwaiter<T, false> Future<T>::operator co_await() const& noexcept {
  return detail::SharedFutureAwaiter<T, false>(s_);
}
template <class T>
detail::SharedFutureAwaiter<T, true> Future<T>::operator co_await() && noexcept {
  return detail::SharedFutureAwaiter<T, true>(s_);
}

namespace concurrent {

template <class Range>
auto wait(Range&& futures, std::optional<std::chrono::duration<double>> timeout,
          ReturnWhen return_when) {
  using Fut = std::remove_cvref_t<std::ranges::range_reference_t<Range>>;
  using T = typename Fut::value_type;
  static_assert(std::is_same_v<Fut, Future<T>>, "kettle::concurrent::wait takes kettle::Futures");
  std::int64_t ns =
      timeout ? detail::duration_ns(*timeout, "concurrent::wait()") : detail::kNeverNs;
  std::int64_t deadline = ns >= detail::kNeverNs ? detail::kNeverNs : detail::now_ns() + ns;
  std::vector<Future<T>> fs = detail::unique_futures<T>(futures);
  {
    detail::BlockingWait w(detail::states_of(fs));
    w.wait_until(
        [&](const std::vector<std::size_t>& finished) {
          if (finished.size() == w.size()) return true;
          if (return_when == FIRST_COMPLETED) return !finished.empty();
          if (return_when == FIRST_EXCEPTION)
            for (std::size_t i : finished)
              if (w.state(i).status() == detail::SharedStateBase::Status::finished &&
                  w.state(i).exception_unlocked())
                return true;
          return false;
        },
        deadline);
  }
  DoneAndNotDone<T> r;
  for (Future<T>& f : fs)
    (f.done() ? r.done : r.not_done).push_back(std::move(f));
  return r;
}

/// What concurrent::as_completed() returns: a blocking range of the futures in
/// completion order.
template <class T>
class AsCompletedFutures {
 public:
  /// Watches fs (each once), until `deadline` (steady-clock nanoseconds; as_completed()
  /// computes it from its timeout).
  AsCompletedFutures(std::vector<Future<T>> fs, std::int64_t deadline)
      : fs_(std::move(fs)),
        wait_(std::make_unique<detail::BlockingWait>(detail::states_of(fs_))),
        deadline_(deadline) {}

  /// The next future to complete (blocking); nullopt once every one was handed out.
  /// TimeoutError past the deadline.
  std::optional<Future<T>> next() {
    if (yielded_ == fs_.size()) return std::nullopt;
    wait_->wait_until([&](const std::vector<std::size_t>& f) { return f.size() > yielded_; },
                      deadline_);
    std::optional<std::size_t> i = wait_->take();
    if (!i)
      throw TimeoutError(std::to_string(fs_.size() - yielded_) + " (of " +
                         std::to_string(fs_.size()) + ") futures unfinished");
    ++yielded_;
    return fs_[*i];
  }

  /// An input iterator: each dereference takes the next future (blocking).
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;  ///< An input iterator.
    using value_type = Future<T>;                       ///< What it gives.
    using difference_type = std::ptrdiff_t;             ///< For std::input_iterator.
    using pointer = void;                               ///< No operator->.
    using reference = Future<T>;                        ///< operator* gives a value.
    iterator() = default;                               ///< A past-the-end iterator.
    /// An iterator over a's futures; a sentinel is past the end.
    iterator(AsCompletedFutures* a, bool sentinel) noexcept : a_(a), sentinel_(sentinel) {}
    /// Takes the next future to complete (blocking): next(); TimeoutError past the deadline.
    Future<T> operator*() const { return *a_->next(); }
    ///@{
    /// Does nothing: dereferencing advances.
    iterator& operator++() noexcept { return *this; }
    iterator operator++(int) noexcept { return *this; }
    ///@}
    /// Equal when both are past the end (every future handed out) or neither is.
    friend bool operator==(const iterator& x, const iterator& y) noexcept {
      return x.at_end() == y.at_end();
    }

   private:
    bool at_end() const noexcept { return sentinel_ || !a_ || a_->yielded_ == a_->fs_.size(); }
    AsCompletedFutures* a_ = nullptr;
    bool sentinel_ = false;
  };
  /// The first step of the iteration.
  iterator begin() noexcept { return iterator(this, false); }
  /// Past the end.
  iterator end() noexcept { return iterator(this, true); }
  /// How many futures there are (each counted once).
  std::size_t size() const noexcept { return fs_.size(); }

 private:
  std::vector<Future<T>> fs_;
  std::unique_ptr<detail::BlockingWait> wait_;
  std::int64_t deadline_;
  std::size_t yielded_ = 0;
};

template <class Range>
auto as_completed(Range&& futures, std::optional<std::chrono::duration<double>> timeout) {
  using Fut = std::remove_cvref_t<std::ranges::range_reference_t<Range>>;
  using T = typename Fut::value_type;
  static_assert(std::is_same_v<Fut, Future<T>>,
                "kettle::concurrent::as_completed takes kettle::Futures");
  std::int64_t ns =
      timeout ? detail::duration_ns(*timeout, "concurrent::as_completed()") : detail::kNeverNs;
  std::int64_t deadline = ns >= detail::kNeverNs ? detail::kNeverNs : detail::now_ns() + ns;
  return AsCompletedFutures<T>(detail::unique_futures<T>(futures), deadline);
}

}  // namespace concurrent

}  // namespace kettle
