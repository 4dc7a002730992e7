// Call graphs (asyncio 3.14's Lib/test/test_asyncio/test_graph.py) and debug mode
// (test_base_events / test_tasks' debug cases): what every task waits on, who awaits it,
// slow steps, never-awaited coroutines, where tasks were created, and the SIGUSR1 dump.
// This file is compiled with -g: the graph names files and lines from debug information.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

#include "helpers.hpp"

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::FrameCallGraphEntry;
using kettle::FutureCallGraph;

namespace {

std::vector<std::string> functions(const FutureCallGraph& g) {
  std::vector<std::string> out;
  for (const FrameCallGraphEntry& e : g.call_stack)
    out.push_back(e.function);
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// --- test_stack_tgroup: the current task, inside a TaskGroup -----------------------------

std::optional<FutureCallGraph> captured;
// The lines the graphs must name, noted next to them.
unsigned leaf_line, middle_line, group_main_line, sleep_line, deep_middle_line;

Coro<> graph_leaf() {
  leaf_line = __LINE__ + 1;
  captured = kettle::capture_call_graph();
  co_return;
}

Coro<> graph_middle() {
  co_await kettle::sleep(0.001);
  middle_line = __LINE__ + 1;
  co_await graph_leaf();
}

Coro<> graph_group_main() {
  auto body = [](kettle::TaskGroup& tg) -> Coro<> {
    tg.create_task(graph_middle(), "worker");
    co_return;
  };
  group_main_line = __LINE__ + 1;
  co_await kettle::task_group(body);
}

std::string at(unsigned line) {
  return std::to_string(line);
}

}  // namespace

namespace {
struct Reports {
  std::vector<kettle::ExceptionContext> seen;
  kettle::ExceptionHandler handler() {
    return [this](kettle::EventLoop&, const kettle::ExceptionContext& c) { seen.push_back(c); };
  }
  const kettle::ExceptionContext* find(const std::string& part) const {
    for (const auto& c : seen)
      if (contains(c.message, part)) return &c;
    return nullptr;
  }
};

Coro<int> never_run() {
  co_return 1;
}
}  // namespace

TEST(Graph, test_stack_tgroup) {
  captured.reset();
  kettle::run(graph_group_main());
  ASSERT_TRUE(captured);
  const FutureCallGraph& g = *captured;
  EXPECT_EQ(g.name, "worker");
  ASSERT_TRUE(g.task);
  std::vector<std::string> fs = functions(g);
  ASSERT_EQ(fs.size(), 2u) << ::testing::PrintToString(fs);
  EXPECT_TRUE(starts_with(fs[0], "(anonymous namespace)::graph_leaf")) << fs[0];
  EXPECT_TRUE(starts_with(fs[1], "(anonymous namespace)::graph_middle")) << fs[1];
  // The innermost entry is where capture_call_graph() was called.
  EXPECT_TRUE(contains(g.call_stack[0].file, "test_graph.cpp")) << g.call_stack[0].file;
  EXPECT_EQ(g.call_stack[0].line, leaf_line);
  EXPECT_EQ(g.call_stack[1].line, middle_line);
  // Awaited by the task that opened the group, sitting in the group's exit.
  ASSERT_EQ(g.awaited_by.size(), 1u);
  const FutureCallGraph& parent = g.awaited_by[0];
  EXPECT_EQ(parent.name, "Task-1");
  std::vector<std::string> ps = functions(parent);
  ASSERT_EQ(ps.size(), 3u) << ::testing::PrintToString(ps);
  EXPECT_EQ(parent.call_stack[0].kind, FrameCallGraphEntry::Kind::awaitable);
  EXPECT_EQ(ps[0], "kettle::TaskGroup::__aexit__()");
  EXPECT_TRUE(contains(ps[1], "run_task_group")) << ps[1];
  EXPECT_TRUE(starts_with(ps[2], "(anonymous namespace)::graph_group_main")) << ps[2];
  EXPECT_EQ(parent.call_stack[2].line, group_main_line);
  EXPECT_TRUE(parent.awaited_by.empty());
}

TEST(Graph, format_has_python_layout) {
  captured.reset();
  kettle::run(graph_group_main());
  ASSERT_TRUE(captured);
  std::string text = kettle::format_call_graph(*captured);
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);
  std::vector<std::string> want = {
      R"(\* Task\(name='worker', id=0x[0-9a-f]+\))",
      R"(  \+ Call stack:)",
      R"(  \|   File '.*test_graph\.cpp', line )" + at(leaf_line) +
          R"(, in async \(anonymous namespace\)::graph_leaf\(\))",
      R"(  \|   File '.*test_graph\.cpp', line )" + at(middle_line) +
          R"(, in async \(anonymous namespace\)::graph_middle\(\))",
      R"(  \+ Awaited by:)",
      R"(    \* Task\(name='Task-1', id=0x[0-9a-f]+\))",
      R"(      \+ Call stack:)",
      R"(      \|   File '.*taskgroups\.hpp', line \d+, in kettle::TaskGroup::__aexit__\(\))",
      R"(      \|   File '.*taskgroups\.hpp', line \d+, in async kettle::detail::run_task_group\(\))",
      R"(      \|   File '.*test_graph\.cpp', line )" + at(group_main_line) +
          R"(, in async \(anonymous namespace\)::graph_group_main\(\))",
  };
  ASSERT_EQ(lines.size(), want.size()) << text;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(std::regex_match(lines[i], std::regex(want[i]))) << lines[i] << "\n vs " << want[i];
}

