#include "kettle/tasks.hpp"

namespace kettle::detail {

GatherBase::GatherBase(LoopCore& loop, std::size_t n, bool return_exceptions)
    : FutureCore(loop), children_(new Child[n]), n_(n), return_exceptions_(return_exceptions) {
  for (std::size_t i = 0; i < n; ++i)
    children_[i].gather = this;
}

GatherBase::~GatherBase() {
  for (std::size_t i = 0; i < n_; ++i)
    let_go(i);
}

void GatherBase::attach(std::size_t i, CoreRef<FutureCore> f) noexcept {
  Child& c = children_[i];
  c.future = f.detach();
  c.awaiter = this;
  if (!c.future->done()) {
    c.future->add_waiter(c);
    if (nwaiting_++ == 0) add_ref();  // released when the last waited-for child is done
  }
}

void GatherBase::start() noexcept {
  // As asyncio: the children already done are accounted for once all are attached.
  for (std::size_t i = 0; i < n_; ++i)
    if (children_[i].future && !children_[i].linked()) child_done(i);
  if (n_ == 0) settle_all();
}

void GatherBase::abort_setup() noexcept {
  for (std::size_t i = 0; i < n_; ++i)
    let_go(i);
  if (nwaiting_) {
    nwaiting_ = 0;
    release();
  }
}

void GatherBase::let_go(std::size_t i) noexcept {
  Child& c = children_[i];
  if (FutureCore* f = c.future) {
    c.future = nullptr;
    f->remove_waiter(c);
    f->release();
  }
}

void GatherBase::on_child(Waiter* w, bool abandoned) noexcept {
  auto* c = static_cast<Child*>(w);
  GatherBase* g = c->gather;
  if (!abandoned) g->child_done(static_cast<std::size_t>(c - g->children_.get()));
  g->waited_one();
}

void GatherBase::waited_one() noexcept {
  if (--nwaiting_ == 0) release();
}

void GatherBase::child_done(std::size_t i) noexcept {
  FutureCore& f = *children_[i].future;
  ++nfinished_;
  cancelled_child_last_ = f.cancelled();
  if (done()) {
    if (!f.cancelled()) f.mark_retrieved();
  } else if (!return_exceptions_ && f.cancelled()) {
    finish_exception(f.cancelled_error(), true);
  } else if (std::exception_ptr e = return_exceptions_ ? nullptr : f.raw_exception()) {
    f.mark_retrieved();
    finish_exception(std::move(e), false);
  } else {
    try {
      take(i, f);
    } catch (...) {
      finish_exception(std::current_exception(), false);
    }
  }
  std::exception_ptr cancelled_error;
  if (!done() && nfinished_ == n_ && cancel_requested_)
    cancelled_error = cancelled_child_last_
                          ? f.cancelled_error()
                          : std::make_exception_ptr(CancelledError(cancel_message_));
  let_go(i);
  if (!done() && nfinished_ == n_) {
    if (cancel_requested_)
      // The gather was cancelled: propagate that regardless of return_exceptions.
      finish_exception(std::move(cancelled_error), true);
    else
      settle_all();
  }
}

void GatherBase::settle_all() noexcept {
  try {
    collect();
    finish();
  } catch (...) {
    finish_exception(std::current_exception(), false);
  }
}

bool GatherBase::cancel(std::string_view msg) {
  if (done()) return false;
  bool taken = false;
  for (std::size_t i = 0; i < n_; ++i)
    if (FutureCore* f = children_[i].future; f && f->cancel(msg)) taken = true;
  if (taken) {
    cancel_requested_ = true;
    cancel_message_.assign(msg);
  }
  return taken;
}

}  // namespace kettle::detail
