// kettle/runners.hpp — kettle::run, asyncio.run.
//
//   kettle::Coro<int> main_() { ... co_return 0; }
//   int main() { return kettle::run(main_()); }
//
// run() creates an event loop, runs `main` to completion and returns its value (or
// rethrows its exception). On the way out it cancels every task still pending, waits for
// them, reports their errors (other than cancellation) to the exception handler, and
// closes the loop. RuntimeError if a loop is already running on this thread.
#pragma once

#include <type_traits>
#include <utility>

#include "kettle/coro.hpp"
#include "kettle/event_loop.hpp"
#include "kettle/tasks.hpp"

namespace kettle {

struct RunOptions {
  bool debug = false;                  // EventLoop::set_debug
  ExceptionHandler exception_handler;  // if set, installed on the loop
};

template <class T>
T run(Coro<T> main, RunOptions options = {});

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {
void check_can_start_run();
void prepare_run(EventLoop& loop, RunOptions& options);
// Cancels the tasks left, waits for them, reports their errors, closes the loop.
void finish_run(EventLoop& loop) noexcept;
}  // namespace detail

template <class T>
T run(Coro<T> main, RunOptions options) {
  detail::check_can_start_run();
  EventLoop loop;
  detail::prepare_run(loop, options);
  try {
    if constexpr (std::is_void_v<T>) {
      loop.run_until_complete(std::move(main));
      detail::finish_run(loop);
    } else {
      T result = loop.run_until_complete(std::move(main));
      detail::finish_run(loop);
      return result;
    }
  } catch (...) {
    detail::finish_run(loop);
    throw;
  }
}

}  // namespace kettle
