/// @file
/// kettle/tasks.hpp — tasks, sleep and gather (asyncio.tasks).
///
/// @code
/// kettle::Coro<int> fetch(int id) { co_await kettle::sleep(2s); co_return id; }
///
/// kettle::Coro<> main_() {
///   kettle::Task<int> t = kettle::create_task(fetch(1), "fetch-1");
///   auto [a, b] = co_await kettle::gather(fetch(2), fetch(3));   // concurrently
///   int c = co_await t;
/// }
/// @endcode
///
/// - `Task<T>`: a coroutine scheduled on the running loop (asyncio.Task). The loop keeps
///   it alive until it finishes, so fire-and-forget is safe. Any number of
///   tasks may await it. A task that failed and whose exception nobody looked
///   at is reported to the loop's exception handler when it is destroyed
///   ("Task exception was never retrieved").
/// - `TaskRef`: the same task without its result type (current_task(), all_tasks()).
/// - `create_task`: schedules a Coro on the running loop; RuntimeError if none is running.
/// - `sleep(d)`: suspends the task for d; sleep(0) lets every other ready task run once.
/// - `gather(...)`: runs awaitables concurrently and collects their results in argument
///   order; see "gather" below.
///
/// Tasks are loop-local, as in asyncio: use them from their loop's thread only.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/detail/durations.hpp"
#include "kettle/detail/future_core.hpp"
#include "kettle/detail/task_state.hpp"
#include "kettle/detail/timer_heap.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/futures.hpp"

namespace kettle {

namespace detail {
template <class T, bool Take>
class FutureAwaiter;
}

/// A task without its result type (what current_task() and all_tasks() give): asyncio.Task.
/// Copies refer to the same task.
///
/// Every method of an empty TaskRef or Task (default-constructed or moved from) raises
/// InvalidStateError, and so does awaiting one.
class TaskRef {
 public:
  /// An empty handle.
  TaskRef() noexcept = default;

  /// True once the task has finished: with a value, an exception, or cancelled.
  bool done() const { return core().done(); }
  /// True only if CancelledError actually left the coroutine (or it never started).
  bool cancelled() const { return core().cancelled(); }
  /// Requests cancellation: CancelledError(msg) is thrown where the task is suspended.
  /// False if the task is already done. While an earlier request is on its way to the
  /// task, a second one only counts (cancelling()): the first one's message is raised.
  bool cancel(std::string_view msg = {}) { return core().cancel(msg); }
  /// The number of cancellation requests not yet withdrawn by uncancel() (asyncio's
  /// Task.cancelling()).
  std::uint32_t cancelling() const { return core().cancelling(); }
  /// Withdraws one cancellation request and returns how many remain (asyncio's
  /// Task.uncancel()); at 0, a request not yet delivered is dropped.
  std::uint32_t uncancel() { return core().uncancel(); }
  /// The task's name: the one given to create_task() or set_name(), else "Task-<id>".
  std::string get_name() const { return core().get_name(); }
  /// Renames the task.
  void set_name(std::string name) { core().set_name(std::move(name)); }
  /// The exception the task failed with, null if it succeeded; InvalidStateError while
  /// pending, CancelledError if cancelled.
  std::exception_ptr exception() const { return core().exception(); }

  /// False for an empty handle (default-constructed or moved from).
  explicit operator bool() const noexcept { return bool(state_); }
  /// True if both handles refer to the same task (or both are empty).
  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept {
    return a.state_.get() == b.state_.get();
  }

  /// Awaiting a TaskRef waits for the task and rethrows its exception; the value is dropped.
  detail::FutureAwaiter<void, false> operator co_await() const noexcept;

  /// Implementation: a handle adopting one reference to the task state `adopted`.
  explicit TaskRef(detail::TaskBase* adopted) noexcept : state_(adopted) {}
  /// Implementation: the task state, null for an empty handle.
  detail::TaskBase* state() const noexcept { return state_.get(); }

 protected:
  /// Implementation: the task state; InvalidStateError for an empty handle.
  detail::TaskBase& core() const {
    if (!state_) [[unlikely]]
      detail::throw_empty_future("Task");
    return *state_;
  }
  /// Implementation: the counted reference to the task state.
  detail::CoreRef<detail::TaskBase> state_;
};

/// A coroutine scheduled on a loop that produces a T (asyncio.Task), made by create_task().
/// The loop keeps it alive until it finishes; any number of tasks may await it.
template <class T = void>
class Task : public TaskRef {
 public:
  /// The task's result type.
  using value_type = T;
  /// An empty handle.
  Task() noexcept = default;

