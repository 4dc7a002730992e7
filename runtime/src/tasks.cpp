#include "kettle/tasks.hpp"

#include "kettle/event_loop.hpp"
#include "symbols.hpp"

namespace kettle {

namespace detail {

TaskBase::TaskBase(LoopCore& loop, std::coroutine_handle<> root) noexcept
    : FutureCore(loop), id_(loop.next_task_id++), resume_(root) {
  add_ref();  // the loop's reference, dropped when the task finishes
  next_task_ = loop.tasks_head;
  if (next_task_) next_task_->prev_task_ = this;
  loop.tasks_head = this;
  loop.schedule(this);
}

void TaskBase::run() noexcept {
  hook_ = nullptr;
  flags_ &= ~kCancelTaken;
  if (flags_ & kMustCancel) [[unlikely]] {
    flags_ &= ~kMustCancel;
    if (!(flags_ & kStarted)) {
      cancel_before_start();
      return;
    }
    flags_ |= kThrowCancel;
  }
  flags_ |= kStarted;
  LoopCore* l = tls_loop;  // a task only ever runs on its own loop's thread
  l->current_task = this;
  resume_.resume();
  l->current_task = nullptr;
  if (flags_ & kThrowCancel) [[unlikely]] {
    // Resumed by an awaitable that does not know about cancellation: keep the request
    // for the next suspension point.
    flags_ = (flags_ & ~kThrowCancel) | kMustCancel;
  }
  if (promise().start_ == CoroStart::finished) settle_and_unregister();
}

void TaskBase::cancel_before_start() noexcept {
  // A task cancelled before it started never runs its body.
  finish_cancelled(std::make_exception_ptr(CancelledError(std::string(cancel_message()))));
  unregister();
}

void TaskBase::settle_and_unregister() noexcept {
  CoroPromiseBase& p = promise();
  if (p.exception_) {
    if (p.cancelled_)
      finish_cancelled(p.exception_);
    else
      finish_exception(p.exception_, false);
  } else if (flags_ & kMustCancel) {  // cancelled right before the coroutine returned
    flags_ &= ~kMustCancel;
    finish_cancelled(std::make_exception_ptr(CancelledError(std::string(cancel_message()))));
  } else {
    finish();  // the value is already in the promise
  }
  unregister();  // may dispose of this
}

void TaskBase::unregister() noexcept {
  if (LoopCore* l = loop()) {
    if (prev_task_)
      prev_task_->next_task_ = next_task_;
    else
      l->tasks_head = next_task_;
    if (next_task_) next_task_->prev_task_ = prev_task_;
  }
  prev_task_ = next_task_ = nullptr;
  release();
}

bool TaskBase::cancel(std::string_view msg) {
  retrieved_ = true;  // asyncio: a cancelled task's exception is not reported
  if (done()) return false;
  ++num_cancels_;
  // The first message wins once the awaitable took a request (it raises that one). The
  // awaitable is asked again all the same (every hook answers a second call; an awaited
  // task takes it, as asyncio forwards it). If it refuses, the task throws when it next
  // runs: an awaited task that took the first request may have returned normally since.
  // Every awaitable's await_resume consumes both at once, so one CancelledError is raised.
  bool taken_before = flags_ & kCancelTaken;
  if (!taken_before && (!msg.empty() || extras_)) extras().cancel_message.assign(msg);
  if (flags_ & kInCancel) [[unlikely]] {
    // Cancelling what this task awaits came back to it: tasks that await each other in a
    // cycle (asyncio recurses until RecursionError). Nothing along the cycle can finish
    // first, so this task is woken to raise CancelledError where it waits; the others then
    // see it finish cancelled.
    flags_ |= kMustCancel;
    wake();
    return true;
  }
  if (hook_) {
    struct InCancel {
      std::uint8_t& flags;
      ~InCancel() { flags &= ~kInCancel; }
    } in_cancel{flags_};
    flags_ |= kInCancel;
    if (hook_->cancel(hook_)) {
      flags_ |= kCancelTaken;
      return true;
    }
  }
  flags_ |= kMustCancel;
  return true;
}

std::uint32_t TaskBase::uncancel() noexcept {
  if (num_cancels_ > 0 && --num_cancels_ == 0) flags_ &= ~kMustCancel;
  return num_cancels_;
}

TaskBase::Extras& TaskBase::extras() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  return *extras_;
}

std::string TaskBase::get_name() const {
  if (extras_ && extras_->has_name) return extras_->name;
  return "Task-" + std::to_string(id_);
}

void TaskBase::set_name(std::string name) {
  Extras& e = extras();
  e.name = std::move(name);
  e.has_name = true;
}

std::string_view TaskBase::cancel_message() const noexcept {
  return extras_ ? std::string_view(extras_->cancel_message) : std::string_view();
}

void TaskBase::capture_creation_stack() {
  extras().creation_stack = capture_stack(1);
}

std::string TaskBase::source_traceback() const {
  const char* head = "Task created at (most recent call last):\n";
  if (const auto* pcs = creation_stack()) return head + format_stack(*pcs);
  if (!created_at_) return {};
  CodeLocation w = locate(created_at_, false);
  return head + std::string("  File \"") + (w.file.empty() ? "?" : w.file) + "\", line " +
         std::to_string(w.line) + ", in " + (w.function.empty() ? "?" : w.function) + "\n";
}

std::string TaskBase::describe() const {
  std::string s = std::string("<Task ") +
                  (!done()       ? "pending"
                   : cancelled() ? "cancelled"
                                 : "finished") +
                  " name='" + get_name() + "'";
  if (!done()) {
    auto& self = const_cast<TaskBase&>(*this);
    CoroPromiseBase* p = &self.promise();
    while (p->child())
      p = p->child();
    const void* frame = std::coroutine_handle<CoroPromiseBase>::from_promise(*p).address();
    std::string where = p->awaited() ? short_location(locate(p->pc_, false)) : "its start";
    s += " coro=<" + short_function(coroutine_function(frame)) + "() running at " + where + ">";
  }
  if (created_at_) s += " created at " + short_location(locate(created_at_, false));
  return s + ">";
}

void throw_not_in_task() {
  throw RuntimeError(
      "a kettle awaitable was awaited outside a task: run the coroutine with kettle::run(), "
      "loop.run_until_complete() or kettle::create_task()");
}

LoopCore& running_loop_core() {
  LoopCore* l = tls_loop;
  if (!l)
    throw RuntimeError("no running event loop (call this from a coroutine run by kettle::run)");
  return *l;
}

void throw_foreign_loop() {
  throw RuntimeError(
      "this task or future belongs to a different event loop; cross loops with "
      "run_coroutine_threadsafe() or call_soon_threadsafe()");
}

void throw_await_self() {
  throw RuntimeError("Task cannot await on itself");
}

void throw_bad_task_coro() {
  throw RuntimeError("create_task() needs a Coro that was neither awaited nor moved from");
}

}  // namespace detail

void SleepAwaiter::arm(detail::TaskBase& t, std::coroutine_handle<> h) {
  node_.when += detail::now_ns();  // from a duration to a deadline
  t.loop()->timers.push(&node_);
  t.suspend(h, this);
}

TaskRef current_task() {
  detail::TaskBase* t = detail::running_task();
  if (!t) return {};
  t->add_ref();
  return TaskRef(t);
}

std::vector<TaskRef> all_tasks() {
  std::vector<TaskRef> out;
  for (detail::TaskBase* t = detail::running_loop_core().tasks_head; t; t = t->next_task_) {
    t->add_ref();
    out.emplace_back(t);
  }
  return out;
}

}  // namespace kettle
