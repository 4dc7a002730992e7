/// @file
/// kettle/graph.hpp — what every task is waiting on (asyncio 3.14's asyncio.graph, and
/// `python -m asyncio ps|pstree` from inside the program).
///
/// @code
/// kettle::Coro<> leaf() { kettle::print_call_graph(); co_return; }
/// // * Task(name='worker', id=0x55d0c4a3e2c0)
/// //   + Call stack:
/// //   |   File 'app.cpp', line 3, in async leaf()
/// //   |   File 'app.cpp', line 7, in async job()
/// //   + Awaited by:
/// //       * Task(name='Task-1', id=0x55d0c4a3d100)
/// //         + Call stack:
/// //         |   File 'kettle/taskgroups.hpp', line 187, in kettle::TaskGroup::__aexit__()
/// //         |   File 'kettle/taskgroups.hpp', line 187, in async kettle::detail::run_task_group()
/// //         |   File 'app.cpp', line 12, in async main_()
/// kettle::print_tasks();                              // every task of the loop, as a tree
/// kettle::print_tasks(kettle::TaskListing::table);   // ... as `python -m asyncio ps`
/// @endcode
///
/// How it works: every `co_await` in a Coro stores the address of that co_await in the
/// coroutine's frame, and a Coro awaiting a Coro links the two, so a suspended task's
/// chain of frames can be walked from its root down to the awaitable it sits in (a
/// `sleep`, a `Queue::get`, a Future of a pool). The combinators record who awaits whom:
/// `co_await task`, gather, shield, wait, as_completed, TaskGroup (a child is awaited by
/// the task that opened the group) — that is "Awaited by". Addresses become file, line and
/// function only when a graph is printed, through libbacktrace, from the program's debug
/// information (without `-g`, functions are named but files and lines are unknown).
///
/// A running program can be asked from outside: `RunOptions::dump_tasks_on` (SIGUSR1 by
/// default in debug mode) prints the tree to stderr when the signal arrives.
///
/// All of this reads the loop's tasks: call it on the loop's thread (from a task or a
/// callback of the loop), as asyncio requires.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "kettle/tasks.hpp"

namespace kettle {

class EventLoop;

/// One entry of a call stack: a coroutine frame, or the awaitable the innermost frame is
/// suspended in (asyncio.FrameCallGraphEntry).
struct FrameCallGraphEntry {
  /// What the entry is.
  enum class Kind : std::uint8_t {
    coroutine,  ///< A Coro's frame, at the co_await where it is suspended.
    awaitable   ///< What the innermost frame waits in ("kettle::sleep()", "kettle::Queue::get()").
  };
  Kind kind = Kind::coroutine;  ///< A frame or an awaitable.
  std::string file;             ///< The source file, empty if unknown (no debug information).
  unsigned line = 0;            ///< The line, 0 if unknown.
  std::string function;  ///< The function (demangled, with its parameters), or the awaitable.
};

/// A future, its call stack and what awaits it (asyncio.FutureCallGraph).
struct FutureCallGraph {
  TaskRef task;  ///< The task; empty when the node is another loop future (a gather, a shield).
  std::uintptr_t id = 0;  ///< The future's address (Python's id()).
  std::string name;       ///< The task's name; empty for another future.
  /// The task's frames, innermost first (empty for a finished task and for other futures).
  std::vector<FrameCallGraphEntry> call_stack;
  std::vector<FutureCallGraph> awaited_by;  ///< The graphs of the futures awaiting this one.
};

namespace detail {
std::optional<FutureCallGraph> capture_current(int depth, std::optional<int> limit,
                                               const void* here);
FutureCallGraph capture_task(const TaskRef& task, int depth, std::optional<int> limit,
                             const void* here);
}  // namespace detail

// These are inlined into their caller: for the current task, the innermost entry is where
// they were called (detail::here()).

///@{
/// asyncio.capture_call_graph: the call graph of `task`, or of the current task (nullopt
/// outside a task). For the current task the innermost entry is the caller, where it calls,
/// and `depth` skips that many entries minus one. `limit` keeps at most |limit| entries of
/// each call stack: the outermost ones (closest to where the task was invoked) if positive,
/// the innermost if negative; 0 keeps none. ValueError for an empty TaskRef.
[[gnu::always_inline]] inline std::optional<FutureCallGraph> capture_call_graph(
    int depth = 1, std::optional<int> limit = std::nullopt) {
  return detail::capture_current(depth, limit, detail::here());
}
[[gnu::always_inline]] inline FutureCallGraph capture_call_graph(
    const TaskRef& task, int depth = 1, std::optional<int> limit = std::nullopt) {
  return detail::capture_task(task, depth, limit, detail::here());
}
///@}

///@{
/// asyncio.format_call_graph: the graph in Python 3.14's layout (`* Task(name='…', id=0x…)`,
/// `  + Call stack:`, `  |   File '…', line …, in async …()`, `  + Awaited by:`, four
/// spaces a level); empty outside a task.
std::string format_call_graph(const FutureCallGraph& graph);
[[gnu::always_inline]] inline std::string format_call_graph(
    int depth = 1, std::optional<int> limit = std::nullopt) {
  std::optional<FutureCallGraph> g = detail::capture_current(depth, limit, detail::here());
  return g ? format_call_graph(*g) : std::string();
}
[[gnu::always_inline]] inline std::string format_call_graph(
    const TaskRef& task, int depth = 1, std::optional<int> limit = std::nullopt) {
  return format_call_graph(detail::capture_task(task, depth, limit, detail::here()));
}
///@}

///@{
/// asyncio.print_call_graph: format_call_graph() and a newline, to `out` (nothing outside a
/// task).
[[gnu::always_inline]] inline void print_call_graph(std::ostream& out = std::cout, int depth = 1,
                                                    std::optional<int> limit = std::nullopt) {
  std::optional<FutureCallGraph> g = detail::capture_current(depth, limit, detail::here());
  if (g) out << format_call_graph(*g) << std::endl;
}
[[gnu::always_inline]] inline void print_call_graph(const TaskRef& task,
                                                    std::ostream& out = std::cout, int depth = 1,
                                                    std::optional<int> limit = std::nullopt) {
  out << format_call_graph(detail::capture_task(task, depth, limit, detail::here())) << std::endl;
}
///@}

/// How print_tasks() lays the tasks out.
enum class TaskListing : std::uint8_t {
  /// `python -m asyncio pstree`: a tree from the root tasks, each task's frames from the
  /// outermost down, and under the frame where it waits, the tasks it awaits. An await
  /// cycle prints "ERROR: await-graph contains cycles - cannot print a tree!" and the cycles.
  tree,
  /// `python -m asyncio ps`: one row per task and awaiter: thread id, task id, task name,
  /// coroutine stack, awaiter chain, awaiter name, awaiter id.
  table
};

///@{
/// Every pending task of the running loop (RuntimeError if none), as a tree or a table.
std::string format_tasks(TaskListing how = TaskListing::tree);
void print_tasks(TaskListing how = TaskListing::tree, std::ostream& out = std::cout);
///@}
/// The same for the tasks of `loop`, on its thread (EventLoop::dump_tasks).
std::string format_tasks(EventLoop& loop, TaskListing how = TaskListing::tree);

}  // namespace kettle
