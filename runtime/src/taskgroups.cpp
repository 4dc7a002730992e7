#include "kettle/taskgroups.hpp"

#include "kettle/event_loop.hpp"

namespace kettle {

TaskGroup::TaskGroup(const TaskGroup& o) noexcept : s_(o.s_) {
  if (s_) s_->add_ref();
}

TaskGroup::~TaskGroup() {
  if (s_) s_->release();
}

namespace detail {

GroupState* new_group() {
  TaskBase& parent = current_task_for_await();
  return new GroupState(*tls_loop, parent);
}

GroupState::~GroupState() {
  // Only reachable with children left if their loop closed under them.
  while (Child* c = children_) {
    children_ = c->next_child;
    c->task->remove_waiter(*c);
    c->task->release();
    delete c;
  }
}

void GroupState::check_can_create() const {
  if (finished_ || (exiting_ && nchildren_ == 0)) throw RuntimeError("TaskGroup is finished");
  if (aborting_) throw RuntimeError("TaskGroup is shutting down");
  if (loop_->closed) throw RuntimeError("Event loop is closed");
}

void GroupState::attach(TaskBase* child) {
  auto* c = new Child(this, child);
  c->awaiter = parent_;  // as asyncio 3.14: a child is awaited by the task of its group
  child->add_ref();
  c->prev_child = last_child_;
  if (last_child_)
    last_child_->next_child = c;
  else
    children_ = c;
  last_child_ = c;
  ++nchildren_;
  child->add_waiter(*c);
}

void GroupState::on_child(Waiter* w, bool abandoned) noexcept {
  auto* c = static_cast<Child*>(w);
  c->group->child_done(c, abandoned);
}

void GroupState::child_done(Child* c, bool abandoned) noexcept {
  if (c->prev_child)
    c->prev_child->next_child = c->next_child;
  else
    children_ = c->next_child;
  if (c->next_child)
    c->next_child->prev_child = c->prev_child;
  else
    last_child_ = c->prev_child;
  --nchildren_;
  TaskBase* t = c->task;
  delete c;
  if (exit_waiter_ && nchildren_ == 0) {
    exit_waiter_->wake();
    exit_waiter_ = nullptr;
  }
  if (!abandoned && !t->cancelled()) {
    if (std::exception_ptr e = t->raw_exception()) {
      t->mark_retrieved();
      errors_.push_back(std::move(e));
      if (!aborting_ && !parent_cancel_requested_) {
        // Cancel whatever the parent runs in the group's body; __aexit__ will mark the
        // parent "not cancelled" again.
        try {
          abort();
          parent_cancel_requested_ = true;
          parent_->cancel({});
        } catch (...) {
          loop_->owner.call_exception_handler(
              {"TaskGroup could not cancel its tasks", std::current_exception(), {}});
        }
      }
    }
  }
  t->release();
}

void GroupState::abort() {
  aborting_ = true;
  for (Child* c = children_; c; c = c->next_child)
    if (!c->task->done()) c->task->cancel({});
}

GroupExit::~GroupExit() {
  if (g_->exit_waiter_ == task_) g_->exit_waiter_ = nullptr;
}

bool GroupExit::await_ready() {
  g_->exiting_ = true;
  if (body_error_) {
    if (body_cancelled_) propagate_cancel_ = body_error_;
    // The parent is being cancelled, or the body raised: cancel the children.
    if (!g_->aborting_) g_->abort();
  }
  return g_->nchildren_ == 0;
}

void GroupExit::await_suspend(std::coroutine_handle<> h) {
  task_ = &current_task_for_await();
  g_->exit_waiter_ = task_;
  task_->suspend(h, this);
}

bool GroupExit::hook(CancelHook* h) {
  // The parent is cancelled while it waits for the children: as asyncio, remember the
  // cancellation, cancel the children (unless already aborting) and keep waiting.
  auto* e = static_cast<GroupExit*>(h);
  if (!e->g_->aborting_) {
    e->propagate_cancel_ =
        std::make_exception_ptr(CancelledError(std::string(e->task_->cancel_message())));
    e->g_->abort();
  }
  return true;
}

void GroupExit::await_resume() {
  GroupState& g = *g_;
  if (task_ && task_->take_cancel() && !g.aborting_)
    propagate_cancel_ =
        std::make_exception_ptr(CancelledError(std::string(task_->cancel_message())));
  g.finished_ = true;
  TaskBase& parent = *g.parent_;
  if (g.parent_cancel_requested_) {
    // The group cancelled its parent itself: take that request back.
    if (parent.uncancel() == 0) propagate_cancel_ = nullptr;
  }
  if (propagate_cancel_ && g.errors_.empty()) std::rethrow_exception(propagate_cancel_);
  if (body_error_ && !body_cancelled_) g.errors_.push_back(body_error_);
  if (!g.errors_.empty()) {
    // Cancelled from outside too: keep the cancellation count stable.
    if (parent.cancelling()) {
      parent.uncancel();
      parent.cancel({});
    }
    std::vector<std::exception_ptr> errors = std::move(g.errors_);
    g.errors_.clear();
    throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors));
  }
}

}  // namespace detail
}  // namespace kettle
