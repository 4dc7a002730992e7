// Internal: shield, wait and as_completed (asyncio.tasks).
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <ranges>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kettle/detail/durations.hpp"
#include "kettle/detail/future_core.hpp"
#include "kettle/detail/task_state.hpp"
#include "kettle/detail/timer_heap.hpp"
#include "kettle/futures.hpp"

namespace kettle::detail {

[[noreturn]] void throw_timeout_error();

// A timeout in nanoseconds, clamped to [0, kNeverNs]; NaN is ValueError.
inline std::optional<std::int64_t> timeout_ns(std::optional<std::chrono::duration<double>> t,
                                              const char* what) {
  if (!t) return std::nullopt;
  std::int64_t ns = duration_ns(*t, what);
  return ns > 0 ? ns : 0;
}

// shield ---------------------------------------------------------------------------------

template <class T>
class ShieldState final : public FutureCore, private Waiter {
 public:
  ShieldState(LoopCore& loop, CoreRef<FutureCore> inner, bool owns_inner) noexcept
      : FutureCore(loop), Waiter(&on_inner), inner_(std::move(inner)), owns_inner_(owns_inner) {
    Waiter::awaiter = this;
  }
  ~ShieldState() override { inner_->remove_waiter(*this); }

  void start() noexcept {
    if (inner_->done())
      settle();
    else
      inner_->add_waiter(*this);
  }

  // Cancels the outer future only; the inner work goes on.
  bool cancel(std::string_view msg) override {
    if (done()) return false;
    inner_->remove_waiter(*this);
    finish_cancelled(std::make_exception_ptr(CancelledError(std::string(msg))));
    return true;
  }

  void* value_address() noexcept override {
    if constexpr (std::is_void_v<T>)
      return nullptr;
    else
      return &*value_;
  }

 private:
  std::exception_ptr& exception_slot() noexcept override { return exception_; }

  static void on_inner(Waiter* w, bool abandoned) noexcept {
    if (!abandoned) static_cast<ShieldState*>(w)->settle();
  }

  void settle() noexcept {
    FutureCore& in = *inner_;
    if (in.cancelled()) {
      finish_cancelled(in.cancelled_error());
    } else if (std::exception_ptr e = in.raw_exception()) {
      in.mark_retrieved();
      finish_exception(std::move(e), false);
    } else {
      try {
        if constexpr (!std::is_void_v<T>)
          value_.emplace(future_take<T>(&in, owns_inner_ && in.refs() <= 2));
        finish();
      } catch (...) {
        finish_exception(std::current_exception(), false);
      }
    }
  }

  CoreRef<FutureCore> inner_;
  std::exception_ptr exception_;
  struct Empty {};
  [[no_unique_address]] std::conditional_t<std::is_void_v<T>, Empty, std::optional<T>> value_;
  bool owns_inner_;
};

// What makes two awaitables the same future (asyncio puts them in a set): a Task's or a
// LoopFuture's state, a Future's shared state; null for anything else.
template <class A>
const void* future_identity(const A& a) noexcept {
  if constexpr (requires { a.state().get(); })
    return a.state().get();
  else if constexpr (requires {
                       { a.state() } -> std::convertible_to<const void*>;
                     })
    return a.state();
  else
    return nullptr;
}

// wait -----------------------------------------------------------------------------------

template <class A>
concept loop_future = requires(A& a) {
  { a.state() } -> std::convertible_to<FutureCore*>;
};
template <class A>
concept shared_future = requires(A& a) {
  { a.state().get() } -> std::convertible_to<SharedStateBase*>;
};

// The loop-local future that wait() watches for f: a Task's or LoopFuture's own, or one that
// follows a Future (settled on the loop when the Future is done).
template <class Fut>
CoreRef<FutureCore> wait_core(Fut& f) {
  if constexpr (shared_future<Fut>) {
    if (!f.state()) throw_empty_future("Future");
    return ForeignWatch::make(running_loop_core(), f.state());
  } else {
    FutureCore* c = f.state();
    if (!c) throw_empty_future("Task");
    c->add_ref();
    return CoreRef<FutureCore>(c);
  }
}

template <class Fut>
class [[nodiscard]] WaitAwaiter : private CancelHook, private Runnable {
 public:
  static constexpr const char* kettle_name = "kettle::wait()";
  WaitAwaiter(std::vector<Fut> futs, ReturnWhen rw, std::optional<std::int64_t> timeout_ns)
      : CancelHook{&hook}, futs_(std::move(futs)), rw_(rw), timeout_ns_(timeout_ns) {
    timer_.set_inline_target(this);
  }
  // Movable until awaited.
  WaitAwaiter(WaitAwaiter&& o) noexcept
      : CancelHook{&hook}, futs_(std::move(o.futs_)), rw_(o.rw_), timeout_ns_(o.timeout_ns_) {
    timer_.set_inline_target(this);
  }
  WaitAwaiter& operator=(const WaitAwaiter&) = delete;
  ~WaitAwaiter() { detach(); }

