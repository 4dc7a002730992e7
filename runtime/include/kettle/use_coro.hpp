/// @file
/// kettle/use_coro.hpp — await any Asio operation from a kettle task.
///
/// @code
/// asio::steady_timer timer(kettle::get_running_loop().io_context(), 1s);
/// co_await timer.async_wait(kettle::use_coro);
/// std::size_t n = co_await socket.async_read_some(asio::buffer(buf), kettle::use_coro);
/// @endcode
///
/// The operation starts when it is awaited, on the awaiting task's loop (I/O objects must
/// use that loop's io_context). An error_code first argument becomes std::system_error
/// when set; the other results are returned (none: void; one: the value; more: a tuple).
///
/// Cancellation: cancelling the task cancels the operation through an
/// asio::cancellation_signal (terminal cancellation): the task sees CancelledError. If the
/// operation had already succeeded when the cancellation arrived, its result is returned and
/// the CancelledError is raised at the task's next suspension point instead: neither the
/// result nor the cancellation is lost.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <atomic>
#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include <asio/async_result.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>

#include "kettle/detail/task_state.hpp"
#include "kettle/exceptions.hpp"

namespace kettle {

/// The type of use_coro: an Asio completion token.
struct use_coro_t {
  /// The token.
  constexpr use_coro_t() noexcept = default;
};
/// The completion token that makes an Asio operation awaitable from a kettle task:
/// `co_await timer.async_wait(kettle::use_coro)`. See use_coro.hpp.
inline constexpr use_coro_t use_coro{};

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {

template <class... Args>
struct AsioResult {
  static constexpr bool has_ec =
      sizeof...(Args) > 0 &&
      std::is_same_v<std::decay_t<std::tuple_element_t<0, std::tuple<Args..., void>>>,
                     std::error_code>;
};

template <class Tuple>
struct DropFirst;
template <class First, class... Rest>
struct DropFirst<std::tuple<First, Rest...>> {
  using type = std::tuple<Rest...>;
};

template <class Tuple>
auto unpack_result(Tuple&& t) {
  constexpr std::size_t n = std::tuple_size_v<std::decay_t<Tuple>>;
  if constexpr (n == 0)
    return;
  else if constexpr (n == 1)
    return std::get<0>(std::forward<Tuple>(t));
  else
    return std::forward<Tuple>(t);
}

// Shared by the awaiter and the completion handler, which may outlive the awaiter. An
// operation that completes on another thread (asio::post to a thread pool, an I/O object of
// another io_context) reaches the task through the loop's gate, as this runnable.
template <class... Args>
struct AsioOpState final : Runnable {
  std::optional<std::tuple<std::decay_t<Args>...>> result;
  asio::cancellation_signal signal;
  TaskBase* task = nullptr;
  std::shared_ptr<LoopGate> gate;
  std::shared_ptr<AsioOpState> self;   // keeps this alive while it travels through the gate
  std::atomic<bool> completed{false};  // the handler ran (it may run on another thread)
  bool cancel_requested = false;
  bool abandoned = false;  // the awaiting coroutine is gone (loop thread only)

  void run() noexcept override {
    auto keep = std::move(self);
    if (!abandoned) task->wake();
  }
  void drop() noexcept override { self.reset(); }  // the loop closed on the way
};

template <class... Args>
struct AsioHandler {
  std::shared_ptr<AsioOpState<Args...>> st;
  void operator()(Args... args) {
    auto& s = *st;
    s.result.emplace(std::move(args)...);
    s.completed.store(true, std::memory_order_release);
    if (s.gate->leads_to(tls_loop)) {  // on the loop's own thread (the usual case)
      if (!s.abandoned) s.task->wake();
      return;
    }
    s.self = st;
    if (!s.gate->post(&s)) s.self.reset();  // the loop is closed: nobody waits any more
  }
};

template <class Initiation, class InitArgs, class... Args>
class AsioAwaiter : private CancelHook {
 public:
  /// How the call graph names it.
  static constexpr const char* kettle_name = "an Asio operation (kettle::use_coro)";

 private:
  using State = AsioOpState<Args...>;
  using Values = std::tuple<std::decay_t<Args>...>;
  static constexpr bool has_ec = AsioResult<std::decay_t<Args>...>::has_ec;

 public:
  template <class I, class... A>
  explicit AsioAwaiter(I&& init, A&&... a)
      : CancelHook{&hook}, init_(std::forward<I>(init)), args_(std::forward<A>(a)...) {}
  AsioAwaiter(AsioAwaiter&& o) noexcept(std::is_nothrow_move_constructible_v<Initiation>&&
                                            std::is_nothrow_move_constructible_v<InitArgs>)
      : CancelHook{&hook}, init_(std::move(o.init_)), args_(std::move(o.args_)) {}
  AsioAwaiter& operator=(const AsioAwaiter&) = delete;
  ~AsioAwaiter() {
    // Destroyed while the operation runs (its task was dropped): stop it, detach.
    if (st_ && !st_->completed.load(std::memory_order_acquire)) {
      st_->abandoned = true;
      st_->signal.emit(asio::cancellation_type::terminal);
    }
  }

  bool await_ready() const noexcept { return false; }

  void await_suspend(std::coroutine_handle<> h) {
    TaskBase& t = current_task_for_await();
    st_ = std::make_shared<State>();
    st_->task = &t;
    st_->gate = tls_loop->gate;
    auto handler = asio::bind_cancellation_slot(st_->signal.slot(), AsioHandler<Args...>{st_});
    std::apply([&](auto&... a) { std::move(init_)(std::move(handler), std::move(a)...); }, args_);
    t.suspend(h, this);
  }

  auto await_resume() {
    State& s = *st_;
    bool cancel = s.task->take_cancel() | s.cancel_requested;
    Values& v = *s.result;
    if (cancel) {
      bool aborted = false;
      if constexpr (has_ec) aborted = std::get<0>(v) == asio::error::operation_aborted;
      if (aborted || !s.cancel_requested) s.task->throw_cancelled();
      // It succeeded before the cancellation reached it: keep the result, and the
      // cancellation for the next suspension point.
      s.task->defer_cancel();
    }
    if constexpr (has_ec) {
      if (std::get<0>(v)) throw std::system_error(std::get<0>(v));
      return unpack_result(drop_ec(std::move(v)));
    } else {
      return unpack_result(std::move(v));
    }
  }

 private:
  template <class T>
  static auto drop_ec(T&& t) {
    return std::apply([](auto&&, auto&&... rest) { return std::make_tuple(std::move(rest)...); },
                      std::forward<T>(t));
  }

  static bool hook(CancelHook* h) {
    auto* a = static_cast<AsioAwaiter*>(h);
    State& s = *a->st_;
    if (s.cancel_requested || s.completed.load(std::memory_order_acquire))
      return false;  // cancelled already, or completed: the task throws when it runs
    s.cancel_requested = true;
    s.signal.emit(asio::cancellation_type::terminal);
    return true;
  }

  Initiation init_;
  InitArgs args_;
  std::shared_ptr<State> st_;
};

}  // namespace detail
}  // namespace kettle

namespace asio {

template <class R, class... Args>
class async_result<kettle::use_coro_t, R(Args...)> {
 public:
  template <class Initiation, class... InitArgs>
  static auto initiate(Initiation&& init, kettle::use_coro_t, InitArgs&&... args) {
    return kettle::detail::AsioAwaiter<std::decay_t<Initiation>,
                                       std::tuple<std::decay_t<InitArgs>...>, Args...>(
        std::forward<Initiation>(init), std::forward<InitArgs>(args)...);
  }
};

}  // namespace asio
