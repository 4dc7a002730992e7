// Internal: the waiters of locks and queues. Each waiter is asyncio's per-waiter future
// made intrusive: it lives in the awaiter, has the states pending / done / cancelled, and
// stays in its primitive's FIFO until the primitive's own logic takes it out, exactly where
// asyncio's code removes its future. That is what keeps the corner cases (a waiter cancelled
// at the moment it is woken, a wake-up that must pass to the next in line) as in CPython.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "kettle/detail/future_core.hpp"
#include "kettle/detail/task_state.hpp"

namespace kettle::detail {

class WaitList;

class WaitNode : public CancelHook {
 public:
  enum class State : std::uint8_t { idle, pending, done, cancelled };

  WaitNode() noexcept : CancelHook{&hook} {}
  // An awaiter is moved only before it is awaited (a combinator taking it by value), when
  // its node is idle and in no list: there is nothing to carry over.
  WaitNode(WaitNode&&) noexcept : CancelHook{&hook} {}
  WaitNode& operator=(const WaitNode&) = delete;
  inline ~WaitNode();

  State state() const noexcept { return state_; }
  bool done() const noexcept { return state_ == State::done || state_ == State::cancelled; }

  // fut.set_result(): wakes the waiting task. False if already done or cancelled.
  bool set_done() {
    if (state_ != State::pending) return false;
    state_ = State::done;
    task_->wake();
    return true;
  }

  // Suspends the current task on this node (in await_suspend).
  void suspend(std::coroutine_handle<> h) {
    task_ = &current_task_for_await();
    state_ = State::pending;
    task_->suspend(h, this);
  }

  // After the task resumed: whether `await fut` must raise CancelledError here.
  bool resumed_cancelled() noexcept {
    resumed_ = true;
    return task_->take_cancel() | (state_ == State::cancelled);
  }
  // Woken (handed the lock, a unit, an item's turn), but the task never resumed to use it:
  // its frame is being destroyed (the loop closed). The awaiter passes the wake-up on.
  bool woken_unclaimed() const noexcept { return state_ == State::done && !resumed_; }
  [[noreturn]] void throw_cancelled() const { task_->throw_cancelled(); }

 private:
  friend class WaitList;
  // fut.cancel() when the awaiting task is cancelled: true if it was still pending.
  static bool hook(CancelHook* h) {
    auto* n = static_cast<WaitNode*>(h);
    if (n->state_ != State::pending) return false;
    n->state_ = State::cancelled;
    n->task_->wake();
    return true;
  }

  WaitNode* prev_ = nullptr;
  WaitNode* next_ = nullptr;
  WaitList* list_ = nullptr;
  TaskBase* task_ = nullptr;
  State state_ = State::idle;
  bool resumed_ = false;
};

// A FIFO of waiters (asyncio: collections.deque of futures).
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList() {
    while (head_)
      remove(*head_);
  }

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  WaitNode* front() const noexcept { return head_; }
  static WaitNode* next(const WaitNode* n) noexcept { return n->next_; }

  void push_back(WaitNode& n) noexcept {
    n.list_ = this;
    n.prev_ = tail_;
    n.next_ = nullptr;
    if (tail_)
      tail_->next_ = &n;
    else
      head_ = &n;
    tail_ = &n;
    ++size_;
  }

  // Removing a node that is not in this list is a no-op (asyncio: remove() in a try).
  void remove(WaitNode& n) noexcept {
    if (n.list_ != this) return;
    if (n.prev_)
      n.prev_->next_ = n.next_;
    else
      head_ = n.next_;
    if (n.next_)
      n.next_->prev_ = n.prev_;
    else
      tail_ = n.prev_;
    n.prev_ = n.next_ = nullptr;
    n.list_ = nullptr;
    --size_;
  }

  // Whether every waiter is cancelled (true for an empty list).
  bool all_cancelled() const noexcept {
    for (WaitNode* n = head_; n; n = n->next_)
      if (n->state_ != WaitNode::State::cancelled) return false;
    return true;
  }

  // Pops every waiter and wakes it (those already done stay as they are).
  void wake_all() {
    while (WaitNode* n = head_) {
      remove(*n);
      n->set_done();
    }
  }

  // Queue._wakeup_next: pops waiters until one that is not done, and wakes it.
  bool pop_and_wake_next() {
    while (WaitNode* n = head_) {
      remove(*n);
      if (n->set_done()) return true;
    }
    return false;
  }

 private:
  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
  std::size_t size_ = 0;
};

inline WaitNode::~WaitNode() {
  if (list_) list_->remove(*this);
}

// asyncio's _LoopBoundMixin, and kettle's foreign-thread check: a primitive is bound to
// the loop that first awaits one of its methods (or, for a stream, the loop that made it),
// and an await on another loop raises RuntimeError. Locks, queues and streams are not
// thread-safe, as in asyncio: an operation that needs no loop (a state change) raises
// RuntimeError on any other thread than the bound loop's while that loop exists; on the
// thread that ran it, it is allowed while the loop does not run (draining a queue between
// run_until_complete calls), and anywhere once the loop is gone (after kettle::run).
class LoopBound {
 protected:
  void check_loop(const char* what) {
    LoopCore* l = tls_loop;
    if (l && l->id == loop_id_) [[likely]]
      return;
    bind_or_throw(l, what);
  }
  void check_thread(const char* what) {
    if (!loop_id_) return;
    LoopCore* l = tls_loop;
    if (!l || l->id != loop_id_) [[unlikely]]
      refuse_unless_free(what);
  }
  void bind_to(const LoopCore& l) noexcept { loop_id_ = l.id; }

 private:
  void bind_or_throw(LoopCore* l, const char* what);
  void refuse_unless_free(const char* what) const;
  std::uint64_t loop_id_ = 0;  // 0: not bound yet
};

}  // namespace kettle::detail