  bool await_ready() {
    if (futs_.empty()) throw ValueError("wait(): the set of tasks/futures is empty");
    cores_.reserve(futs_.size());
    std::size_t done = 0;
    for (Fut& f : futs_) {
      cores_.push_back(wait_core(f));
      FutureCore& c = *cores_.back();
      if (c.done()) {
        ++done;
        if (rw_ == FIRST_COMPLETED || (rw_ == FIRST_EXCEPTION && failed(c))) return true;
      }
    }
    remaining_ = futs_.size() - done;
    return remaining_ == 0 || (timeout_ns_ && *timeout_ns_ <= 0);
  }

  void await_suspend(std::coroutine_handle<> h) {
    task_ = &current_task_for_await();
    nodes_ = std::make_unique<Node[]>(futs_.size());
    for (std::size_t i = 0; i < futs_.size(); ++i) {
      FutureCore* c = cores_[i].get();
      if (c->loop() != task_->loop()) {
        detach();
        throw_foreign_loop();
      }
      nodes_[i].owner = this;
      nodes_[i].future = c;
      nodes_[i].awaiter = task_;
      if (!c->done()) c->add_waiter(nodes_[i]);
    }
    if (timeout_ns_) {
      timer_.when = now_ns() + *timeout_ns_;
      task_->loop()->timers.push(&timer_);
    }
    task_->suspend(h, this);
  }

  WaitResult<Fut> await_resume() {
    detach();
    if (task_ && (task_->take_cancel() | cancelled_)) task_->throw_cancelled();
    WaitResult<Fut> r;
    for (Fut& f : futs_)
      (f.done() ? r.done : r.pending).push_back(std::move(f));
    return r;
  }

 private:
  struct Node : Waiter {
    Node() noexcept : Waiter(&on_done) {}
    WaitAwaiter* owner = nullptr;
    FutureCore* future = nullptr;
  };

  static bool failed(FutureCore& c) noexcept { return !c.cancelled() && c.raw_exception(); }

  static void on_done(Waiter* w, bool abandoned) noexcept {
    if (abandoned) return;
    auto* n = static_cast<Node*>(w);
    WaitAwaiter* a = n->owner;
    --a->remaining_;
    if (a->remaining_ == 0 || a->rw_ == FIRST_COMPLETED ||
        (a->rw_ == FIRST_EXCEPTION && failed(*n->future)))
      a->wake_once();
  }

  void run() noexcept override { wake_once(); }  // the timeout

  void wake_once() noexcept {
    if (woken_) return;
    woken_ = true;
    detach();
    task_->wake();
  }

  void detach() noexcept {
    if (nodes_)
      for (std::size_t i = 0; i < futs_.size(); ++i)
        if (nodes_[i].future) nodes_[i].future->remove_waiter(nodes_[i]);
    if (timer_.armed()) task_->loop()->timers.remove(&timer_);
  }

  static bool hook(CancelHook* h) {
    auto* a = static_cast<WaitAwaiter*>(h);
    if (a->woken_) return false;  // already done waiting: the task throws when it runs
    a->cancelled_ = true;
    a->wake_once();
    return true;
  }

  std::vector<Fut> futs_;
  std::vector<CoreRef<FutureCore>> cores_;  // what each of futs_ is watched through
  std::unique_ptr<Node[]> nodes_;
  ReturnWhen rw_;
  std::optional<std::int64_t> timeout_ns_;
  TimerNode timer_;
  TaskBase* task_ = nullptr;
  std::size_t remaining_ = 0;
  bool woken_ = false;
  bool cancelled_ = false;
};

// as_completed ---------------------------------------------------------------------------

template <class T>
class AsCompletedState final : private Runnable {
 public:
  struct Next;

  AsCompletedState(LoopCore& loop, std::vector<CoreRef<FutureCore>> futs, bool owned,
                   std::optional<std::int64_t> timeout_ns)
      : loop_(&loop),
        futs_(std::move(futs)),
        nodes_(std::make_unique<Node[]>(futs_.size())),
        owned_(owned) {
    for (std::size_t i = 0; i < futs_.size(); ++i) {
      nodes_[i].owner = this;
      nodes_[i].future = futs_[i].get();
    }
    for (std::size_t i = 0; i < futs_.size(); ++i) {
      if (futs_[i]->done()) {
        done_.push_back(futs_[i].get());
      } else {
        futs_[i]->add_waiter(nodes_[i]);
        ++todo_;
      }
    }
    if (todo_ && timeout_ns) {
      timer_.set_inline_target(this);
      timer_.when = now_ns() + *timeout_ns;
      loop_->timers.push(&timer_);
    }
  }
  AsCompletedState(const AsCompletedState&) = delete;
  AsCompletedState& operator=(const AsCompletedState&) = delete;
  ~AsCompletedState() {
    if (last_awaiter_) last_awaiter_->remove_waiter(task_watch_);
    for (std::size_t i = 0; i < futs_.size(); ++i)
      futs_[i]->remove_waiter(nodes_[i]);
    if (timer_.armed()) loop_->timers.remove(&timer_);
  }

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }
  std::size_t size() const noexcept { return futs_.size(); }

