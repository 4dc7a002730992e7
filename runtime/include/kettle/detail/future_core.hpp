// Internal: the loop-local future that Task and GatheringFuture are built on
// (asyncio.Future). Reference-counted (not atomically: it belongs to its loop's thread),
// completed once, awaited by any number of waiters.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kettle/detail/loop_core.hpp"
#include "kettle/detail/runnable.hpp"
#include "kettle/exceptions.hpp"

namespace kettle::detail {

class FutureCore;

// An intrusive entry in a future's list of waiters. notify(w, false) is called when the
// future completes; it must not resume a coroutine inline, only schedule one (or complete
// another future), so that completion never nests unbounded work on the stack.
// notify(w, true) is called instead when the loop closes with the future still pending.
struct Waiter {
  using Fn = void (*)(Waiter*, bool abandoned) noexcept;
  explicit Waiter(Fn fn) noexcept : notify(fn) {}
  Waiter* next = nullptr;  // circular list; null when not linked
  Fn notify;
  // On whose behalf it waits (a task, a gather, a shield): the call graph's "awaited by".
  FutureCore* awaiter = nullptr;
  bool linked() const noexcept { return next != nullptr; }
};

// What an awaiter registers with its task while suspended, so that cancel() can abort
// the wait. cancel() returns true if the request was taken (asyncio: fut_waiter.cancel()
// returned True); it must not resume anything inline. It may be called again for the same
// wait (a task cancelled twice): it must then not wake the task a second time.
struct CancelHook {
  bool (*cancel)(CancelHook*);
};

class FutureCore : public Runnable {
 public:
  enum class State : std::uint8_t { pending, finished, cancelled };

  FutureCore(const FutureCore&) = delete;
  FutureCore& operator=(const FutureCore&) = delete;

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) destroy();
  }
  std::uint32_t refs() const noexcept { return refs_; }

  bool done() const noexcept { return state_ != State::pending; }
  bool cancelled() const noexcept { return state_ == State::cancelled; }

  // asyncio's cancel(msg): true if the request was taken.
  virtual bool cancel(std::string_view msg) = 0;

  // The stored exception (null when finished with a value). InvalidStateError while
  // pending; CancelledError when cancelled. Marks the exception as retrieved.
  std::exception_ptr exception();
  // Throws what result() must throw (pending, cancelled, failed); returns if a value is there.
  void check_result();
  // Address of the stored value (null for void); valid once finished without exception.
  virtual void* value_address() noexcept = 0;

  // Waiters, notified in the order they were added. Removing an unlinked one is a no-op.
  void add_waiter(Waiter& w) noexcept;
  void remove_waiter(Waiter& w) noexcept;
  // The call graph: fn(Waiter&) for each waiter, oldest first.
  template <class F>
  void for_each_waiter(F fn) const {
    if (!tail_) return;
    Waiter* w = tail_->next;
    for (;;) {
      fn(*w);
      if (w == tail_) break;
      w = w->next;
    }
  }

  // Done callbacks (asyncio: add_done_callback). Run through the loop, never inline, in
  // the order they and the awaiting tasks registered: a callback added before a task
  // started awaiting has run when that task resumes.
  void add_done_callback(std::function<void()> fn);

  LoopCore* loop() const noexcept { return anchor_->loop; }
  std::exception_ptr raw_exception() noexcept { return exception_slot(); }
  void mark_retrieved() noexcept { retrieved_ = true; }
  // The CancelledError to throw for a cancelled future.
  std::exception_ptr cancelled_error() noexcept;

  // What the exception handler shows for this future: the task name, or empty.
  virtual std::string describe_for_handler() const { return {}; }
  // Where it was created, as "… created at (most recent call last):" lines, or empty.
  virtual std::string source_traceback() const { return {}; }
  virtual const char* never_retrieved_message() const noexcept {
    return "Future exception was never retrieved";
  }

  // Never scheduled unless a subclass says otherwise (tasks do).
  void run() noexcept override {}

 protected:
  explicit FutureCore(LoopCore& loop) noexcept : anchor_(loop.anchor) { anchor_->add_ref(); }
  virtual ~FutureCore();  // drops the done callbacks that never ran

  // Where the failure (or, when cancelled, the CancelledError) is kept.
  virtual std::exception_ptr& exception_slot() noexcept = 0;
  // Frees this object once the last reference is gone.
  virtual void dispose() noexcept { delete this; }

  // Completion. The subclass stores the value (or the exception) before calling these.
  void finish() noexcept { complete(State::finished); }
  void finish_exception(std::exception_ptr e, bool is_cancelled_error) noexcept;
  void finish_cancelled(std::exception_ptr cancelled_error) noexcept;

  // Tells the waiters the loop is closing and drops the callbacks (the loop is closing).
  void abandon() noexcept;

 private:
  void destroy() noexcept;
  void complete(State s) noexcept;
  // Takes every waiter out, oldest first, handing each to f (which may free it).
  template <class F>
  void take_waiters(F f) noexcept {
    while (Waiter* tail = tail_) {
      Waiter* w = tail->next;
      if (w == tail)
        tail_ = nullptr;
      else
        tail->next = w->next;
      w->next = nullptr;
      f(w);
    }
  }
  void report_if_never_retrieved() noexcept;

  LoopAnchor* anchor_;
  Waiter* tail_ = nullptr;

 protected:
  std::uint32_t refs_ = 1;
  State state_ = State::pending;
  bool retrieved_ = false;
  bool exc_is_cancel_ = false;  // a CancelledError set as exception (gather), not reported
};

// A counted reference to a FutureCore (or a subclass).
template <class Core>
class CoreRef {
 public:
  CoreRef() noexcept = default;
  explicit CoreRef(Core* c) noexcept : c_(c) {}  // adopts a reference
  CoreRef(const CoreRef& o) noexcept : c_(o.c_) {
    if (c_) c_->add_ref();
  }
  CoreRef(CoreRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  CoreRef& operator=(CoreRef o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~CoreRef() {
    if (c_) c_->release();
  }
  Core* get() const noexcept { return c_; }
  Core* detach() noexcept { return std::exchange(c_, nullptr); }  // hands the reference over
  Core* operator->() const noexcept { return c_; }
  Core& operator*() const noexcept { return *c_; }
  explicit operator bool() const noexcept { return c_ != nullptr; }

 private:
  Core* c_ = nullptr;
};

// InvalidStateError for an empty (default-constructed or moved-from) handle.
[[noreturn]] void throw_empty_future(const char* what);

template <class T>
decltype(auto) future_ref(FutureCore* c) {
  c->check_result();
  if constexpr (std::is_void_v<T>)
    return;
  else
    return static_cast<T&>(*static_cast<T*>(c->value_address()));
}

// The value: moved out when `steal` (or when T cannot be copied), else copied.
template <class T>
T future_take(FutureCore* c, bool steal) {
  c->check_result();
  if constexpr (!std::is_void_v<T>) {
    T& v = *static_cast<T*>(c->value_address());
    if constexpr (std::is_copy_constructible_v<T>) {
      if (!steal) return v;
    }
    return std::move(v);
  }
}

}  // namespace kettle::detail
