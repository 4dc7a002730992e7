/// @file
/// kettle/coro.hpp — the lazy coroutine type, `async def f() -> T`.
///
/// @code
/// kettle::Coro<int> answer() { co_return 42; }
/// kettle::Coro<> main_() { int x = co_await answer(); ... }
/// @endcode
///
/// A Coro does nothing until it is awaited. `co_await coro` runs it inside the awaiting
/// task, with no scheduling cost; its exception propagates to the awaiter. To run it
/// concurrently, make it a task: kettle::create_task(answer()). A Coro that is destroyed
/// without ever being awaited never runs, and is reported as Python does ("coroutine
/// 'answer' was never awaited", to the running loop's exception handler, else to stderr),
/// with where it was created. A Coro can be awaited once; awaiting it again raises
/// RuntimeError, as Python's "cannot reuse already awaited coroutine".
///
/// Every `co_await` inside a Coro records where it happened (one store of the address,
/// resolved to file and line only when a call graph is printed: kettle/graph.hpp).
///
/// T may be void, a value type or a move-only type; not a reference (return a pointer or
/// std::reference_wrapper instead).
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "kettle/detail/frame_allocator.hpp"
#include "kettle/exceptions.hpp"

namespace kettle {

namespace detail {
template <class T>
class CoroPromise;
struct CoroAccess;
}  // namespace detail

/// A lazy coroutine that returns T: Python's `async def f() -> T`. It runs only when
/// awaited, inside the awaiting task; create_task() makes it a task of its own.
template <class T = void>
class [[nodiscard]] Coro {
  static_assert(!std::is_reference_v<T>,
                "kettle::Coro<T&> is not supported: return a pointer or std::reference_wrapper");

 public:
  /// The coroutine's promise type (what makes Coro a coroutine return type).
  using promise_type = detail::CoroPromise<T>;
  /// The coroutine's result type.
  using value_type = T;