namespace {

// Sleeps under two levels of coroutines until cancelled.
Coro<> deep_sleep() {
  sleep_line = __LINE__ + 1;
  co_await kettle::sleep(3600s);
}
Coro<> deep_middle() {
  deep_middle_line = __LINE__ + 1;
  co_await deep_sleep();
}

template <class F>
void run_main(F body) {
  kettle::run(body());
}

}  // namespace

TEST(Graph, suspended_task_shows_the_awaitable) {
  FutureCallGraph g, inner, outer, none, finished;
  run_main([&]() -> Coro<> {
    kettle::Task<> t = kettle::create_task(deep_middle(), "sleeper");
    co_await kettle::sleep(0.01);
    g = kettle::capture_call_graph(t);
    // limit (asyncio.graph): positive keeps the outermost, negative the innermost, 0 none.
    outer = kettle::capture_call_graph(t, 1, 1);
    inner = kettle::capture_call_graph(t, 1, -1);
    none = kettle::capture_call_graph(t, 1, 0);
    t.cancel();
    CO_EXPECT_THROW(co_await t, kettle::CancelledError);
    finished = kettle::capture_call_graph(t);
  });
  std::vector<std::string> fs = functions(g);
  ASSERT_EQ(fs.size(), 3u) << ::testing::PrintToString(fs);
  EXPECT_EQ(g.call_stack[0].kind, FrameCallGraphEntry::Kind::awaitable);
  EXPECT_EQ(fs[0], "kettle::sleep()");
  EXPECT_EQ(g.call_stack[0].line, sleep_line);  // the co_await in deep_sleep
  EXPECT_TRUE(starts_with(fs[1], "(anonymous namespace)::deep_sleep")) << fs[1];
  EXPECT_EQ(g.call_stack[1].line, sleep_line);
  EXPECT_TRUE(starts_with(fs[2], "(anonymous namespace)::deep_middle")) << fs[2];
  EXPECT_EQ(g.call_stack[2].line, deep_middle_line);
  EXPECT_TRUE(g.awaited_by.empty());  // nobody awaits it
  EXPECT_EQ(functions(inner), std::vector<std::string>{fs[0]});
  EXPECT_EQ(functions(outer), std::vector<std::string>{fs[2]});
  EXPECT_TRUE(none.call_stack.empty());
  EXPECT_TRUE(finished.call_stack.empty());  // a finished task has no frames
}

