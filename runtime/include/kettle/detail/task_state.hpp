// Internal: the state behind a Task — a FutureCore that drives a coroutine chain. It lives
// inside the promise of the task's root coroutine (CoroPromiseBase::task_state_), so a
// task is one allocation; the frame is freed when the last reference to the task goes.
//
// The awaiter protocol. Every kettle awaitable that suspends a task does, in order:
//   await_suspend:  task = current_task_for_await(); ...arm the operation...;
//                   task->suspend(h, hook)      hook aborts the operation on cancel()
//   (completion):   task->wake()                schedules the task, never resumes inline
//   await_resume:   task->resume_point();       throws CancelledError if the task was
//                                               cancelled while it was ready to run
// This is what lets cancel() reach whatever a task is suspended in.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <coroutine>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/detail/future_core.hpp"
#include "kettle/detail/loop_core.hpp"

namespace kettle::detail {

class TaskBase : public FutureCore {
 public:
  // --- the awaiter protocol (see above) ---
  void suspend(std::coroutine_handle<> h, CancelHook* hook) noexcept {
    resume_ = h;
    hook_ = hook;
    if ((flags_ & kMustCancel) && hook && hook->cancel(hook)) [[unlikely]]
      flags_ = (flags_ & ~kMustCancel) | kCancelTaken;
  }
  // Scheduling into a closed loop does nothing: the task is being abandoned.
  void wake() {
    LoopCore* l = loop();
    if (l && !l->closed.load(std::memory_order_relaxed)) [[likely]]
      l->schedule(this);
  }
  bool take_cancel() noexcept {
    bool r = flags_ & kThrowCancel;
    flags_ &= ~kThrowCancel;
    return r;
  }
  void resume_point() {
    if (take_cancel()) [[unlikely]]
      throw_cancelled();
  }
  // Inline, so that the unwinder has one frame less to walk to the coroutine's handler.
  [[noreturn]] void throw_cancelled() const { throw CancelledError(std::string(cancel_message())); }
  bool cancel_requested() const noexcept { return flags_ & kMustCancel; }
  // A cancellation was taken but could not be delivered here: deliver it at the next
  // suspension point.
  void defer_cancel() noexcept { flags_ |= kMustCancel; }

  // --- asyncio.Task ---
  bool cancel(std::string_view msg) override;
  std::uint32_t cancelling() const noexcept { return num_cancels_; }
  std::uint32_t uncancel() noexcept;
  std::string get_name() const;
  void set_name(std::string name);
  std::string_view cancel_message() const noexcept;
  std::string describe_for_handler() const override { return get_name(); }
  std::string source_traceback() const override;
  const char* never_retrieved_message() const noexcept override {
    return "Task exception was never retrieved";
  }

  // One step: resumes the coroutine where it is suspended.
  void run() noexcept override;

  // --- introspection (graph.hpp, debug mode) ---
  CoroPromiseBase& root_promise() noexcept { return promise(); }
  bool started() const noexcept { return flags_ & kStarted; }
  // Where create_task() was called (an address, resolved when printed); null if implicit.
  void set_created_at(const void* pc) noexcept { created_at_ = pc; }
  // Debug mode: keeps the stack that creates the task (program counters, innermost first).
  void capture_creation_stack();
  const std::vector<std::uintptr_t>* creation_stack() const noexcept {
    return extras_ && !extras_->creation_stack.empty() ? &extras_->creation_stack : nullptr;
  }
  // "<Task pending name='…' coro=<f() running at file:line> created at file:line>"
  std::string describe() const;

  // The loop is closing with this task still pending. Its coroutine is destroyed (running
  // the destructors of its locals) when the last reference goes.
  void abandon_pending() noexcept { abandon(); }

 protected:
  TaskBase(LoopCore& loop, std::coroutine_handle<> root) noexcept;

  CoroPromiseBase& promise() noexcept {
    return *std::launder(reinterpret_cast<CoroPromiseBase*>(static_cast<void*>(this)));
  }
  std::exception_ptr& exception_slot() noexcept override { return promise().exception_; }
  // Settles the task from the finished root coroutine, then leaves the loop's list.
  void settle_and_unregister() noexcept;

 private:
  enum : std::uint8_t {
    kMustCancel = 1,
    kThrowCancel = 2,
    kStarted = 4,
    kCancelTaken = 8,
    kInCancel = 16  // cancel() is asking the awaitable: a second call is an await cycle
  };

  struct Extras {
    std::string name;                            // set_name()
    std::string cancel_message;                  // the message of the cancellation on its way
    std::vector<std::uintptr_t> creation_stack;  // debug mode
    bool has_name = false;
  };
  Extras& extras();

  void unregister() noexcept;  // leaves the loop's pending list, drops the loop's reference
  [[gnu::noinline, gnu::cold]] void cancel_before_start() noexcept;

  std::uint8_t flags_ = 0;  // kMustCancel: cancel() found nothing to abort; throw at the next
                            // resumption. kThrowCancel: this resumption must throw.
                            // kCancelTaken: the awaitable took a cancellation, which it
                            // delivers when the task resumes (asyncio: fut_waiter cancelled).
  std::uint32_t num_cancels_ = 0;
  std::uint32_t id_;
  std::coroutine_handle<> resume_;
  CancelHook* hook_ = nullptr;
  std::unique_ptr<Extras> extras_;
  const void* created_at_ = nullptr;

 public:
  // Intrusive list of a loop's pending tasks.
  TaskBase* prev_task_ = nullptr;
  TaskBase* next_task_ = nullptr;
};

template <class T>
class TaskRoot final : public TaskBase {
  using Promise = CoroPromise<T>;
  using Handle = std::coroutine_handle<Promise>;

 public:
  // Turns a fresh coroutine into a scheduled task; the returned state holds one reference.
  static TaskRoot* create(LoopCore& loop, Handle h) noexcept {
    return ::new (static_cast<void*>(h.promise().task_state_)) TaskRoot(loop, h);
  }

  void* value_address() noexcept override {
    if constexpr (std::is_void_v<T>)
      return nullptr;
    else
      return &*typed_promise().value_;
  }

 private:
  TaskRoot(LoopCore& loop, Handle h) noexcept : TaskBase(loop, h) {}
  Promise& typed_promise() noexcept { return static_cast<Promise&>(promise()); }
  void dispose() noexcept override {
    Handle h = Handle::from_promise(typed_promise());
    this->~TaskRoot();
    h.destroy();
  }
};

static_assert(sizeof(TaskRoot<int>) <= kTaskStateSize && alignof(TaskRoot<int>) <= 8,
              "kettle: the task state no longer fits the space its promise reserves");
static_assert(std::is_standard_layout_v<CoroPromiseBase>);

// The task whose step is running on this thread, or null.
inline TaskBase* running_task() noexcept {
  LoopCore* l = tls_loop;
  return l ? l->current_task : nullptr;
}

[[noreturn]] void throw_not_in_task();

// The same, for an awaiter that is about to suspend: RuntimeError outside a task.
inline TaskBase& current_task_for_await() {
  LoopCore* l = tls_loop;
  if (l && l->current_task) [[likely]]
    return *l->current_task;
  throw_not_in_task();
}

}  // namespace kettle::detail
