/// @file
/// kettle/taskgroups.hpp — structured concurrency (asyncio.TaskGroup).
///
/// @code
/// co_await kettle::task_group([&](kettle::TaskGroup& tg) -> kettle::Coro<> {
///   tg.create_task(fetch(1));
///   tg.create_task(fetch(2));
///   co_return;
/// });
/// // every child has finished here, whatever happened
/// @endcode
///
/// task_group(body, args...) runs body(tg, args...) in the current task, then waits for
/// every child the body created. The first child that fails (with anything but
/// CancelledError) cancels the other children and the body, and no new child may be
/// created (RuntimeError); once all have finished, the group raises kettle::ExceptionGroup
/// with every failure (a child's own ExceptionGroup nests).
/// Cancellation: if the task running the group is cancelled from outside, the children and
/// the body are cancelled, the group waits for all of them, then CancelledError propagates.
/// The body's own value is returned when nothing failed.
///
/// No child can outlive its group: there is no way to leave task_group() before its
/// children are done, even when the body throws. A TaskGroup handle that escapes the body
/// stays safe to use: create_task() on a finished group raises RuntimeError.
///
/// On g++ 12, pass a named lambda or one that captures by reference: a temporary lambda
/// with owning captures inside a co_await expression is destroyed twice (GCC PR 100611).
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/detail/task_state.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/tasks.hpp"

namespace kettle {

namespace detail {
class GroupState;
}

/// asyncio.TaskGroup: the handle that task_group() passes to its body, to create the
/// group's children. Copies refer to the same group.
class TaskGroup {
 public:
  /// Creates a child task (remembering where, as kettle::create_task). RuntimeError once the
  /// group is shutting down or finished.
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name = {});

  /// Implementation: a handle adopting one reference to the group state `adopted`.
  explicit TaskGroup(detail::GroupState* adopted) noexcept : s_(adopted) {}
  ///@{
  /// Another handle to the same group.
  TaskGroup(const TaskGroup& o) noexcept;
  TaskGroup& operator=(TaskGroup o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ///@}
  /// Drops this handle's reference to the group.
  ~TaskGroup();
  /// Implementation: the group state.
  detail::GroupState* state() const noexcept { return s_; }

 private:
  detail::GroupState* s_;
};

/// `async with asyncio.TaskGroup() as tg:`: a Coro that runs body(tg, args...) (a
/// callable returning a Coro) in the awaiting task, then waits for every child it created.
/// Awaiting it gives the body's value, or raises ExceptionGroup with every failure
/// (RuntimeError outside a task). See taskgroups.hpp.
template <class F, class... Args>
auto task_group(F&& body, Args&&... args);

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

class GroupState {
 public:
  GroupState(LoopCore& loop, TaskBase& parent) noexcept : loop_(&loop), parent_(&parent) {}
  GroupState(const GroupState&) = delete;
  GroupState& operator=(const GroupState&) = delete;
  ~GroupState();

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  void check_can_create() const;
  void attach(TaskBase* child);
  LoopCore& loop() const noexcept { return *loop_; }

  // The exit (asyncio's __aexit__), driven by GroupExit.
  struct Exit;

 private:
  struct Child : Waiter {
    Child(GroupState* g, TaskBase* t) noexcept : Waiter(&GroupState::on_child), group(g), task(t) {}
    GroupState* group;
    TaskBase* task;  // a counted reference
    Child* prev_child = nullptr;
    Child* next_child = nullptr;
  };
  static void on_child(Waiter* w, bool abandoned) noexcept;
  void child_done(Child* c, bool abandoned) noexcept;
  void abort();

  LoopCore* loop_;
  TaskBase* parent_;
  Child* children_ = nullptr;  // in creation order
  Child* last_child_ = nullptr;
  std::size_t nchildren_ = 0;
  std::vector<std::exception_ptr> errors_;
  TaskBase* exit_waiter_ = nullptr;  // the parent, suspended until the children are done
  std::uint32_t refs_ = 1;
  bool exiting_ = false;
  bool finished_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;

  friend class GroupExit;
};

// Waits for the children once the body is over, then raises what the group must raise.
class GroupExit : private CancelHook {
 public:
  static constexpr const char* kettle_name = "kettle::TaskGroup::__aexit__()";
  GroupExit(GroupState* g, std::exception_ptr body_error, bool body_cancelled) noexcept
      : CancelHook{&hook},
        g_(g),
        body_error_(std::move(body_error)),
        body_cancelled_(body_cancelled) {}
  GroupExit(const GroupExit&) = delete;
  GroupExit& operator=(const GroupExit&) = delete;
  ~GroupExit();

  bool await_ready();
  void await_suspend(std::coroutine_handle<> h);
  void await_resume();

 private:
  static bool hook(CancelHook* h);

  GroupState* g_;
  std::exception_ptr body_error_;
  std::exception_ptr propagate_cancel_;
  TaskBase* task_ = nullptr;
  bool body_cancelled_;
};

GroupState* new_group();  // for the task running now; RuntimeError outside a task

template <class R, class F, class... Args>
Coro<R> run_task_group(F body, Args... args) {
  TaskGroup tg(new_group());
  std::exception_ptr body_error;
  bool body_cancelled = false;
  [[maybe_unused]] std::optional<std::conditional_t<std::is_void_v<R>, int, R>> result;
  try {
    if constexpr (std::is_void_v<R>)
      co_await std::invoke(body, tg, args...);
    else
      result.emplace(co_await std::invoke(body, tg, args...));
  } catch (const CancelledError&) {
    body_error = std::current_exception();
    body_cancelled = true;
  } catch (...) {
    body_error = std::current_exception();
  }
  co_await GroupExit(tg.state(), std::move(body_error), body_cancelled);
  if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

template <class C>
struct is_coro : std::false_type {};
template <class T>
struct is_coro<Coro<T>> : std::true_type {};

}  // namespace detail

template <class T>
[[gnu::always_inline]] inline Task<T> TaskGroup::create_task(Coro<T> coro, std::string name) {
  const void* where = detail::here();
  try {
    s_->check_can_create();
  } catch (...) {
    detail::CoroAccess::discard(coro);  // as asyncio closes it: not "never awaited"
    throw;
  }
  Task<T> t = detail::make_task(s_->loop(), std::move(coro), std::move(name), where);
  s_->attach(t.state());
  return t;
}

template <class F, class... Args>
auto task_group(F&& body, Args&&... args) {
  using Body = std::decay_t<F>;
  using C = std::invoke_result_t<Body&, TaskGroup&, std::decay_t<Args>&...>;
  static_assert(detail::is_coro<C>::value,
                "kettle::task_group: the body must be callable as body(TaskGroup&, args...) "
                "and return a kettle::Coro");
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
  static_assert(std::is_lvalue_reference_v<F> || std::is_trivially_destructible_v<Body>,
                "kettle::task_group: g++ 12 destroys a temporary lambda with owning captures "
                "twice inside co_await (GCC PR 100611); name the lambda first or capture by "
                "reference");
#endif
  return detail::run_task_group<typename C::value_type, Body, std::decay_t<Args>...>(
      std::forward<F>(body), std::forward<Args>(args)...);
}

}  // namespace kettle