TEST(Graph, task_not_started_shows_its_coroutine) {
  FutureCallGraph g;
  run_main([&g]() -> Coro<> {
    kettle::Task<> t = kettle::create_task(deep_middle(), "fresh");
    g = kettle::capture_call_graph(t);
    t.cancel();
    co_await kettle::gather(kettle::return_exceptions, t);
  });
  ASSERT_EQ(g.call_stack.size(), 1u);
  EXPECT_TRUE(starts_with(g.call_stack[0].function, "(anonymous namespace)::deep_middle"))
      << g.call_stack[0].function;
}

TEST(Graph, depth_skips_the_innermost_entries) {
  std::optional<FutureCallGraph> one, two;
  run_main([&]() -> Coro<> {
    auto inner = [&]() -> Coro<> {
      one = kettle::capture_call_graph(1);
      two = kettle::capture_call_graph(2);
      co_return;
    };
    co_await inner();
  });
  ASSERT_TRUE(one && two);
  ASSERT_EQ(one->call_stack.size(), two->call_stack.size() + 1);
  EXPECT_EQ(one->call_stack[1].function, two->call_stack[0].function);
}

TEST(Graph, co_await_task_and_gather_and_shield_record_the_awaiter) {
  FutureCallGraph ga, gb, gc, done;
  std::string text;
  run_main([&]() -> Coro<> {
    kettle::Task<> a = kettle::create_task(deep_middle(), "a");
    kettle::Task<> b = kettle::create_task(deep_middle(), "b");
    kettle::Task<> c = kettle::create_task(deep_middle(), "c");
    auto await_a = [](kettle::Task<> t) -> Coro<> { co_await t; };
    auto gather_b = [](kettle::Task<> t) -> Coro<> { co_await kettle::gather(t); };
    auto shield_c = [](kettle::Task<> t) -> Coro<> { co_await kettle::shield(t); };
    kettle::Task<> wa = kettle::create_task(await_a(a), "waits-a");
    kettle::Task<> wb = kettle::create_task(gather_b(b), "gathers-b");
    kettle::Task<> wc = kettle::create_task(shield_c(c), "shields-c");
    co_await kettle::sleep(0.01);
    ga = kettle::capture_call_graph(a);
    gb = kettle::capture_call_graph(b);
    gc = kettle::capture_call_graph(c);
    text = kettle::format_call_graph(gb);
    for (kettle::Task<>* t : {&wa, &wb, &wc, &a, &b, &c})
      t->cancel();
    co_await kettle::gather(kettle::return_exceptions, wa, wb, wc, a, b, c);
    done = kettle::capture_call_graph(a);
  });
  ASSERT_EQ(ga.awaited_by.size(), 1u);
  EXPECT_EQ(ga.awaited_by[0].name, "waits-a");
  EXPECT_EQ(ga.awaited_by[0].call_stack[0].function, "co_await (a task or future of this loop)");

  ASSERT_EQ(gb.awaited_by.size(), 1u);
  EXPECT_FALSE(gb.awaited_by[0].task);  // the gather's future
  ASSERT_EQ(gb.awaited_by[0].awaited_by.size(), 1u);
  EXPECT_EQ(gb.awaited_by[0].awaited_by[0].name, "gathers-b");
  EXPECT_TRUE(contains(text, "\n    * Future(id=0x")) << text;

  ASSERT_EQ(gc.awaited_by.size(), 1u);
  EXPECT_FALSE(gc.awaited_by[0].task);  // the shield
  ASSERT_EQ(gc.awaited_by[0].awaited_by.size(), 1u);
  EXPECT_EQ(gc.awaited_by[0].awaited_by[0].name, "shields-c");
  // Once done, nobody awaits it any more.
  EXPECT_TRUE(done.awaited_by.empty());
}