  // One awaitable of the sequence.
  class Awaiter : private CancelHook {
   public:
    static constexpr const char* kettle_name = "kettle::as_completed()";
    explicit Awaiter(AsCompletedState* s) noexcept : CancelHook{&hook}, s_(s) { s_->add_ref(); }
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      s_->unwait(this);
      s_->release();
    }

    bool await_ready() {
      if (s_->taken_ == s_->futs_.size())
        throw RuntimeError("as_completed(): every result has been taken already");
      if (s_->done_.empty()) return false;
      take_now();
      return true;
    }
    void await_suspend(std::coroutine_handle<> h) {
      task_ = &current_task_for_await();
      s_->awaited_by(task_);
      s_->waiting_.push_back(this);
      task_->suspend(h, this);
    }
    T await_resume() {
      if (task_ && (task_->take_cancel() | cancelled_)) {
        if (item_) {  // handed an item, then cancelled: it goes back for the next one
          s_->done_.push_front(*item_);
          --s_->taken_;
        }
        task_->throw_cancelled();
      }
      FutureCore* f = *item_;
      if (!f) throw_timeout_error();
      return future_take<T>(f, s_->owned_);
    }

   private:
    friend class AsCompletedState;
    void take_now() {
      item_ = s_->done_.front();
      s_->done_.pop_front();
      ++s_->taken_;
    }
    static bool hook(CancelHook* h) {
      auto* a = static_cast<Awaiter*>(h);
      if (a->item_ || a->cancelled_) return false;  // handed a result, or cancelled already
      a->s_->unwait(a);
      a->cancelled_ = true;
      a->task_->wake();
      return true;
    }

    AsCompletedState* s_;
    TaskBase* task_ = nullptr;
    std::optional<FutureCore*> item_;  // a null item means "timed out"
    bool cancelled_ = false;
  };

 private:
  struct Node : Waiter {
    Node() noexcept : Waiter(&on_done) {}
    AsCompletedState* owner = nullptr;
    FutureCore* future = nullptr;
  };

  static void on_done(Waiter* w, bool abandoned) noexcept {
    if (abandoned) return;
    auto* n = static_cast<Node*>(w);
    AsCompletedState* s = n->owner;
    s->done_.push_back(n->future);
    if (--s->todo_ == 0 && s->timer_.armed()) s->loop_->timers.remove(&s->timer_);
    s->hand_out();
  }

  void run() noexcept override {  // the timeout: what is left times out
    for (std::size_t i = 0; i < futs_.size(); ++i) {
      if (nodes_[i].linked()) {
        futs_[i]->remove_waiter(nodes_[i]);
        done_.push_back(nullptr);
      }
    }
    todo_ = 0;
    hand_out();
  }

  void hand_out() noexcept {
    while (!waiting_.empty() && !done_.empty()) {
      Awaiter* a = waiting_.front();
      waiting_.pop_front();
      a->take_now();
      a->task_->wake();
    }
  }

  // The call graph: the futures left are awaited by the task that last waited for one of
  // them, until that task finishes (task_watch_ tells: the nodes never point at a freed task).
  // Each change costs a pass over the nodes: once for a loop that one task runs.
  void awaited_by(TaskBase* t) noexcept {
    if (t == last_awaiter_) return;
    if (last_awaiter_) last_awaiter_->remove_waiter(task_watch_);
    last_awaiter_ = t;
    for (std::size_t i = 0; i < futs_.size(); ++i)
      nodes_[i].awaiter = t;
    if (t) t->add_waiter(task_watch_);
  }
  struct TaskWatch : Waiter {
    explicit TaskWatch(AsCompletedState* s) noexcept : Waiter(&on_awaiter_done), owner(s) {}
    AsCompletedState* owner;
  };
  static void on_awaiter_done(Waiter* w, bool) noexcept {
    static_cast<TaskWatch*>(w)->owner->awaited_by(nullptr);
  }

  void unwait(Awaiter* a) noexcept {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
      if (*it == a) {
        waiting_.erase(it);
        return;
      }
  }

  LoopCore* loop_;
  std::vector<CoreRef<FutureCore>> futs_;
  std::unique_ptr<Node[]> nodes_;
  std::deque<FutureCore*> done_;
  std::deque<Awaiter*> waiting_;
  TimerNode timer_;
  TaskBase* last_awaiter_ = nullptr;
  TaskWatch task_watch_{this};
  std::size_t todo_ = 0;
  std::size_t taken_ = 0;
  std::uint32_t refs_ = 1;
  bool owned_;

 public:
  std::size_t yielded = 0;  // steps the iterators handed out
};

}  // namespace kettle::detail

