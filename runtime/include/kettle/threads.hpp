/// @file
/// kettle/threads.hpp — threads and loops meeting: asyncio.to_thread,
/// loop.run_in_executor and asyncio.run_coroutine_threadsafe.
///
/// @code
/// std::string page = co_await kettle::to_thread(blocking_download, url);
/// auto f = kettle::run_in_executor(&pool, crunch, data);   // any executor; nullptr: default
/// int r = co_await f;
///
/// // from a plain thread, into a running loop:
/// kettle::Future<int> f = kettle::run_coroutine_threadsafe(compute(), loop);
/// int r = f.result(1s);
/// @endcode
///
/// to_thread runs fn(args...) on the running loop's default ThreadPoolExecutor (created on
/// first use; kettle::run shuts it down on the way out, waiting for running work). The
/// work starts at once; the returned Future is awaited for its result.
/// Cancellation: cancelling the awaiting task cancels work that has not started, and asks
/// running work to stop if its callable takes a std::stop_token first (its result is then
/// dropped).
///
/// On g++ 12, pass a named lambda, or one that captures by reference, or put the captured
/// state in the arguments: g++ 12 frees a lambda temporary's owning captures twice inside
/// a co_await expression (GCC PR 100611), so to_thread and run_in_executor refuse one.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include "kettle/coro.hpp"
#include "kettle/event_loop.hpp"
#include "kettle/executors/thread_pool.hpp"
#include "kettle/futures.hpp"
#include "kettle/tasks.hpp"

namespace kettle {

/// asyncio.to_thread: runs fn(args...) on the running loop's default ThreadPoolExecutor and
/// returns its Future (co_await it for the result). RuntimeError if no loop is running.
template <class F, class... Args>
[[nodiscard]] auto to_thread(F&& fn, Args&&... args);

///@{
/// loop.run_in_executor: submits fn(args...) to `executor` (anything with a submit(),
/// such as a ThreadPoolExecutor or ProcessPoolExecutor) and returns its Future; nullptr
/// means the running loop's default executor, as to_thread().
template <class Executor, class F, class... Args>
auto run_in_executor(Executor* executor, F&& fn, Args&&... args);
template <class F, class... Args>
auto run_in_executor(std::nullptr_t, F&& fn, Args&&... args);
///@}

/// asyncio.run_coroutine_threadsafe: schedules `coro` on `loop` from any thread and returns a
/// Future of its result. Cancelling the Future cancels the task. RuntimeError for an
/// empty Coro or a closed loop.
template <class T>
Future<T> run_coroutine_threadsafe(Coro<T> coro, EventLoop& loop);

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {
template <class F>
constexpr void check_closure_for_gcc12() {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
  static_assert(std::is_lvalue_reference_v<F> || std::is_trivially_destructible_v<std::decay_t<F>>,
                "kettle: g++ 12 frees the owning captures of a lambda temporary twice inside a "
                "co_await expression (GCC PR 100611). Name the lambda and pass it by name, "
                "capture by reference, or pass the state as arguments: to_thread(fn, args...)");
#endif
}

template <class T>
struct ThreadsafeBridge {
  Future<T> future;
  Task<T> task;  // set and reset on the loop's thread only
};
}  // namespace detail

template <class F, class... Args>
[[nodiscard]] auto to_thread(F&& fn, Args&&... args) {
  detail::check_closure_for_gcc12<F>();
  return get_running_loop().default_executor().submit(std::forward<F>(fn),
                                                      std::forward<Args>(args)...);
}

template <class Executor, class F, class... Args>
auto run_in_executor(Executor* executor, F&& fn, Args&&... args) {
  detail::check_closure_for_gcc12<F>();
  if (!executor) return to_thread(std::forward<F>(fn), std::forward<Args>(args)...);
  return executor->submit(std::forward<F>(fn), std::forward<Args>(args)...);
}

template <class F, class... Args>
auto run_in_executor(std::nullptr_t, F&& fn, Args&&... args) {
  return to_thread(std::forward<F>(fn), std::forward<Args>(args)...);
}

template <class T>
Future<T> run_coroutine_threadsafe(Coro<T> coro, EventLoop& loop) {
  if (!coro.valid()) throw RuntimeError("run_coroutine_threadsafe() needs a valid Coro");
  auto bridge = std::make_shared<detail::ThreadsafeBridge<T>>();
  Future<T> future = bridge->future;
  std::shared_ptr<detail::LoopGate> gate = loop.core().gate;
  // Cancelling the future, from any thread, cancels the task on its loop.
  future.add_done_callback([weak = std::weak_ptr(bridge), gate] {
    if (auto b = weak.lock(); b && b->future.cancelled())
      gate->post_callback([b] {
        if (b->task) b->task.cancel();
      });
  });
  loop.call_soon_threadsafe([bridge, c = std::move(coro)]() mutable {
    if (bridge->future.cancelled()) {  // cancelled before it could start
      detail::CoroAccess::discard(c);  // (not "never awaited": it was called off)
      return;
    }
    try {
      bridge->task = create_task(std::move(c));
    } catch (...) {
      if (bridge->future.set_running_or_notify_cancel())
        bridge->future.set_exception(std::current_exception());
      return;
    }
    bridge->task.add_done_callback([bridge](Task<T>& t) {
      if (t.cancelled()) bridge->future.cancel();
      if (bridge->future.set_running_or_notify_cancel()) {
        if (std::exception_ptr e = t.exception())
          bridge->future.set_exception(e);
        else if constexpr (std::is_void_v<T>)
          bridge->future.set_result();
        else
          bridge->future.set_result(std::move(t.result()));
      }
      bridge->task = Task<T>();  // released on the loop's thread
    });
  });
  return future;
}

}  // namespace kettle