TEST(Graph, wait_and_as_completed_record_the_awaiter) {
  FutureCallGraph ga, gb;
  run_main([&]() -> Coro<> {
    kettle::Task<> a = kettle::create_task(deep_middle(), "a");
    kettle::Task<> b = kettle::create_task(deep_middle(), "b");
    auto waiter = [](kettle::Task<> t) -> Coro<> {
      std::vector<kettle::Task<>> ts{t};
      co_await kettle::wait(ts);
    };
    auto completer = [](kettle::Task<> t) -> Coro<> {
      std::vector<kettle::Task<>> ts{t};
      for (auto next : kettle::as_completed(ts))
        co_await next;
    };
    kettle::Task<> wa = kettle::create_task(waiter(a), "waits");
    kettle::Task<> wb = kettle::create_task(completer(b), "as-completed");
    co_await kettle::sleep(0.01);
    ga = kettle::capture_call_graph(a);
    gb = kettle::capture_call_graph(b);
    for (kettle::Task<>* t : {&wa, &wb, &a, &b})
      t->cancel();
    co_await kettle::gather(kettle::return_exceptions, wa, wb, a, b);
  });
  ASSERT_EQ(ga.awaited_by.size(), 1u);
  EXPECT_EQ(ga.awaited_by[0].name, "waits");
  EXPECT_EQ(ga.awaited_by[0].call_stack[0].function, "kettle::wait()");
  ASSERT_EQ(gb.awaited_by.size(), 1u);
  EXPECT_EQ(gb.awaited_by[0].name, "as-completed");
  EXPECT_EQ(gb.awaited_by[0].call_stack[0].function, "kettle::as_completed()");
}

TEST(Graph, wait_for_and_queue_and_lock_name_the_awaitable) {
  std::vector<std::string> leaves;
  run_main([&]() -> Coro<> {
    kettle::Queue<int> q;
    kettle::Lock lock;
    co_await lock.acquire();
    auto getter = [](kettle::Queue<int>& q) -> Coro<> {
      co_await kettle::wait_for(q.get(), 3600s);
    };
    auto plain_get = [](kettle::Queue<int>& q) -> Coro<> { co_await q.get(); };
    auto locker = [](kettle::Lock& l) -> Coro<> { co_await l.acquire(); };
    kettle::Task<> t1 = kettle::create_task(getter(q));
    kettle::Task<> t2 = kettle::create_task(plain_get(q));
    kettle::Task<> t3 = kettle::create_task(locker(lock));
    co_await kettle::sleep(0.01);
    for (kettle::Task<>* t : {&t1, &t2, &t3})
      leaves.push_back(kettle::capture_call_graph(*t).call_stack.at(0).function);
    for (kettle::Task<>* t : {&t1, &t2, &t3})
      t->cancel();
    co_await kettle::gather(kettle::return_exceptions, t1, t2, t3);
    lock.release();
  });
  EXPECT_EQ(leaves, (std::vector<std::string>{"kettle::wait_for()", "kettle::Queue::get()",
                                              "kettle::Lock::acquire()"}));
}

TEST(Graph, outside_a_task) {
  EXPECT_FALSE(kettle::capture_call_graph());
  EXPECT_EQ(kettle::format_call_graph(), "");
  std::ostringstream out;
  kettle::print_call_graph(out);
  EXPECT_EQ(out.str(), "");
  EXPECT_THROW(kettle::capture_call_graph(kettle::TaskRef{}), kettle::ValueError);
  EXPECT_THROW(kettle::format_tasks(), kettle::RuntimeError);  // no running loop
}