namespace kettle {

template <class T>
class [[nodiscard]] AsCompleted {
  using State = detail::AsCompletedState<T>;

 public:
  // One step of the sequence: co_await it for the next result in completion order.
  class Next {
   public:
    typename State::Awaiter operator co_await() const noexcept {
      return typename State::Awaiter(s_);
    }
    explicit Next(State* s) noexcept : s_(s) {}

   private:
    State* s_;  // kept alive by the AsCompleted being iterated
  };

  // An input iterator, as Python's: each dereference hands out the next step, and an
  // iteration left early (break) resumes where it stopped when iterated again.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Next;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Next;
    iterator() = default;
    iterator(State* s, bool sentinel) noexcept : s_(s), sentinel_(sentinel) {}
    Next operator*() const noexcept {
      ++s_->yielded;
      return Next(s_);
    }
    iterator& operator++() noexcept { return *this; }
    iterator operator++(int) noexcept { return *this; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.at_end() == b.at_end();
    }

   private:
    bool at_end() const noexcept { return sentinel_ || !s_ || s_->yielded >= s_->size(); }
    State* s_ = nullptr;
    bool sentinel_ = false;
  };

  explicit AsCompleted(State* adopted) noexcept : s_(adopted) {}
  AsCompleted(AsCompleted&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  AsCompleted& operator=(AsCompleted&&) = delete;
  ~AsCompleted() {
    if (s_) s_->release();
  }

  iterator begin() const noexcept { return iterator(s_, false); }
  iterator end() const noexcept { return iterator(s_, true); }
  // How many results there are (duplicates in the input count once).
  std::size_t size() const noexcept { return s_->size(); }
  // The next result in completion order (the same as awaiting the next step).
  typename State::Awaiter next() const noexcept { return typename State::Awaiter(s_); }

 private:
  State* s_;
};

template <class Aw>
auto shield(Aw&& aw) {
  detail::LoopCore& loop = detail::running_loop_core();
  using T = detail::await_value_t<Aw>;
  auto* s = new detail::ShieldState<T>(loop, detail::ensure_future(loop, std::forward<Aw>(aw)),
                                       detail::gather_makes_child<Aw>);
  LoopFuture<T> f(s);
  s->start();
  return f;
}

template <class Range>
auto wait(Range&& futures, ReturnWhen return_when,
          std::optional<std::chrono::duration<double>> timeout) {
  using Fut = std::remove_cvref_t<std::ranges::range_reference_t<Range>>;
  static_assert(detail::loop_future<Fut> || detail::shared_future<Fut>,
                "kettle::wait takes Tasks, LoopFutures or Futures; make Coros tasks first "
                "(kettle::create_task), as asyncio.wait requires");
  std::optional<std::int64_t> ns = detail::timeout_ns(timeout, "wait()");
  std::vector<Fut> futs;
  std::unordered_set<const void*> seen;  // a future given twice is waited for once
  for (auto&& f : futures)
    if (seen.insert(detail::future_identity(f)).second) futs.push_back(f);
  return detail::WaitAwaiter<Fut>(std::move(futs), return_when, ns);
}

template <class Range>
auto as_completed(Range&& aws, std::optional<std::chrono::duration<double>> timeout) {
  std::optional<std::int64_t> ns = detail::timeout_ns(timeout, "as_completed()");
  detail::LoopCore& loop = detail::running_loop_core();
  using Elem = std::ranges::range_reference_t<Range>;
  using T = detail::await_value_t<Elem>;
  constexpr bool consume = !std::is_copy_constructible_v<std::remove_cvref_t<Elem>>;
  std::vector<detail::CoreRef<detail::FutureCore>> futs;
  std::unordered_set<const void*> seen;  // a future given twice gives one result, as asyncio's
  for (auto&& a : aws) {
    if constexpr (consume) {
      futs.push_back(detail::ensure_future(loop, std::move(a)));
    } else {
      const void* id = detail::future_identity(a);
      if (id && !seen.insert(id).second) continue;
      futs.push_back(detail::ensure_future(loop, a));
    }
  }
  return AsCompleted<T>(new detail::AsCompletedState<T>(
      loop, std::move(futs), consume && detail::gather_makes_child<Elem>, ns));
}

}  // namespace kettle