  ///@{
  /// The result; InvalidStateError while pending, CancelledError if cancelled, the task's
  /// exception if it failed. On an rvalue the value is moved out.
  decltype(auto) result() & { return detail::future_ref<T>(&core()); }
  decltype(auto) result() && { return detail::future_take<T>(&core(), state_->refs() == 1); }
  ///@}

  /// fn(Task<T>&) or fn(), called through the loop once the task is done.
  template <class F>
  void add_done_callback(F&& fn);

  ///@{
  /// co_await on an lvalue gives T& (the value stays in the task); on an rvalue, T.
  detail::FutureAwaiter<T, false> operator co_await() & noexcept;
  detail::FutureAwaiter<T, true> operator co_await() && noexcept;
  ///@}

  /// Implementation: TaskRef's constructors (a Task adopting a task state).
  using TaskRef::TaskRef;
};

/// Schedules `coro` on the running loop. RuntimeError if no loop is running on this thread.
/// The task remembers where it was created (the address of the call, resolved to a file and
/// line when a report shows it; in debug mode the whole stack).
template <class T>
Task<T> create_task(Coro<T> coro, std::string name = {});
/// The same for any other kettle awaitable (q.get(), lock.acquire(), ev.wait(), sleep(d),
/// wait_for(...), a Future, ...): a task that awaits it. Tasks and gathers are tasks already
/// (compile-time error: use them as they are, or ensure_future).
template <class Aw>
requires(!std::is_base_of_v<TaskRef, std::remove_cvref_t<Aw>>) auto create_task(
    Aw&& aw, std::string name = {});

/// asyncio.ensure_future: a Task or LoopFuture as it is; a Coro or any other awaitable
/// becomes a Task.
template <class Aw>
auto ensure_future(Aw&& aw);

/// The task running on this thread (empty outside a task).
TaskRef current_task();
/// Every task of the running loop that has not finished.
std::vector<TaskRef> all_tasks();

class SleepAwaiter;
///@{
/// sleep(d): suspends the current task for d (≤ 0 acts as 0; longer than 100 years means
/// forever; NaN is ValueError). sleep(0) yields: every other ready task runs once before
/// this one resumes.
/// Cancellation: the timer is disarmed at once; nothing is left behind.
template <class Rep, class Period>
SleepAwaiter sleep(std::chrono::duration<Rep, Period> d);
SleepAwaiter sleep(double seconds);
///@}

// ---------------------------------------------------------------------------------------
// gather
//
//   auto [a, b, c] = co_await gather(x(), y(), z());     // std::tuple, argument order
//   std::vector<int> v = co_await gather(coros);        // a range of awaitables
//   auto rs = co_await gather(return_exceptions, x(), y());
//                                      // std::tuple<Result<X>, Result<Y>>: never throws
//
// Arguments may be Coros (made tasks at once), Tasks, other gathers or any awaitable.
// Children run concurrently. A void child contributes std::monostate. By default the
// first exception is propagated to the awaiter at once and the other children keep
// running (asyncio's meaning). A child cancelled from outside counts as that child raising
// CancelledError. gather() returns a LoopFuture (alias GatheringFuture), which can be
// awaited, cancelled and inspected.
// Cancellation: cancelling the gather (or the task awaiting it) cancels every unfinished
// child; results of children already done are dropped with it.

/// The type of return_exceptions.
inline constexpr struct return_exceptions_t {
  /// Explicit, so that `{}` is never taken for it.
  explicit return_exceptions_t() = default;
}
/// gather(return_exceptions, ...): asyncio's `gather(..., return_exceptions=True)`; each
/// child gives a Result<T> and the gather never throws.
return_exceptions{};

/// A value or the exception that was raised instead (gather with return_exceptions).
template <class T>
class Result {
 public:
  /// T, or std::monostate for void.
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  /// A Result holding the value v.
  Result(value_type v) : v_(std::in_place_index<0>, std::move(v)) {}
  /// A Result holding the exception e.
  Result(std::exception_ptr e) : v_(std::in_place_index<1>, std::move(e)) {}