TEST(Graph, tree_and_table_of_every_task) {
  std::string tree, table;
  run_main([&]() -> Coro<> {
    auto album = [](std::string name) -> Coro<> {
      auto body = [&name](kettle::TaskGroup& tg) -> Coro<> {
        tg.create_task(deep_middle(), name + "-1");
        tg.create_task(deep_middle(), name + "-2");
        co_return;
      };
      co_await kettle::task_group(body);
    };
    kettle::Task<> a = kettle::create_task(album("A"), "A");
    co_await kettle::sleep(0.01);
    tree = kettle::format_tasks();
    table = kettle::format_tasks(kettle::TaskListing::table);
    a.cancel();
    co_await kettle::gather(kettle::return_exceptions, a);
  });
  std::vector<std::string> lines;
  std::istringstream in(tree);
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);
  const std::string v = "\u2514\u2500\u2500", t = "\u251c\u2500\u2500", bar = "\u2502";
  std::vector<std::string> want = {
      v + " \\(T\\) Task-1",
      "    " + v + "  .*test_graph\\.cpp:\\d+",  // the test's own coroutine, running
      v + " \\(T\\) A",
      "    " + v + "  .*operator\\(\\) .*test_graph\\.cpp:\\d+",
      "        " + v + "  kettle::detail::run_task_group .*taskgroups\\.hpp:\\d+",
      "            " + v + "  kettle::TaskGroup::__aexit__ .*taskgroups\\.hpp:\\d+",
      "                " + t + " \\(T\\) A-1",
      "                " + bar + "   " + v +
          "  \\(anonymous namespace\\)::deep_middle .*test_graph\\.cpp:" + at(deep_middle_line),
      "                " + bar + "       " + v +
          "  \\(anonymous namespace\\)::deep_sleep .*test_graph\\.cpp:" + at(sleep_line),
      "                " + bar + "           " + v +
          "  kettle::sleep .*test_graph\\.cpp:" + at(sleep_line),
      "                " + v + " \\(T\\) A-2",
      "                    " + v +
          "  \\(anonymous namespace\\)::deep_middle .*test_graph\\.cpp:" + at(deep_middle_line),
      "                        " + v +
          "  \\(anonymous namespace\\)::deep_sleep .*test_graph\\.cpp:" + at(sleep_line),
      "                            " + v + "  kettle::sleep .*test_graph\\.cpp:" + at(sleep_line),
  };
  ASSERT_EQ(lines.size(), want.size()) << tree;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(std::regex_match(lines[i], std::regex(want[i]))) << lines[i] << "\n vs " << want[i];

  EXPECT_TRUE(starts_with(table, "tid        task id              task name")) << table;
  EXPECT_TRUE(std::regex_search(
      table,
      std::regex(
          R"(\n\d+ +0x[0-9a-f]+ +A-1 +kettle::sleep -> \(anonymous namespace\)::deep_sleep -> \(anonymous namespace\)::deep_middle +kettle::TaskGroup::__aexit__ -> kettle::detail::run_task_group -> .*operator\(\) +A +0x[0-9a-f]+\n)")))
      << table;
}

TEST(Graph, await_cycle_is_reported) {
  std::string tree;
  FutureCallGraph g;
  bool x_cancelled = false, y_cancelled = false;
  Reports r;
  kettle::run(
      [&]() -> Coro<> {
        kettle::Task<> x, y;
        auto await_other = [](kettle::Task<>* other) -> Coro<> {
          co_await kettle::sleep(0);
          co_await *other;
        };
        x = kettle::create_task(await_other(&y), "X");
        y = kettle::create_task(await_other(&x), "Y");
        co_await kettle::sleep(0.01);
        tree = kettle::format_tasks();
        g = kettle::capture_call_graph(x);
        // Cancelling one of them ends both (asyncio recurses until RecursionError).
        EXPECT_TRUE(x.cancel());
        co_await kettle::gather(kettle::return_exceptions, x, y);
        x_cancelled = x.cancelled();
        y_cancelled = y.cancelled();
      }(),
      {.exception_handler = r.handler()});
  EXPECT_TRUE(starts_with(tree, "ERROR: await-graph contains cycles - cannot print a tree!\n\n"))
      << tree;
  EXPECT_TRUE(contains(tree, "cycle: X \u2192 Y \u2192 X") ||
              contains(tree, "cycle: Y \u2192 X \u2192 Y"))
      << tree;
  // capture_call_graph stops at the cycle instead of recursing forever.
  ASSERT_EQ(g.awaited_by.size(), 1u);
  EXPECT_EQ(g.awaited_by[0].name, "Y");
  EXPECT_TRUE(g.awaited_by[0].awaited_by.empty());
  EXPECT_TRUE(x_cancelled);
  EXPECT_TRUE(y_cancelled);
  EXPECT_TRUE(r.seen.empty()) << r.seen[0].message;
}