  /// An empty Coro: valid() is false.
  Coro() noexcept = default;
  /// Takes o's coroutine over; o becomes empty.
  Coro(Coro&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  /// Destroys this Coro's coroutine, if any, and takes o's over; o becomes empty.
  Coro& operator=(Coro&& o) noexcept {
    if (this != &o) {
      if (h_) destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  /// Destroys the coroutine's frame, if any (a Coro never awaited never runs, and is
  /// reported: "coroutine '…' was never awaited").
  ~Coro() {
    if (h_) destroy();
  }

  ///@{
  /// False for a default-constructed or moved-from Coro.
  bool valid() const noexcept { return bool(h_); }
  explicit operator bool() const noexcept { return valid(); }
  ///@}

  class Awaiter;
  ///@{
  /// `co_await coro` runs the coroutine inside the awaiting task and gives its value or
  /// rethrows its exception; RuntimeError if it was awaited before or the Coro is empty.
  Awaiter operator co_await() & noexcept { return Awaiter(h_, nullptr); }
  Awaiter operator co_await() && noexcept { return Awaiter(h_, nullptr); }
  ///@}

 private:
  friend struct detail::CoroAccess;
  friend class detail::CoroPromise<T>;
  using handle = std::coroutine_handle<promise_type>;
  explicit Coro(handle h) noexcept : h_(h) {}
  handle release() noexcept { return std::exchange(h_, {}); }
  void destroy() noexcept;

  handle h_;
};

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

// How a Coro was started. Awaiting a Coro resumes it from inside await_suspend; if it
// finishes before suspending (the common case for short helpers), the awaiter simply does
// not suspend. So a loop of a million synchronous `co_await f()` never nests frames on
// the machine stack, even at -O0 where symmetric transfer is not a tail call.
enum class CoroStart : std::uint8_t { fresh, starting, suspended, finished_inline, finished };

// A task keeps its state inside the promise of its root coroutine, so that a task costs
// one allocation, not two. Every Coro frame reserves the space; only a task root uses it.
inline constexpr std::size_t kTaskStateSize = 88;

// The address of the instruction that reads it: inlined into a coroutine's body, where in
// that body it is. One instruction; resolved to a file and line only when printed.
[[gnu::always_inline]] inline const void* here() noexcept {
  const void* pc;
#if defined(__x86_64__)
  asm volatile("lea 0(%%rip), %0" : "=r"(pc));
#elif defined(__aarch64__)
  asm volatile("adr %0, ." : "=r"(pc));
#else
  pc = nullptr;
#endif
  return pc;
}

// What a coroutine is suspended in, for call graphs: an awaitable's `kettle_name` (a
// static member naming it as a user would, e.g. "kettle::sleep()") or its type.
struct AwaitedInfo {
  const char* name;
  const std::type_info* type;
};
template <class A>
constexpr const char* kettle_name_of() noexcept {
  if constexpr (requires { A::kettle_name; })
    return A::kettle_name;
  else
    return nullptr;
}
template <class A>
inline constexpr AwaitedInfo kAwaitedInfo{kettle_name_of<A>(), &typeid(A)};
// What a coroutine that awaits a Coro records (the Coro's own frame tells the rest).
inline constexpr AwaitedInfo kAwaitedCoro{"a Coro", nullptr};

// An awaiter used in place (see CoroPromiseBase::await_transform).
template <class A>
struct AwaiterRef {
  A& a;
  bool await_ready() { return a.await_ready(); }
  template <class H>
  decltype(auto) await_suspend(H h) {
    return a.await_suspend(h);
  }
  decltype(auto) await_resume() { return a.await_resume(); }
};

// Lets tasks take a Coro's coroutine over.
struct CoroAccess {
  template <class T>
  static auto handle(Coro<T>& c) noexcept {
    return c.h_;
  }
  template <class T>
  static auto release(Coro<T>& c) noexcept {
    return c.release();
  }
  // Destroys a Coro that will not run because an error is raised instead (Python's
  // coro.close()): not reported as never awaited.
  template <class T>
  static void discard(Coro<T>& c) noexcept {
    if (auto h = c.release()) h.destroy();
  }
};

[[gnu::always_inline]] inline const void* creation_site() noexcept {
#if defined(__clang__) && defined(__OPTIMIZE__)
  return here();
#else
  return __builtin_return_address(0);
#endif
}

// A Coro's coroutine was destroyed before it ever ran.
// `created_at`: the promise's pc_ from its creation.
void report_never_awaited(const void* frame, const void* created_at) noexcept;

class CoroPromiseBase {
 public:
  // The creation site, in the caller: g++ keeps a coroutine's ramp out of line, so its
  // return address; clang inlines the ramp into the caller, so where it runs.
  [[gnu::always_inline]] CoroPromiseBase() noexcept : pc_(creation_site()) {}
  CoroPromiseBase(const CoroPromiseBase&) = delete;
  CoroPromiseBase& operator=(const CoroPromiseBase&) = delete;

  std::suspend_always initial_suspend() const noexcept { return {}; }

  // Frames come from this thread's free lists (frame_allocator.hpp).
  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

  // Every co_await records where it is and what it awaits, for call graphs (graph.hpp).
  // The awaitable is not moved: an awaiter is used through a reference (g++ 12 would copy
  // one returned as A&&), and an awaitable with operator co_await gives its awaiter.
  template <class A>
  [[gnu::always_inline]] decltype(auto) await_transform(A&& a) {
    pc_ = here();
    if constexpr (requires { static_cast<A&&>(a).operator co_await(); }) {
      using Awaiter = std::remove_cvref_t<decltype(static_cast<A&&>(a).operator co_await())>;
      // Named after the awaitable if it has a name, else after its awaiter (a Task's).
      if constexpr (kettle_name_of<std::remove_cvref_t<A>>() != nullptr)
        set_awaiting(&kAwaitedInfo<std::remove_cvref_t<A>>);
      else
        set_awaiting(&kAwaitedInfo<Awaiter>);
      return static_cast<A&&>(a).operator co_await();
    } else if constexpr (requires { operator co_await(static_cast<A&&>(a)); }) {
      set_awaiting(&kAwaitedInfo<std::remove_cvref_t<A>>);
      return operator co_await(static_cast<A&&>(a));
    } else {
      set_awaiting(&kAwaitedInfo<std::remove_cvref_t<A>>);
      return AwaiterRef<std::remove_reference_t<A>>{a};
    }
  }
  // A Coro awaited from a Coro also links the two, so that a task's chain can be walked.
  template <class U>
  [[gnu::always_inline]] typename Coro<U>::Awaiter await_transform(Coro<U>& c) noexcept {
    pc_ = here();
    set_awaiting(&kAwaitedCoro);
    return typename Coro<U>::Awaiter(CoroAccess::handle(c), this);
  }
  template <class U>
  [[gnu::always_inline]] typename Coro<U>::Awaiter await_transform(Coro<U>&& c) noexcept {
    pc_ = here();
    set_awaiting(&kAwaitedCoro);
    return typename Coro<U>::Awaiter(CoroAccess::handle(c), this);
  }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      CoroPromiseBase& p = h.promise();
      if (p.start_ == CoroStart::starting) {
        p.start_ = CoroStart::finished_inline;
        return std::noop_coroutine();  // back into the awaiter's await_suspend
      }
      p.start_ = CoroStart::finished;
      return p.continuation_ ? p.continuation_ : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() const noexcept { return {}; }

  void unhandled_exception() noexcept;

  // The first member, so that a task state placed here finds its promise (see TaskBase).
  alignas(8) unsigned char task_state_[kTaskStateSize];
  std::exception_ptr exception_;
  std::coroutine_handle<> continuation_;
  // Where the coroutine is: its creation site until its first co_await, then the address
  // of its latest co_await.
  const void* pc_;
  // What that co_await awaits: 0 before the first one; an AwaitedInfo*; or, while the
  // coroutine is suspended in a Coro, that Coro's promise with the low bit set.
  std::uintptr_t awaiting_ = 0;

  const AwaitedInfo* awaited() const noexcept {
    return awaiting_ & 1 ? &kAwaitedCoro : reinterpret_cast<const AwaitedInfo*>(awaiting_);
  }
  CoroPromiseBase* child() const noexcept {
    return awaiting_ & 1 ? reinterpret_cast<CoroPromiseBase*>(awaiting_ - 1) : nullptr;
  }
  void set_awaiting(const AwaitedInfo* info) noexcept {
    awaiting_ = reinterpret_cast<std::uintptr_t>(info);
  }
  void set_child(CoroPromiseBase* child) noexcept {
    awaiting_ = reinterpret_cast<std::uintptr_t>(child) | 1;
  }
  CoroStart start_ = CoroStart::fresh;
  bool cancelled_ = false;  // exception_ holds a CancelledError
};

template <class T>
class CoroPromise : public CoroPromiseBase {
 public:
  // Inlined into the coroutine's ramp even at -O0, so that CoroPromiseBase's creation site
  // is the ramp's return address.
  [[gnu::always_inline]] CoroPromise() noexcept {}
  Coro<T> get_return_object() noexcept {
    return Coro<T>(std::coroutine_handle<CoroPromise>::from_promise(*this));
  }
  template <class U = T>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(v));
  }
  T take() { return std::move(*value_); }

  std::optional<T> value_;
};

template <>
class CoroPromise<void> : public CoroPromiseBase {
 public:
  [[gnu::always_inline]] CoroPromise() noexcept {}
  Coro<void> get_return_object() noexcept {
    return Coro<void>(std::coroutine_handle<CoroPromise>::from_promise(*this));
  }
  void return_void() const noexcept {}
  void take() const noexcept {}
};

[[noreturn]] void throw_coro_reused();

}  // namespace detail

/// What `co_await coro` returns: starts the coroutine inside the awaiting task and gives
/// its result. A Coro is awaited once only.
template <class T>
class Coro<T>::Awaiter {
 public:
  /// An awaiter of coroutine h, awaited from the Coro whose promise is `parent` (null when
  /// awaited from another kind of coroutine).
  Awaiter(handle h, detail::CoroPromiseBase* parent) noexcept : h_(h), parent_(parent) {}