  ///@{
  /// True if there is a value, false if there is an exception.
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  ///@}
  ///@{
  /// The value, or rethrows the exception. On an rvalue the value is moved out.
  value_type& value() & {
    if (!has_value()) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(v_);
  }
  value_type value() && {
    if (!has_value()) std::rethrow_exception(std::get<1>(v_));
    return std::move(std::get<0>(v_));
  }
  ///@}
  /// The exception, null if there is a value.
  std::exception_ptr exception() const noexcept { return has_value() ? nullptr : std::get<1>(v_); }

 private:
  std::variant<value_type, std::exception_ptr> v_;
};

/// A loop-local future (asyncio.Future) made by gather() or shield(): awaitable by any
/// number of tasks, cancellable, inspectable. Copies refer to the same future; every
/// method of an empty one raises InvalidStateError.
template <class R>
class [[nodiscard]] LoopFuture {
 public:
  /// gather: false once done; otherwise cancels every unfinished child and returns whether
  /// any child took the request. shield: cancels the outer future only.
  bool cancel(std::string_view msg = {}) { return core().cancel(msg); }
  /// True once the future has a result, an exception, or was cancelled.
  bool done() const { return core().done(); }
  /// True if the future was cancelled.
  bool cancelled() const { return core().cancelled(); }
  /// The exception it finished with, null if it has a value; InvalidStateError while
  /// pending, CancelledError if cancelled.
  std::exception_ptr exception() const { return core().exception(); }
  ///@{
  /// The result (a reference on an lvalue; moved out of an rvalue that is the only handle,
  /// else copied); InvalidStateError while pending, CancelledError if cancelled, the
  /// exception if it failed.
  decltype(auto) result() & { return detail::future_ref<R>(&core()); }
  R result() && { return detail::future_take<R>(&core(), state_->refs() == 1); }
  ///@}

  ///@{
  /// Waits for the future: on an lvalue gives R& (the value stays in the future), on an
  /// rvalue R; rethrows its exception. Cancelling the awaiting task cancels the future.
  detail::FutureAwaiter<R, false> operator co_await() & noexcept;
  detail::FutureAwaiter<R, true> operator co_await() && noexcept;
  ///@}

  /// fn(LoopFuture<R>&) or fn(), called through the loop once the future is done;
  /// RuntimeError if its loop is closed.
  template <class F>
  void add_done_callback(F&& fn);

  /// Implementation: a handle adopting one reference to the future state `adopted`.
  explicit LoopFuture(detail::FutureCore* adopted) noexcept : state_(adopted) {}
  /// Implementation: the future state, null for an empty handle.
  detail::FutureCore* state() const noexcept { return state_.get(); }