TEST(Graph, as_completed_forgets_a_finished_awaiter) {
  FutureCallGraph during, after;
  run_main([&]() -> Coro<> {
    std::vector<kettle::Task<>> ts{kettle::create_task(deep_middle(), "a"),
                                   kettle::create_task(deep_middle(), "b")};
    auto ac = kettle::as_completed(ts);
    auto take_one = [](decltype(ac)& ac) -> Coro<> {
      for (auto next : ac) {
        try {
          co_await next;
        } catch (const kettle::CancelledError&) {
        }
        break;
      }
    };
    kettle::Task<> taker = kettle::create_task(take_one(ac), "taker");
    co_await kettle::sleep(0.01);
    during = kettle::capture_call_graph(ts[1]);
    ts[0].cancel();
    co_await taker;  // it took one result and is gone; b is awaited by nobody now
    after = kettle::capture_call_graph(ts[1]);
    ts[1].cancel();
    co_await kettle::gather(kettle::return_exceptions, ts[1]);
  });
  ASSERT_EQ(during.awaited_by.size(), 1u);
  EXPECT_EQ(during.awaited_by[0].name, "taker");
  EXPECT_TRUE(after.awaited_by.empty()) << kettle::format_call_graph(after);
}

TEST(Graph, ten_thousand_tasks) {
  std::string tree, table;
  run_main([&]() -> Coro<> {
    kettle::Event ev;
    auto waiter = [](kettle::Event& e) -> Coro<> { co_await e.wait(); };
    std::vector<kettle::Task<>> ts;
    for (int i = 0; i < 10000; ++i)
      ts.push_back(kettle::create_task(waiter(ev)));
    co_await kettle::sleep(0.01);
    tree = kettle::format_tasks();
    table = kettle::format_tasks(kettle::TaskListing::table);
    ev.set();
    co_await kettle::gather(ts);
  });
  std::size_t n = 0;
  for (std::size_t i = tree.find("(T) Task-"); i != std::string::npos;
       i = tree.find("(T) Task-", i + 1))
    ++n;
  EXPECT_EQ(n, 10001u);  // and the main task
  EXPECT_TRUE(contains(tree, "kettle::Event::wait"));
  EXPECT_EQ(static_cast<std::size_t>(std::count(table.begin(), table.end(), '\n')), 10001u + 2);
}

// --- debug mode ------------------------------------------------------------------------

unsigned forgotten_line;

TEST(DebugMode, coroutine_never_awaited_is_reported) {
  Reports r;
  kettle::run(
      []() -> Coro<> {
        forgotten_line = __LINE__ + 1;
        { auto forgotten = never_run(); }
        co_return;
      }(),
      {.exception_handler = r.handler()});
  const kettle::ExceptionContext* c = r.find("was never awaited");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->message, "coroutine '(anonymous namespace)::never_run' was never awaited");
  EXPECT_TRUE(contains(c->source_traceback, "Coroutine created at (most recent call last):"))
      << c->source_traceback;
  EXPECT_TRUE(contains(c->source_traceback, "test_graph.cpp\", line " + at(forgotten_line)))
      << c->source_traceback;
  // Awaited or made a task: no report.
  Reports quiet;
  kettle::run(
      []() -> Coro<> {
        co_await never_run();
        co_await kettle::create_task(never_run());
      }(),
      {.exception_handler = quiet.handler()});
  EXPECT_FALSE(quiet.find("never awaited"));
}

unsigned slow_end_line;

