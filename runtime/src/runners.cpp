#include "kettle/runners.hpp"

namespace kettle::detail {

void check_can_start_run() {
  if (tls_loop) throw RuntimeError("kettle::run() cannot be called from a running event loop");
}

void prepare_run(EventLoop& loop, RunOptions& options) {
  loop.set_debug(options.debug);
  if (options.exception_handler) loop.set_exception_handler(std::move(options.exception_handler));
}

namespace {
Coro<> cancel_all(std::vector<TaskRef> tasks) {
  for (TaskRef& t : tasks)
    t.cancel();
  co_await gather(return_exceptions, tasks);
}
}  // namespace

void finish_run(EventLoop& loop) noexcept {
  if (loop.is_closed()) return;
  try {
    std::vector<TaskRef> left;
    for (TaskBase* t = loop.core().tasks_head; t; t = t->next_task_) {
      t->add_ref();
      left.emplace_back(t);
    }
    if (!left.empty()) {
      loop.run_until_complete(cancel_all(left));
      for (TaskRef& t : left) {
        if (t.cancelled()) continue;
        if (std::exception_ptr e = t.exception())
          loop.call_exception_handler(
              {"unhandled exception during kettle::run() shutdown", e, t.get_name()});
      }
    }
  } catch (...) {
    loop.call_exception_handler(
        {"error while cancelling the remaining tasks", std::current_exception(), {}});
  }
  try {
    loop.run_until_complete(loop.shutdown_default_executor());
  } catch (...) {
    loop.call_exception_handler(
        {"error while shutting down the default executor", std::current_exception(), {}});
  }
  try {
    loop.close();
  } catch (...) {
  }
}

}  // namespace kettle::detail