 private:
  detail::FutureCore& core() const {
    if (!state_) [[unlikely]]
      detail::throw_empty_future("LoopFuture");
    return *state_;
  }
  detail::CoreRef<detail::FutureCore> state_;
};

/// asyncio's name for what gather() returns.
template <class R>
using GatheringFuture = LoopFuture<R>;

/// asyncio.gather: runs the awaitables concurrently (Coros become tasks at once) and gives
/// a LoopFuture of their results: a std::tuple in argument order, or a std::vector for a
/// single range of awaitables. The first exception propagates to the awaiter at once while
/// the other children keep running; cancelling the gather cancels every unfinished child.
/// RuntimeError if no loop is running. See "gather" above.
template <class... Aws>
auto gather(Aws&&... aws);
/// gather(return_exceptions, ...): the same, but each child gives a Result<T> holding its
/// value or its exception, and awaiting the gather never raises a child's exception.
template <class... Aws>
auto gather(return_exceptions_t, Aws&&... aws);

// ---------------------------------------------------------------------------------------
// shield, wait, as_completed
//
//   T r = co_await kettle::shield(task);   // cancelling this task does not cancel `task`
//   auto [done, pending] = co_await kettle::wait(tasks, kettle::FIRST_COMPLETED, 1s);
//   for (auto next : kettle::as_completed(tasks, 2s)) T r = co_await next;

/// shield(aw): a LoopFuture that follows aw (a Coro becomes a task).
/// Cancellation: cancelling it, or the task awaiting it, does not cancel aw, which runs on
/// (its result, if nobody else awaits it, is dropped); the awaiting task sees CancelledError.
template <class Aw>
auto shield(Aw&& aw);

/// What awaiting wait() gives: asyncio.wait's `(done, pending)`.
template <class Fut>
struct WaitResult {
  std::vector<Fut> done;     ///< The futures that are done.
  std::vector<Fut> pending;  ///< The futures still pending.
};

/// wait(futures, return_when, timeout): waits for Tasks, LoopFutures or Futures (not
/// Coros: make them tasks first, as asyncio requires) and returns which are done and which
/// pending, in the input's order (a future given twice, once). Never raises TimeoutError.
/// Cancellation: nothing is cancelled, the futures go on.
template <class Range>
auto wait(Range&& futures, ReturnWhen return_when = ALL_COMPLETED,
          std::optional<std::chrono::duration<double>> timeout = std::nullopt);

/// as_completed(aws, timeout): as many awaitables as aws has (a future given twice, once),
/// each giving the next result in completion order (or raising its exception); after the
/// timeout, the ones left raise TimeoutError. Coros are made tasks. Iterating again after a
/// `break` resumes where it stopped.
/// Cancellation: a step cancelled while waiting takes no result (the next step gets it);
/// the awaitables go on.
template <class Range>
auto as_completed(Range&& aws, std::optional<std::chrono::duration<double>> timeout = std::nullopt);

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

[[noreturn]] void throw_foreign_loop();
[[noreturn]] void throw_await_self();

// Awaits any FutureCore: registers as a waiter; cancelling the awaiting task cancels
// the awaited future (which, for a task, may refuse or take its time).
template <class T, bool Take>
class FutureAwaiter : private Waiter, private CancelHook {
 public:
  static constexpr const char* kettle_name = "co_await (a task or future of this loop)";
  explicit FutureAwaiter(FutureCore* f) noexcept : Waiter(&on_done), CancelHook{&hook}, f_(f) {}
  FutureAwaiter(const FutureAwaiter&) = delete;
  FutureAwaiter& operator=(const FutureAwaiter&) = delete;
  ~FutureAwaiter() {
    if (f_) f_->remove_waiter(*this);
  }

  bool await_ready() const {
    if (!f_) [[unlikely]]
      throw_empty_future("Task or future");
    return f_->done();
  }

  void await_suspend(std::coroutine_handle<> h) {
    TaskBase& t = current_task_for_await();
    if (f_->loop() != t.loop()) throw_foreign_loop();
    if (f_ == static_cast<FutureCore*>(&t)) throw_await_self();
    task_ = &t;
    Waiter::awaiter = &t;
    f_->add_waiter(*this);
    t.suspend(h, this);
  }

  decltype(auto) await_resume() {
    if (task_) task_->resume_point();
    if constexpr (Take)
      return future_take<T>(f_, f_->refs() == 1);  // the awaited handle is the only one
    else
      return future_ref<T>(f_);
  }

 private:
  static void on_done(Waiter* w, bool abandoned) noexcept {
    if (!abandoned) static_cast<FutureAwaiter*>(w)->task_->wake();
  }
  static bool hook(CancelHook* h) {
    auto* a = static_cast<FutureAwaiter*>(h);
    return a->f_->cancel(a->task_->cancel_message());
  }