TEST(DebugMode, slow_step_is_reported) {
  Reports r;
  kettle::run(
      []() -> Coro<> {
        kettle::get_running_loop().set_slow_callback_duration(0.05);
        auto slow = []() -> Coro<> {
          co_await kettle::sleep(0);
          auto end = std::chrono::steady_clock::now() + 120ms;
          while (std::chrono::steady_clock::now() < end) {
          }
          slow_end_line = __LINE__ + 1;
          co_await kettle::sleep(0.01);
        };
        co_await kettle::create_task(slow(), "slow");
      }(),
      {.debug = true, .exception_handler = r.handler()});
  const kettle::ExceptionContext* c = r.find("Executing <Task");
  ASSERT_TRUE(c) << r.seen.size();
  EXPECT_TRUE(std::regex_match(
      c->message,
      std::regex(
          R"(Executing <Task pending name='slow' coro=<.*operator\(\)\(\) running at .*test_graph\.cpp:)" +
          at(slow_end_line) + R"(> created at .*test_graph\.cpp:\d+> took \d\.\d\d\d seconds)")))
      << c->message;
  EXPECT_EQ(c->task_name, "slow");
  EXPECT_TRUE(contains(c->source_traceback, "Task created at (most recent call last):"));
  // Without debug mode, nothing is timed.
  Reports quiet;
  kettle::run(
      []() -> Coro<> {
        kettle::get_running_loop().set_slow_callback_duration(0.0);
        co_await kettle::sleep(0.01);
      }(),
      {.exception_handler = quiet.handler()});
  EXPECT_FALSE(quiet.find("Executing"));
}

unsigned failing_line;

TEST(DebugMode, never_retrieved_exception_shows_where_the_task_was_created) {
  Reports r;
  kettle::run(
      []() -> Coro<> {
        auto fail = []() -> Coro<> {
          throw std::runtime_error("boom");
          co_return;
        };
        failing_line = __LINE__ + 1;
        kettle::create_task(fail(), "failing");
        co_await kettle::sleep(0.01);
      }(),
      {.debug = true, .exception_handler = r.handler()});
  const kettle::ExceptionContext* c = r.find("Task exception was never retrieved");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->task_name, "failing");
  EXPECT_TRUE(starts_with(c->source_traceback, "Task created at (most recent call last):\n"))
      << c->source_traceback;
  // Debug mode keeps the whole stack: the create_task line, and the test body below it.
  EXPECT_TRUE(contains(c->source_traceback, "test_graph.cpp\", line " + at(failing_line)))
      << c->source_traceback;
  EXPECT_TRUE(contains(c->source_traceback, "DebugMode_never_retrieved")) << c->source_traceback;
}

TEST(DebugMode, set_by_environment_and_validated) {
  const char* was = std::getenv("KETTLE_DEBUG");
  std::string saved = was ? was : "";
  ::setenv("KETTLE_DEBUG", "1", 1);
  {
    kettle::EventLoop loop;
    EXPECT_TRUE(loop.get_debug());
  }
  // As asyncio.run(debug=False): an explicit false wins over the environment.
  bool seen = true;
  kettle::RunOptions off;
  off.debug = false;
  kettle::run(
      [&]() -> Coro<> {
        seen = kettle::get_running_loop().get_debug();
        co_return;
      }(),
      std::move(off));
  EXPECT_FALSE(seen);
  ::unsetenv("KETTLE_DEBUG");
  kettle::EventLoop loop;
  EXPECT_FALSE(loop.get_debug());
  if (was) ::setenv("KETTLE_DEBUG", saved.c_str(), 1);
  EXPECT_DOUBLE_EQ(loop.slow_callback_duration(), 0.1);
  EXPECT_THROW(loop.set_slow_callback_duration(-1), kettle::ValueError);
  EXPECT_THROW(loop.set_slow_callback_duration(std::nan("")), kettle::ValueError);
  loop.set_slow_callback_duration(1e300);  // huge: never reported
  EXPECT_GT(loop.slow_callback_duration(), 1e8);
}

// --- the SIGUSR1 dump of a running program ------------------------------------------------

namespace {
unsigned get_line, handle_line;
Coro<int> consume(kettle::Queue<int>& q) {
  get_line = __LINE__ + 1;
  co_return co_await q.get();
}
Coro<int> handle_one(kettle::Queue<int>& q) {
  handle_line = __LINE__ + 1;
  co_return co_await consume(q);
}
}  // namespace