  /// False; RuntimeError if the coroutine was awaited before (or the Coro is empty).
  bool await_ready() const {
    if (!h_ || h_.promise().start_ != detail::CoroStart::fresh) detail::throw_coro_reused();
    return false;
  }

  /// Runs the coroutine, with `parent` to resume when it finishes; false (do not suspend)
  /// if it finished without suspending.
  bool await_suspend(std::coroutine_handle<> parent) noexcept {
    promise_type& p = h_.promise();
    p.continuation_ = parent;
    p.start_ = detail::CoroStart::starting;
    if (parent_) parent_->set_child(&p);
    h_.resume();
    if (p.start_ == detail::CoroStart::finished_inline) return false;
    p.start_ = detail::CoroStart::suspended;
    return true;
  }

  /// The coroutine's value, or rethrows its exception.
  T await_resume() {
    promise_type& p = h_.promise();
    assert(p.start_ == detail::CoroStart::finished ||
           p.start_ == detail::CoroStart::finished_inline);
    if (parent_) parent_->set_awaiting(&detail::kAwaitedCoro);
    if (p.exception_) std::rethrow_exception(p.exception_);
    return p.take();
  }

 private:
  handle h_;
  detail::CoroPromiseBase* parent_;
};

template <class T>
void Coro<T>::destroy() noexcept {
  if (h_.promise().start_ == detail::CoroStart::fresh) [[unlikely]]
    detail::report_never_awaited(h_.address(), h_.promise().pc_);
  h_.destroy();
}

}  // namespace kettle