  FutureCore* f_;
  TaskBase* task_ = nullptr;
};

[[noreturn]] void throw_bad_task_coro();

template <class T>
Task<T> make_task(LoopCore& loop, Coro<T>&& coro, std::string name, const void* where = nullptr) {
  if (!coro.valid() || CoroAccess::handle(coro).promise().start_ != CoroStart::fresh)
    throw_bad_task_coro();
  if (loop.closed) {
    CoroAccess::discard(coro);  // the error says it all: no "never awaited" on top
    throw RuntimeError("Event loop is closed");
  }
  Task<T> t(TaskRoot<T>::create(loop, CoroAccess::release(coro)));
  t.state()->set_created_at(where);
  if (loop.debug) [[unlikely]]
    t.state()->capture_creation_stack();
  if (!name.empty()) t.set_name(std::move(name));
  return t;
}

LoopCore& running_loop_core();  // RuntimeError("no running event loop")

// What awaiting `Aw` produces, and how to make a loop-local future of it.
template <class Aw>
struct AwaitTraits;
template <class T>
struct AwaitTraits<Coro<T>> {
  using value_type = T;
};
template <class T>
struct AwaitTraits<Task<T>> {
  using value_type = T;
};
template <class R>
struct AwaitTraits<LoopFuture<R>> {
  using value_type = R;
};
template <class Aw>
requires requires(Aw&& a) {
  std::forward<Aw>(a).operator co_await();
}
struct AwaitTraits<Aw> {
  using value_type =
      std::remove_cvref_t<decltype(std::declval<Aw>().operator co_await().await_resume())>;
};
template <class Aw>
requires requires(Aw&& a) {
  a.await_resume();
}
struct AwaitTraits<Aw> {
  using value_type = std::remove_cvref_t<decltype(std::declval<Aw&>().await_resume())>;
};

template <class Aw>
using await_value_t = typename AwaitTraits<std::remove_cvref_t<Aw>>::value_type;

template <class T, class Aw>
Coro<T> await_as_coro(Aw aw) {
  co_return co_await std::move(aw);
}

// A loop-local future for any awaitable: Coros become tasks, futures are used as they are.
template <class Aw>
CoreRef<FutureCore> ensure_future(LoopCore& loop, Aw&& aw) {
  using A = std::remove_cvref_t<Aw>;
  FutureCore* f;
  if constexpr (std::is_base_of_v<TaskRef, A>) {
    f = aw.state();
    if (!f) throw_empty_future("Task");
    if (f->loop() != &loop) throw_foreign_loop();
    f->add_ref();
  } else if constexpr (requires {
                         { aw.state() } -> std::convertible_to<FutureCore*>;
                       }) {
    f = aw.state();
    if (!f) throw_empty_future("LoopFuture");
    if (f->loop() != &loop) throw_foreign_loop();
    f->add_ref();
  } else if constexpr (requires { typename A::promise_type; }) {
    f = make_task(loop, std::move(aw), {}).state();
    f->add_ref();
  } else {
    using T = await_value_t<Aw>;
    f = make_task(loop, await_as_coro<T>(std::forward<Aw>(aw)), {}).state();
    f->add_ref();
  }
  return CoreRef<FutureCore>(f);
}

}  // namespace detail

template <class T>
detail::FutureAwaiter<T, false> Task<T>::operator co_await() & noexcept {
  return detail::FutureAwaiter<T, false>(state_.get());
}
template <class T>
detail::FutureAwaiter<T, true> Task<T>::operator co_await() && noexcept {
  return detail::FutureAwaiter<T, true>(state_.get());
}
inline detail::FutureAwaiter<void, false> TaskRef::operator co_await() const noexcept {
  return detail::FutureAwaiter<void, false>(state_.get());
}
template <class R>
detail::FutureAwaiter<R, false> LoopFuture<R>::operator co_await() & noexcept {
  return detail::FutureAwaiter<R, false>(state_.get());
}
template <class R>
detail::FutureAwaiter<R, true> LoopFuture<R>::operator co_await() && noexcept {
  return detail::FutureAwaiter<R, true>(state_.get());
}
template <class R>
template <class F>
void LoopFuture<R>::add_done_callback(F&& fn) {
  if constexpr (std::is_invocable_v<std::decay_t<F>&, LoopFuture<R>&>) {
    core().add_done_callback([self = *this, f = std::forward<F>(fn)]() mutable { f(self); });
  } else {
    static_assert(std::is_invocable_v<std::decay_t<F>&>,
                  "kettle: a done callback takes the future (LoopFuture<R>&) or nothing");
    core().add_done_callback(std::function<void()>(std::forward<F>(fn)));
  }
}

template <class T>
template <class F>
void Task<T>::add_done_callback(F&& fn) {
  if constexpr (std::is_invocable_v<std::decay_t<F>&, Task<T>&>) {
    core().add_done_callback([self = *this, f = std::forward<F>(fn)]() mutable { f(self); });
  } else {
    static_assert(std::is_invocable_v<std::decay_t<F>&>,
                  "kettle: a done callback takes the Task (Task<T>&) or nothing");
    core().add_done_callback(std::function<void()>(std::forward<F>(fn)));
  }
}