// Run in a child by dump_on_sigusr1: consumers stuck on a queue deep inside nested
// coroutines under a TaskGroup; its stderr goes to the file the parent reads.
TEST(DebugMode, helper_stuck_program) {
  const char* file = std::getenv("KETTLE_TEST_DUMP_FILE");
  if (!file) GTEST_SKIP() << "a helper";
  int fd = ::open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ::dup2(fd, 2);
  ::close(fd);
  kettle::RunOptions debug;
  debug.debug = true;           // and so SIGUSR1 dumps the tasks
  debug.handle_sigterm = true;  // the parent ends it with SIGTERM (SIGINT may be ignored)
  try {
    kettle::run(
        []() -> Coro<> {
          kettle::Queue<int> q;
          auto body = [&q](kettle::TaskGroup& tg) -> Coro<> {
            tg.create_task(handle_one(q), "consumer-1");
            tg.create_task(handle_one(q), "consumer-2");
            co_await kettle::sleep(0.01);
            std::fputs("ready\n", stderr);
          };
          co_await kettle::task_group(body);
        }(),
        std::move(debug));
  } catch (const kettle::KeyboardInterrupt&) {
    std::fputs("interrupted\n", stderr);
  }
}

TEST(DebugMode, dump_on_sigusr1) {
  std::string file =
      std::filesystem::temp_directory_path() / ("kettle_dump_" + std::to_string(::getpid()));
  std::filesystem::remove(file);
  pid_t child =
      spawn_helper_test("DebugMode.helper_stuck_program", "KETTLE_TEST_DUMP_FILE=" + file);
  ASSERT_GT(child, 0);
  auto read_all = [&] {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto wait_for_text = [&](const std::string& part) {
    for (int i = 0; i < 3000 && !contains(read_all(), part); ++i)
      std::this_thread::sleep_for(10ms);
    return contains(read_all(), part);
  };
  const std::string signal_line = "(signal " + std::to_string(SIGUSR1) + "):\n";
  bool ready = wait_for_text("ready\n");
  if (ready) ::kill(child, SIGUSR1);
  bool dumped = ready && wait_for_text("consumer-2");
  // The program goes on after the dump: a second one comes too.
  if (dumped) {
    std::this_thread::sleep_for(50ms);
    ::kill(child, SIGUSR1);
  }
  bool again = dumped && wait_for_text(signal_line) && [&] {
    for (int i = 0; i < 3000; ++i) {
      std::string s = read_all();
      std::size_t first = s.find(signal_line);
      if (first != std::string::npos &&
          s.find("consumer-2", s.find(signal_line, first + 1)) != std::string::npos)
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }();
  ::kill(child, SIGTERM);
  std::optional<int> status = wait_helper(child, 30s);
  std::string out = read_all();
  std::filesystem::remove(file);
  ASSERT_TRUE(ready) << out;
  ASSERT_TRUE(dumped) << out;
  EXPECT_TRUE(again) << out;
  ASSERT_TRUE(status) << out;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status << "\n" << out;
  EXPECT_TRUE(contains(out, "interrupted\n")) << out;
  // Each task, each coroutine frame with its file and line, and the queue get it waits on.
  // (The child ran the same code: the lines noted here are the child's too.)
  std::ifstream src(std::string(__FILE__));
  unsigned n = 0;
  for (std::string l; std::getline(src, l);) {
    ++n;
    if (l == "  co_return co_await q.get();") get_line = n;
    if (l == "  co_return co_await consume(q);") handle_line = n;
  }
  for (std::string part :
       {"kettle: the pending tasks " + signal_line, std::string("\u2514\u2500\u2500 (T) Task-1\n"),
        std::string("(T) consumer-1\n"), std::string("(T) consumer-2\n"),
        std::string("kettle::TaskGroup::__aexit__ "),
        std::string("(anonymous namespace)::handle_one "),
        "test_graph.cpp:" + at(handle_line) + "\n", std::string("(anonymous namespace)::consume "),
        "test_graph.cpp:" + at(get_line) + "\n", std::string("kettle::Queue::get ")})
    EXPECT_TRUE(contains(out, part)) << part << "\n" << out;
}