// Inlined into the caller, so that detail::here() is the address of the call.
template <class T>
[[gnu::always_inline]] inline Task<T> create_task(Coro<T> coro, std::string name) {
  return detail::make_task(detail::running_loop_core(), std::move(coro), std::move(name),
                           detail::here());
}

template <class Aw>
requires(!std::is_base_of_v<TaskRef, std::remove_cvref_t<Aw>>)
    [[gnu::always_inline]] inline auto create_task(Aw&& aw, std::string name) {
  static_assert(
      !requires { aw.state()->refs(); },
      "kettle::create_task: this is a loop future already (a gather or a shield); "
      "await it as it is, or use ensure_future()");
  using T = detail::await_value_t<Aw>;
  detail::LoopCore& loop = detail::running_loop_core();  // before the wrapper is made
  return detail::make_task(loop, detail::await_as_coro<T>(std::forward<Aw>(aw)), std::move(name),
                           detail::here());
}

template <class Aw>
auto ensure_future(Aw&& aw) {
  using A = std::remove_cvref_t<Aw>;
  if constexpr (std::is_base_of_v<TaskRef, A> || requires { aw.state()->refs(); }) {
    if (!aw.state()) detail::throw_empty_future("Task");
    return A(aw);
  } else {
    return create_task(std::forward<Aw>(aw));
  }
}

/// What sleep() returns: awaiting it suspends the current task for the duration.
class [[nodiscard]] SleepAwaiter : private detail::CancelHook {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "kettle::sleep()";
  /// A sleep of ns nanoseconds (≤ 0: a yield); sleep() makes these.
  explicit SleepAwaiter(std::int64_t ns) noexcept : CancelHook{&hook} { node_.when = ns; }
  /// Movable until awaited (gather may take a sleep by value).
  SleepAwaiter(SleepAwaiter&& o) noexcept : CancelHook{&hook} { node_.when = o.node_.when; }
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  /// Disarms the timer if it is still armed.
  ~SleepAwaiter() {
    if (node_.armed()) task()->loop()->timers.remove(&node_);
  }

  /// True (no suspension) only for sleep(0) when yielding would change nothing.
  bool await_ready() const noexcept {
    // sleep(0) when yielding would come straight back here costs nothing.
    if (node_.when > 0) return false;
    detail::LoopCore* l = detail::tls_loop;
    return l && l->current_task && !l->current_task->cancel_requested() && l->yield_is_noop();
  }

  /// Arms the timer (or, for sleep(0), reschedules the task behind the ready ones).
  void await_suspend(std::coroutine_handle<> h) {
    detail::TaskBase& t = detail::current_task_for_await();
    node_.set_target(&t);
    if (node_.when <= 0) {
      t.suspend(h, nullptr);
      detail::tls_loop->schedule(&t);
      return;
    }
    arm(t, h);
  }

  /// Raises CancelledError if the task was cancelled while sleeping.
  void await_resume() {
    if (!node_.target()) return;  // did not suspend
    // Consume a pending cancel request even when the timer was aborted by the hook.
    if (task()->take_cancel() | (node_.index == detail::TimerNode::cancelled))
      task()->throw_cancelled();
  }

 private:
  detail::TaskBase* task() const noexcept { return static_cast<detail::TaskBase*>(node_.target()); }
  void arm(detail::TaskBase& t, std::coroutine_handle<> h);

  static bool hook(detail::CancelHook* h) noexcept {
    auto* a = static_cast<SleepAwaiter*>(h);
    if (!a->node_.armed()) return false;  // already fired
    a->task()->loop()->timers.remove(&a->node_);
    a->node_.index = detail::TimerNode::cancelled;
    a->task()->wake();
    return true;
  }

  detail::TimerNode node_;  // when: the duration until awaited, then the deadline
};

template <class Rep, class Period>
SleepAwaiter sleep(std::chrono::duration<Rep, Period> d) {
  if (d <= d.zero()) return SleepAwaiter(0);  // (false for NaN, which duration_ns refuses)
  return SleepAwaiter(detail::duration_ns(d, "sleep()"));
}

inline SleepAwaiter sleep(double seconds) {
  return sleep(std::chrono::duration<double>(seconds));
}

}  // namespace kettle

#include "kettle/detail/gather.hpp"
#include "kettle/detail/waiting.hpp"
