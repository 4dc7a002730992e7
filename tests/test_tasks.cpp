// kettle::Task, create_task, current_task, all_tasks and sleep.
// Names follow CPython's test_tasks.py where a test mirrors one.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unwind.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::Task;

namespace {
Coro<int> value_after(std::chrono::milliseconds d, int v) {
  co_await kettle::sleep(d);
  co_return v;
}
Coro<int> fail_after(std::chrono::milliseconds d, std::string msg) {
  co_await kettle::sleep(d);
  throw std::runtime_error(msg);
}

// Collects what reaches the exception handler.
struct Reports {
  std::vector<kettle::ExceptionContext> seen;
  kettle::RunOptions options() {
    kettle::RunOptions o;
    o.exception_handler = [this](kettle::EventLoop&, const kettle::ExceptionContext& c) {
      seen.push_back(c);
    };
    return o;
  }
};
}  // namespace

TEST(Tasks, test_create_task_runs_concurrently) {
  // Both started before either finished: they slept at the same time (an ordering, which
  // holds on a loaded machine, rather than a time bound).
  std::vector<std::string> events;
  auto step = [&](std::string name, int v) -> Coro<int> {
    events.push_back("start " + name);
    co_await kettle::sleep(20ms);
    events.push_back("end " + name);
    co_return v;
  };
  auto body = [&]() -> Coro<int> {
    Task<int> a = kettle::create_task(step("a", 1));
    Task<int> b = kettle::create_task(step("b", 2));
    int x = co_await a;
    int y = co_await b;
    co_return x + y;
  };
  EXPECT_EQ(kettle::run(body()), 3);
  EXPECT_EQ(events, (std::vector<std::string>{"start a", "start b", "end a", "end b"}));
}

TEST(Tasks, test_create_task_without_running_loop) {
  EXPECT_THROW(kettle::create_task(value_after(1ms, 1)), kettle::RuntimeError);
}

TEST(Tasks, test_task_basics) {
  auto body = []() -> Coro<> {
    Task<int> t = kettle::create_task(value_after(5ms, 5));
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(t.cancelled());
    EXPECT_THROW(t.result(), kettle::InvalidStateError);
    EXPECT_THROW(t.exception(), kettle::InvalidStateError);
    EXPECT_EQ(co_await t, 5);
    EXPECT_TRUE(t.done());
    EXPECT_EQ(t.result(), 5);
    EXPECT_EQ(t.exception(), nullptr);
    EXPECT_EQ(co_await t, 5);  // a done task can be awaited again
  };
  kettle::run(body());
}

TEST(Tasks, test_task_exception) {
  auto body = []() -> Coro<> {
    Task<int> t = kettle::create_task(fail_after(1ms, "bad"));
    EXPECT_THROW(co_await t, std::runtime_error);
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.cancelled());
    EXPECT_THROW(t.result(), std::runtime_error);
    std::exception_ptr e = t.exception();
    EXPECT_TRUE(e);
    EXPECT_EQ(kettle::describe(e), "std::runtime_error: bad");
  };
  kettle::run(body());
}

TEST(Tasks, test_task_awaited_by_many) {
  auto body = []() -> Coro<int> {
    Task<int> shared = kettle::create_task(value_after(5ms, 10));
    auto waiter = [](Task<int> t) -> Coro<int> { co_return co_await t + 1; };
    auto [a, b, c] = co_await kettle::gather(waiter(shared), waiter(shared), waiter(shared));
    co_return a + b + c;
  };
  EXPECT_EQ(kettle::run(body()), 33);
}

TEST(Tasks, test_task_move_only_result) {
  auto make = []() -> Coro<std::unique_ptr<std::string>> {
    co_await kettle::sleep(0);
    co_return std::make_unique<std::string>("moved");
  };
  auto body = [&]() -> Coro<std::string> {
    Task<std::unique_ptr<std::string>> t = kettle::create_task(make());
    std::unique_ptr<std::string>& ref = co_await t;  // lvalue await: the value stays
    EXPECT_TRUE(ref);
    std::unique_ptr<std::string> p = co_await std::move(t);  // rvalue await: moved out
    co_return *p;
  };
  EXPECT_EQ(kettle::run(body()), "moved");
}

TEST(Tasks, test_task_default_and_custom_names) {
  auto body = []() -> Coro<> {
    Task<int> a = kettle::create_task(value_after(0ms, 0));
    Task<int> b = kettle::create_task(value_after(0ms, 0), "fetcher");
    EXPECT_EQ(a.get_name().rfind("Task-", 0), 0u);
    EXPECT_EQ(b.get_name(), "fetcher");
    b.set_name("renamed");
    EXPECT_EQ(b.get_name(), "renamed");
    co_await kettle::gather(a, b);
  };
  kettle::run(body());
}

TEST(Tasks, test_current_task) {
  EXPECT_FALSE(kettle::current_task());
  auto inner = [](kettle::TaskRef* seen) -> Coro<> {
    *seen = kettle::current_task();
    co_return;
  };
  auto body = [&]() -> Coro<> {
    kettle::TaskRef me = kettle::current_task();
    EXPECT_TRUE(me);
    EXPECT_EQ(me.get_name(), "main");
    kettle::TaskRef seen_in_child;
    Task<> t = kettle::create_task(inner(&seen_in_child), "child");
    co_await t;
    EXPECT_EQ(seen_in_child, t);
    EXPECT_EQ(kettle::current_task(), me);
  };
  kettle::EventLoop loop;
  auto main_task = [&]() -> Coro<> {
    Task<> t = kettle::create_task(body(), "main");
    co_await t;
  };
  loop.run_until_complete(main_task());
}

TEST(Tasks, test_all_tasks) {
  auto body = []() -> Coro<> {
    Task<int> a = kettle::create_task(value_after(10ms, 1), "a");
    Task<int> b = kettle::create_task(value_after(10ms, 2), "b");
    std::vector<kettle::TaskRef> all = kettle::all_tasks();
    EXPECT_EQ(all.size(), 3u);  // main, a, b
    co_await kettle::gather(a, b);
    EXPECT_EQ(kettle::all_tasks().size(), 1u);  // finished tasks are not listed
  };
  kettle::run(body());
}

TEST(Tasks, test_fire_and_forget_task_completes) {
  int done = 0;
  auto worker = [](int* d) -> Coro<> {
    co_await kettle::sleep(5ms);
    ++*d;
  };
  auto body = [&]() -> Coro<> {
    for (int i = 0; i < 10; ++i)
      (void)kettle::create_task(worker(&done));  // handles dropped
    co_await kettle::sleep(0);                   // the workers' timers are armed before this one
    co_await kettle::sleep(20ms);
  };
  kettle::run(body());
  EXPECT_EQ(done, 10);
}

TEST(Tasks, test_add_done_callback_runs_through_loop) {
  auto body = []() -> Coro<> {
    std::vector<std::string> order;
    Task<int> t = kettle::create_task(value_after(1ms, 4));
    t.add_done_callback(
        [&](Task<int>& done) { order.push_back("callback " + std::to_string(done.result())); });
    // As in asyncio, the awaiter is itself a done callback, added after this one: the
    // callback has run (through the loop, not inline) when the await returns.
    co_await t;
    order.push_back("awaiter");
    EXPECT_EQ(order, (std::vector<std::string>{"callback 4", "awaiter"}));
    t.add_done_callback([&] { order.push_back("late"); });  // already done: soon
    EXPECT_EQ(order.size(), 2u);
    co_await kettle::sleep(0);
    EXPECT_EQ(order.back(), "late");
  };
  kettle::run(body());
}

TEST(Tasks, test_exception_never_retrieved_is_reported) {
  Reports r;
  auto body = [&]() -> Coro<> {
    (void)kettle::create_task(fail_after(0ms, "lost"), "careless");
    for (int i = 0; i < 5000 && r.seen.empty(); ++i)
      co_await kettle::sleep(1ms);
  };
  kettle::run(body(), r.options());
  ASSERT_EQ(r.seen.size(), 1u);
  EXPECT_EQ(r.seen[0].message, "Task exception was never retrieved");
  EXPECT_EQ(r.seen[0].task_name, "careless");
  EXPECT_EQ(kettle::describe(r.seen[0].exception), "std::runtime_error: lost");
}

TEST(Tasks, test_exception_retrieved_is_not_reported) {
  Reports r;
  auto body = []() -> Coro<> {
    Task<int> t = kettle::create_task(fail_after(0ms, "seen"));
    while (!t.done())
      co_await kettle::sleep(1ms);
    EXPECT_TRUE(t.exception());
  };
  kettle::run(body(), r.options());
  EXPECT_TRUE(r.seen.empty());
}

TEST(Tasks, test_await_task_from_other_loop_raises) {
  kettle::EventLoop other;
  Task<int> foreign;
  auto make = [&]() -> Coro<> {
    foreign = kettle::create_task(value_after(1ms, 1));
    co_await foreign;
  };
  other.run_until_complete(make());
  Task<int> pending_foreign;
  auto make_pending = [&]() -> Coro<> {
    pending_foreign = kettle::create_task(value_after(3600s, 1));
    co_return;
  };
  other.run_until_complete(make_pending());
  auto body = [&]() -> Coro<> {
    EXPECT_THROW(co_await pending_foreign, kettle::RuntimeError);
    EXPECT_THROW(co_await kettle::gather(pending_foreign), kettle::RuntimeError);
  };
  kettle::run(body());
  EXPECT_EQ(foreign.result(), 1);
}

TEST(Tasks, test_task_await_self_raises) {
  auto body = []() -> Coro<> {
    kettle::TaskRef me = kettle::current_task();
    EXPECT_THROW(co_await me, kettle::RuntimeError);
  };
  kettle::run(body());
}

TEST(Tasks, test_sleep_zero) {
  // sleep(0) yields: callbacks scheduled before it run before it returns.
  auto body = []() -> Coro<int> {
    int result = 0;
    kettle::get_running_loop().call_soon([&] { result += 1; });
    EXPECT_EQ(result, 0);
    co_await kettle::sleep(0);
    EXPECT_EQ(result, 1);
    co_return result;
  };
  EXPECT_EQ(kettle::run(body()), 1);
}

TEST(Tasks, test_sleep_zero_round_robin) {
  // Every ready task runs once per sleep(0) of the others.
  std::vector<int> order;
  auto worker = [&](int id) -> Coro<> {
    for (int i = 0; i < 3; ++i) {
      order.push_back(id);
      co_await kettle::sleep(0);
    }
  };
  auto body = [&]() -> Coro<> { co_await kettle::gather(worker(0), worker(1), worker(2)); };
  kettle::run(body());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
}

TEST(Tasks, test_sleep_negative_acts_as_zero) {
  // A negative sleep is a yield: it returns before a 1 s sleep started at the same time.
  auto body = []() -> Coro<> {
    Task<> other = kettle::create_task(kettle::sleep(1s));
    co_await kettle::sleep(-5s);
    co_await kettle::sleep(-1.5);
    EXPECT_FALSE(other.done());
    other.cancel();
  };
  kettle::run(body());
}

TEST(Tasks, test_sleep_waits_at_least_its_duration) {
  auto body = []() -> Coro<> {
    auto t0 = std::chrono::steady_clock::now();
    co_await kettle::sleep(30ms);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
    t0 = std::chrono::steady_clock::now();
    co_await kettle::sleep(0.02);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  };
  kettle::run(body());
}

TEST(Tasks, test_sleeps_wake_in_deadline_order) {
  std::vector<int> order;
  auto sleeper = [&](int ms) -> Coro<> {
    co_await kettle::sleep(std::chrono::milliseconds(ms));
    order.push_back(ms);
  };
  auto body = [&]() -> Coro<> { co_await kettle::gather(sleeper(30), sleeper(10), sleeper(20)); };
  kettle::run(body());
  EXPECT_EQ(order, (std::vector<int>{10, 20, 30}));
}

TEST(Tasks, test_million_pending_sleeps) {
  constexpr int kTasks = 1'000'000;
  int woke = 0;
  auto sleeper = [](int* w) -> Coro<> {
    co_await kettle::sleep(50ms);
    ++*w;
  };
  auto body = [&]() -> Coro<> {
    std::vector<Coro<>> coros;
    coros.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i)
      coros.push_back(sleeper(&woke));
    co_await kettle::gather(coros);
  };
  kettle::run(body());
  EXPECT_EQ(woke, kTasks);
}

// Cancellation -------------------------------------------------------------------------

namespace {
// Runs the loop for one iteration (CPython's test_utils.run_briefly).
void run_briefly(kettle::EventLoop& loop) {
  loop.stop();
  loop.run_forever();
}
}  // namespace

TEST(TaskCancel, test_cancel_yield) {
  kettle::EventLoop loop;
  auto task = []() -> Coro<int> {
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    co_return 12;
  };
  Task<int> t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(task()); }());
  run_briefly(loop);  // start the coroutine
  EXPECT_TRUE(t.cancel());
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

TEST(TaskCancel, test_cancel_inner_future) {
  kettle::EventLoop loop;
  kettle::Future<> f;
  auto task = [](kettle::Future<> f) -> Coro<int> {
    co_await f;
    co_return 12;
  };
  Task<int> t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(task(f)); }());
  run_briefly(loop);  // start the task
  f.cancel();
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

TEST(TaskCancel, test_cancel_both_task_and_inner_future) {
  kettle::EventLoop loop;
  kettle::Future<> f;
  auto task = [](kettle::Future<> f) -> Coro<int> {
    co_await f;
    co_return 12;
  };
  Task<int> t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(task(f)); }());
  run_briefly(loop);
  f.cancel();
  t.cancel();
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(t.cancelled());
}

TEST(TaskCancel, test_cancel_task_catching) {
  kettle::EventLoop loop;
  kettle::Future<> fut1, fut2;
  auto task = [](kettle::Future<> fut1, kettle::Future<> fut2) -> Coro<int> {
    co_await fut1;
    try {
      co_await fut2;
    } catch (const kettle::CancelledError&) {
      co_return 42;
    }
    co_return 0;
  };
  Task<int> t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(task(fut1, fut2)); }());
  run_briefly(loop);
  fut1.set_result();
  run_briefly(loop);
  t.cancel();
  EXPECT_TRUE(fut2.cancelled());  // cancelling the task cancelled what it waited on
  EXPECT_EQ(loop.run_until_complete(t), 42);
  EXPECT_FALSE(t.cancelled());
}

TEST(TaskCancel, test_cancel_task_ignoring) {
  kettle::EventLoop loop;
  kettle::Future<> fut1, fut2;
  kettle::Future<int> fut3;
  auto task = [](kettle::Future<> fut1, kettle::Future<> fut2,
                 kettle::Future<int> fut3) -> Coro<int> {
    co_await fut1;
    try {
      co_await fut2;
    } catch (const kettle::CancelledError&) {
    }
    co_return co_await fut3;
  };
  Task<int> t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(task(fut1, fut2, fut3)); }());
  run_briefly(loop);
  fut1.set_result();
  run_briefly(loop);
  t.cancel();
  EXPECT_TRUE(fut2.cancelled());
  run_briefly(loop);
  fut3.set_result(42);
  EXPECT_EQ(loop.run_until_complete(t), 42);
  EXPECT_FALSE(fut3.cancelled());
  EXPECT_FALSE(t.cancelled());
}

TEST(TaskCancel, test_cancel_current_task) {
  kettle::EventLoop loop;
  Task<int> t;
  auto task = [&]() -> Coro<int> {
    t.cancel();
    co_await kettle::sleep(100s);  // cancelled at once
    co_return 12;
  };
  t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(task()); }());
  EXPECT_FALSE(t.cancelled());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
  EXPECT_EQ(loop.core().timers.size(), 0u);
}

TEST(TaskCancel, test_cancel_at_end) {
  kettle::EventLoop loop;
  Task<int> t;
  auto task = [&]() -> Coro<int> {
    t.cancel();  // the coroutine ends right after its task is cancelled
    co_return 12;
  };
  t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(task()); }());
  EXPECT_FALSE(t.cancelled());
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(t.cancel());
}

TEST(TaskCancel, test_cancel_with_message_then_future_result) {
  for (std::string msg : {std::string(), std::string("my message")}) {
    auto sleeper = []() -> Coro<> { co_await kettle::sleep(10s); };
    auto coro = [&]() -> Coro<> {
      Task<> task = kettle::create_task(sleeper());
      co_await kettle::sleep(0);
      task.cancel(msg);
      std::vector<Task<>> one{task};
      co_await kettle::wait(one);
      task.result();
    };
    try {
      kettle::run(coro());
      ADD_FAILURE() << "expected CancelledError";
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), msg);
    }
  }
}

TEST(TaskCancel, test_cancel_with_message_before_starting_task) {
  bool started = false;
  auto sleeper = [&]() -> Coro<> {
    started = true;
    co_await kettle::sleep(10s);
  };
  auto coro = [&]() -> Coro<> {
    Task<> task = kettle::create_task(sleeper());
    task.cancel("my message");  // before it ever ran
    std::vector<Task<>> one{task};
    co_await kettle::wait(one);
    (void)task.exception();
  };
  try {
    kettle::run(coro());
    ADD_FAILURE() << "expected CancelledError";
  } catch (const kettle::CancelledError& e) {
    EXPECT_EQ(e.message(), "my message");
  }
  EXPECT_FALSE(started);  // a task cancelled before it starts never runs its body
}

TEST(TaskCancel, test_cancelling) {
  kettle::EventLoop loop;
  auto task = []() -> Coro<> { co_await kettle::sleep(10s); };
  Task<> t =
      loop.run_until_complete([&]() -> Coro<Task<>> { co_return kettle::create_task(task()); }());
  EXPECT_EQ(t.cancelling(), 0u);
  EXPECT_TRUE(t.cancel());
  EXPECT_EQ(t.cancelling(), 1u);
  EXPECT_TRUE(t.cancel());  // 3.13: a second request is taken too
  EXPECT_EQ(t.cancelling(), 2u);
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
}

TEST(TaskCancel, test_uncancel_basic) {
  kettle::EventLoop loop;
  auto task = []() -> Coro<> {
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      kettle::current_task().uncancel();
    }
    co_await kettle::sleep(10s);
  };
  Task<> t = loop.run_until_complete([&]() -> Coro<Task<>> {
    Task<> t = kettle::create_task(task());
    co_await kettle::sleep(10ms);
    co_return t;
  }());
  EXPECT_TRUE(t.cancel());  // cancel the first sleep
  EXPECT_EQ(t.cancelling(), 1u);
  EXPECT_FALSE(t.cancelled());
  loop.run_until_complete(kettle::sleep(10ms));
  EXPECT_EQ(t.cancelling(), 0u);  // after uncancel()
  EXPECT_FALSE(t.cancelled());
  EXPECT_TRUE(t.cancel());  // cancel the second sleep
  EXPECT_EQ(t.cancelling(), 1u);
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
  EXPECT_TRUE(t.cancelled());
  t.uncancel();  // no longer has an effect
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(t.done());
}

TEST(TaskCancel, test_uncancel_structured_blocks) {
  // A timeout written by hand with uncancel(), as in CPython's test.
  struct Outcome {
    bool timed_out = false, structured_block_finished = false, outer_code_reached = false;
  };
  auto make_request_with_timeout = [](std::chrono::milliseconds sleep_d,
                                      std::chrono::milliseconds timeout_d) -> Coro<Outcome> {
    Outcome o;
    kettle::TaskRef task = kettle::current_task();
    kettle::TimerHandle h = kettle::get_running_loop().call_later(timeout_d, [&o, task]() mutable {
      o.timed_out = true;
      task.cancel();
    });
    try {
      co_await kettle::sleep(sleep_d);
      o.structured_block_finished = true;
      h.cancel();
    } catch (const kettle::CancelledError&) {
      h.cancel();
      if (!(o.timed_out && task.uncancel() == 0)) throw;
    }
    co_await kettle::sleep(0);  // outer code not affected by the timeout
    o.outer_code_reached = true;
    co_return o;
  };
  Outcome a = kettle::run(make_request_with_timeout(10ms, 100ms));
  EXPECT_FALSE(a.timed_out);
  EXPECT_TRUE(a.structured_block_finished);
  EXPECT_TRUE(a.outer_code_reached);
  Outcome b = kettle::run(make_request_with_timeout(100ms, 10ms));
  EXPECT_TRUE(b.timed_out);
  EXPECT_FALSE(b.structured_block_finished);
  EXPECT_TRUE(b.outer_code_reached);
}

TEST(TaskCancel, test_sleep_cancel) {
  kettle::EventLoop loop;
  auto sleeper = []() -> Coro<int> {
    co_await kettle::sleep(10s);
    co_return 10;
  };
  Task<int> t = loop.run_until_complete(
      [&]() -> Coro<Task<int>> { co_return kettle::create_task(sleeper()); }());
  run_briefly(loop);
  EXPECT_EQ(loop.core().timers.size(), 1u);
  t.cancel();
  EXPECT_EQ(loop.core().timers.size(), 0u);  // the timer is gone at once
  EXPECT_THROW(loop.run_until_complete(t), kettle::CancelledError);
  EXPECT_TRUE(t.cancelled());
}

TEST(TaskCancel, test_cancel_awaited_task_cancels_it) {
  auto inner = []() -> Coro<int> {
    co_await kettle::sleep(10s);
    co_return 1;
  };
  auto outer = [&](Task<int>* seen) -> Coro<int> {
    Task<int> t = kettle::create_task(inner());
    *seen = t;
    co_return co_await t;
  };
  kettle::run([&]() -> Coro<> {
    Task<int> inner_task;
    Task<int> o = kettle::create_task(outer(&inner_task));
    co_await kettle::sleep(1ms);
    o.cancel("stop");
    try {
      co_await o;
      ADD_FAILURE();
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), "stop");
    }
    EXPECT_TRUE(inner_task.cancelled());
  }());
}

// Cancellation and gather ----------------------------------------------------------------

TEST(GatherCancel, test_one_cancellation) {
  kettle::run([]() -> Coro<> {
    std::vector<kettle::Future<int>> fs(5);
    auto fut = kettle::gather(fs);
    int callbacks = 0;
    fut.add_done_callback([&] { ++callbacks; });
    fs[0].set_result(1);
    fs[1].cancel();
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_TRUE(fut.done());
    EXPECT_FALSE(fut.cancelled());  // a child cancelled: gather itself is not
    EXPECT_THROW(std::rethrow_exception(fut.exception()), kettle::CancelledError);
    fs[2].set_result(3);  // does nothing
    fs[3].cancel();
    fs[4].set_exception(std::make_exception_ptr(std::runtime_error("x")));
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_EQ(callbacks, 1);
  }());
}

TEST(GatherCancel, test_cancellation_broadcast) {
  int proof = 0;
  kettle::Future<> waiter;
  auto inner = [&]() -> Coro<> {
    co_await waiter;
    proof += 1;
  };
  kettle::run([&]() -> Coro<> {
    Task<> child1 = kettle::create_task(inner());
    Task<> child2 = kettle::create_task(inner());
    kettle::GatheringFuture<std::tuple<std::monostate, std::monostate>>* gatherer = nullptr;
    std::optional<kettle::GatheringFuture<std::tuple<std::monostate, std::monostate>>> g;
    auto outer = [&]() -> Coro<> {
      g.emplace(kettle::gather(child1, child2));
      gatherer = &*g;
      co_await *g;
      proof += 100;
    };
    Task<> f = kettle::create_task(outer());
    co_await kettle::sleep(0);
    EXPECT_TRUE(f.cancel());
    EXPECT_THROW(co_await f, kettle::CancelledError);
    EXPECT_FALSE(gatherer->cancel());
    EXPECT_TRUE(waiter.cancelled());
    EXPECT_TRUE(child1.cancelled());
    EXPECT_TRUE(child2.cancelled());
    co_await kettle::sleep(0);
    EXPECT_EQ(proof, 0);
  }());
}

TEST(GatherCancel, test_cancel_gather_1) {
  // A gathering future refuses to be cancelled once all children are done.
  kettle::run([]() -> Coro<> {
    kettle::Future<int> fut;
    auto child_coro = [](kettle::Future<int> f) -> Coro<int> { co_return co_await f; };
    auto gather_future = kettle::gather(child_coro(fut));
    Task<int> child_waiter = kettle::create_task(child_coro(fut));
    std::optional<bool> cancel_result;
    child_waiter.add_done_callback([&] { cancel_result = gather_future.cancel(); });
    fut.set_result(42);
    co_await child_waiter;
    auto [v] = co_await gather_future;
    co_await kettle::sleep(0);
    EXPECT_EQ(cancel_result, false);
    EXPECT_FALSE(gather_future.cancelled());
    EXPECT_EQ(v, 42);
  }());
}

TEST(GatherCancel, test_cancel_gather_2) {
  for (std::string msg : {std::string(), std::string("my message")}) {
    auto test = []() -> Coro<> {
      double time = 0;
      for (;;) {
        time += 0.05;
        co_await kettle::gather(kettle::return_exceptions, kettle::sleep(0.05));
        if (time > 1) co_return;
      }
    };
    auto main_ = [&]() -> Coro<> {
      Task<> qwe = kettle::create_task(test());
      co_await kettle::sleep(0.2);
      qwe.cancel(msg);
      co_await qwe;
    };
    try {
      kettle::run(main_());
      ADD_FAILURE() << "expected CancelledError";
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), msg);
    }
  }
}

// shield -----------------------------------------------------------------------------------

TEST(Shield, test_shield_result) {
  kettle::run([]() -> Coro<> {
    kettle::Future<int> inner;
    auto outer = kettle::shield(inner);
    inner.set_result(42);
    EXPECT_EQ(co_await outer, 42);
  }());
}

TEST(Shield, test_shield_exception) {
  kettle::run([]() -> Coro<> {
    kettle::Future<int> inner;
    auto outer = kettle::shield(inner);
    co_await kettle::sleep(0);
    inner.set_exception(std::make_exception_ptr(std::runtime_error("expected")));
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_EQ(kettle::describe(outer.exception()), "std::runtime_error: expected");
  }());
}

TEST(Shield, test_shield_cancel_inner) {
  kettle::run([]() -> Coro<> {
    kettle::Future<int> inner;
    auto outer = kettle::shield(inner);
    co_await kettle::sleep(0);
    inner.cancel();
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_TRUE(outer.cancelled());
  }());
}

TEST(Shield, test_shield_cancel_outer) {
  kettle::run([]() -> Coro<> {
    kettle::Future<int> inner;
    auto outer = kettle::shield(inner);
    co_await kettle::sleep(0);
    EXPECT_TRUE(outer.cancel());
    co_await kettle::sleep(0);
    EXPECT_TRUE(outer.cancelled());
    EXPECT_FALSE(inner.cancelled());
    inner.cancel();
  }());
}

TEST(Shield, test_shield_effect) {
  int proof = 0;
  kettle::Future<> waiter;
  auto inner = [&]() -> Coro<> {
    co_await waiter;
    proof += 1;
  };
  auto outer = [&]() -> Coro<> {
    co_await kettle::shield(inner());
    proof += 100;
  };
  kettle::run([&]() -> Coro<> {
    Task<> f = kettle::create_task(outer());
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    f.cancel();
    EXPECT_THROW(co_await f, kettle::CancelledError);
    waiter.set_result();
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_EQ(proof, 1);
  }());
}

TEST(Shield, test_gather_shield) {
  kettle::run([]() -> Coro<> {
    kettle::Future<int> child1, child2;
    auto inner1 = kettle::shield(child1);
    auto inner2 = kettle::shield(child2);
    auto parent = kettle::gather(inner1, inner2);
    co_await kettle::sleep(0);
    parent.cancel();  // cancels inner1 and inner2, not child1 and child2
    co_await kettle::sleep(0);
    EXPECT_THROW(std::rethrow_exception(parent.exception()), kettle::CancelledError);
    EXPECT_TRUE(inner1.cancelled());
    EXPECT_TRUE(inner2.cancelled());
    EXPECT_FALSE(child1.cancelled());
    child1.set_result(1);
    child2.set_result(2);
    co_await kettle::sleep(0);
  }());
}

TEST(Shield, test_shielded_timeout) {
  auto coro = []() -> Coro<std::string> {
    co_await kettle::sleep(100ms);
    co_return "done";
  };
  kettle::run([&]() -> Coro<> {
    Task<std::string> task = kettle::create_task(coro());
    EXPECT_THROW(co_await kettle::wait_for(kettle::shield(task), 10ms), kettle::TimeoutError);
    EXPECT_FALSE(task.done());
    EXPECT_FALSE(task.cancelled());
    EXPECT_EQ(co_await task, "done");
  }());
}

TEST(Shield, test_zero_timeout) {
  auto coro = []() -> Coro<std::string> {
    co_await kettle::sleep(10ms);
    co_return "done";
  };
  kettle::run([&]() -> Coro<> {
    Task<std::string> task = kettle::create_task(coro());
    auto shielded = kettle::shield(task);
    EXPECT_THROW(co_await kettle::wait_for(shielded, 0s), kettle::TimeoutError);
    EXPECT_FALSE(task.done());
    EXPECT_FALSE(task.cancelled());
    EXPECT_TRUE(shielded.cancelled());
    EXPECT_EQ(co_await task, "done");
  }());
}

// wait -------------------------------------------------------------------------------------

TEST(Wait, test_wait_first_completed) {
  kettle::run([]() -> Coro<> {
    Task<> a = kettle::create_task(kettle::detail::await_as_coro<void>(kettle::sleep(10s)));
    Task<> b = kettle::create_task(kettle::detail::await_as_coro<void>(kettle::sleep(100ms)));
    std::vector<Task<>> ts{b, a};
    auto [done, pending] = co_await kettle::wait(ts, kettle::FIRST_COMPLETED);
    EXPECT_EQ(done, std::vector<Task<>>{b});
    EXPECT_EQ(pending, std::vector<Task<>>{a});
    EXPECT_FALSE(a.done());
    EXPECT_TRUE(b.done());
    a.cancel();
  }());
}

TEST(Wait, test_wait_really_done) {
  // Futures that finish in the same iteration as the first one count as done.
  auto coro1 = []() -> Coro<> { co_await kettle::sleep(0); };
  kettle::run([&]() -> Coro<> {
    Task<> a = kettle::create_task(coro1());
    Task<> b = kettle::create_task(coro1());
    std::vector<Task<>> ts{b, a};
    auto [done, pending] = co_await kettle::wait(ts, kettle::FIRST_COMPLETED);
    EXPECT_EQ(done.size(), 2u);
    EXPECT_TRUE(pending.empty());
  }());
}

TEST(Wait, test_wait_first_exception) {
  auto exc = []() -> Coro<> {
    throw std::domain_error("err");
    co_return;
  };
  kettle::run([&]() -> Coro<> {
    Task<> a = kettle::create_task(kettle::detail::await_as_coro<void>(kettle::sleep(10s)));
    Task<> b = kettle::create_task(exc());
    std::vector<Task<>> ts{b, a};
    auto t0 = std::chrono::steady_clock::now();
    auto [done, pending] = co_await kettle::wait(ts, kettle::FIRST_EXCEPTION);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_EQ(done, std::vector<Task<>>{b});
    EXPECT_EQ(pending, std::vector<Task<>>{a});
    EXPECT_TRUE(b.exception());
    a.cancel();
  }());
}

TEST(Wait, test_wait_with_exception) {
  auto sleeper = []() -> Coro<> {
    co_await kettle::sleep(150ms);
    throw std::domain_error("really");
  };
  kettle::run([&]() -> Coro<> {
    Task<> a = kettle::create_task(kettle::detail::await_as_coro<void>(kettle::sleep(100ms)));
    Task<> b = kettle::create_task(sleeper());
    std::vector<Task<>> ts{b, a};
    auto [done, pending] = co_await kettle::wait(ts);
    EXPECT_EQ(done.size(), 2u);
    EXPECT_TRUE(pending.empty());
    int errors = 0;
    for (auto& f : done)
      errors += f.exception() ? 1 : 0;
    EXPECT_EQ(errors, 1);
  }());
}

TEST(Wait, test_wait_with_timeout) {
  kettle::run([]() -> Coro<> {
    Task<> a = kettle::create_task(kettle::detail::await_as_coro<void>(kettle::sleep(10ms)));
    Task<> b = kettle::create_task(kettle::detail::await_as_coro<void>(kettle::sleep(3600s)));
    std::vector<Task<>> ts{b, a};
    auto t0 = std::chrono::steady_clock::now();
    auto [done, pending] = co_await kettle::wait(ts, kettle::ALL_COMPLETED, 1s);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_EQ(done, std::vector<Task<>>{a});  // no TimeoutError, nothing cancelled
    EXPECT_EQ(pending, std::vector<Task<>>{b});
    EXPECT_FALSE(b.cancelled());
    EXPECT_EQ(kettle::get_running_loop().core().timers.size(), 1u);  // b's sleep only
    b.cancel();
    EXPECT_THROW(co_await b, kettle::CancelledError);
    EXPECT_EQ(kettle::get_running_loop().core().timers.size(), 0u);
  }());
}

TEST(Wait, test_wait_empty_raises) {
  kettle::run([]() -> Coro<> {
    std::vector<Task<>> none;
    EXPECT_THROW(co_await kettle::wait(none), kettle::ValueError);
  }());
}

// as_completed -------------------------------------------------------------------------------

TEST(AsCompleted, test_as_completed) {
  auto sleeper = [](std::chrono::milliseconds dt, std::string x) -> Coro<std::string> {
    co_await kettle::sleep(dt);
    co_return x;
  };
  kettle::run([&]() -> Coro<> {
    std::vector<Coro<std::string>> aws;
    aws.push_back(sleeper(150ms, "c"));
    aws.push_back(sleeper(10ms, "a"));
    aws.push_back(sleeper(20ms, "b"));
    std::vector<std::string> values;
    for (auto next : kettle::as_completed(aws))
      values.push_back(co_await next);
    EXPECT_EQ(values, (std::vector<std::string>{"a", "b", "c"}));
  }());
}

TEST(AsCompleted, test_as_completed_with_timeout) {
  auto sleeper = [](std::chrono::milliseconds dt, std::string x) -> Coro<std::string> {
    co_await kettle::sleep(dt);
    co_return x;
  };
  kettle::run([&]() -> Coro<> {
    Task<std::string> a = kettle::create_task(sleeper(10ms, "a"));
    Task<std::string> b = kettle::create_task(sleeper(3600s, "b"));
    std::vector<Task<std::string>> ts{a, b};
    std::vector<std::pair<int, std::string>> values;
    for (auto next : kettle::as_completed(ts, 1s)) {
      try {
        values.emplace_back(1, co_await next);
      } catch (const kettle::TimeoutError&) {
        values.emplace_back(2, "timeout");
      }
    }
    EXPECT_EQ(values.size(), 2u);
    EXPECT_EQ(values[0], (std::pair<int, std::string>{1, "a"}));
    EXPECT_EQ(values[1].first, 2);
    EXPECT_FALSE(b.done());  // as_completed does not cancel
    b.cancel();
  }());
}

TEST(AsCompleted, test_as_completed_concurrent) {
  auto sleeper = [](std::chrono::milliseconds dt, std::string x) -> Coro<std::string> {
    co_await kettle::sleep(dt);
    co_return x;
  };
  kettle::run([&]() -> Coro<> {
    std::vector<Coro<std::string>> aws;
    aws.push_back(sleeper(50ms, "a"));
    aws.push_back(sleeper(50ms, "b"));
    auto ac = kettle::as_completed(aws);
    // Both steps awaited concurrently, from two tasks.
    auto take = [](kettle::AsCompleted<std::string>::Next n) -> Coro<std::string> {
      co_return co_await n;
    };
    auto it = ac.begin();
    Task<std::string> t1 = kettle::create_task(take(*it++));
    Task<std::string> t2 = kettle::create_task(take(*it++));
    std::vector<Task<std::string>> both{t1, t2};
    auto [done, pending] = co_await kettle::wait(both);
    std::set<std::string> got;
    for (auto& t : done)
      got.insert(t.result());
    EXPECT_EQ(got, (std::set<std::string>{"a", "b"}));
  }());
}

TEST(AsCompleted, test_as_completed_exception_and_cancelled_waiter_keeps_result) {
  auto fail = []() -> Coro<int> {
    co_await kettle::sleep(5ms);
    throw std::domain_error("boom");
  };
  kettle::Event go;
  auto ok = [&]() -> Coro<int> {
    co_await go.wait();
    co_return 7;
  };
  kettle::run([&]() -> Coro<> {
    std::vector<Coro<int>> aws;
    aws.push_back(fail());
    aws.push_back(ok());
    auto ac = kettle::as_completed(aws);
    auto it = ac.begin();
    EXPECT_THROW(co_await *it++, std::domain_error);
    // A waiter cancelled while waiting takes nothing away from the next one.
    auto take = [](kettle::AsCompleted<int>::Next n) -> Coro<int> { co_return co_await n; };
    Task<int> impatient = kettle::create_task(take(*it));
    co_await kettle::sleep(1ms);
    impatient.cancel();
    EXPECT_THROW(co_await impatient, kettle::CancelledError);
    go.set();
    EXPECT_EQ(co_await *it, 7);
  }());
}

// Hardening ------------------------------------------------------------------------------

// Two cancel() calls on a suspended task: one CancelledError, with the first message (the
// awaitable took the first request), and cancelling() counts both.
TEST(Tasks, test_cancel_with_message_twice) {
  kettle::run([]() -> Coro<> {
    auto sleeper = []() -> Coro<> { co_await kettle::sleep(3600s); };
    Task<> t = kettle::create_task(sleeper());
    co_await kettle::sleep(0);
    EXPECT_TRUE(t.cancel("a"));
    EXPECT_TRUE(t.cancel("b"));
    EXPECT_EQ(t.cancelling(), 2u);
    try {
      co_await t;
      ADD_FAILURE() << "no CancelledError";
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), "a");
    }
    // Not suspended yet (a request no awaitable has taken): the last message wins, as in
    // asyncio.
    Task<> u = kettle::create_task(sleeper());
    u.cancel("a");
    u.cancel("b");
    try {
      co_await u;
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), "b");
    }
  }());
}

// The awaited task takes the first cancel and returns normally; a second cancel arriving
// before the awaiting task runs again is not lost (asyncio sets _must_cancel; it raises
// CancelledError("y") there, kettle keeps the first message).
TEST(Tasks, test_cancel_twice_after_the_awaited_task_swallowed_the_first) {
  kettle::run([]() -> Coro<> {
    auto inner = []() -> Coro<int> {
      try {
        co_await kettle::sleep(3600s);
      } catch (const kettle::CancelledError&) {
        co_return 5;
      }
      co_return 0;
    };
    Task<int> i = kettle::create_task(inner());
    auto outer = [](Task<int> i) -> Coro<int> { co_return co_await i; };
    Task<int> t = kettle::create_task(outer(i));
    co_await kettle::sleep(0);
    EXPECT_TRUE(t.cancel("x"));
    co_await kettle::sleep(0);
    EXPECT_TRUE(i.done());
    EXPECT_FALSE(t.done());
    EXPECT_TRUE(t.cancel("y"));
    EXPECT_THROW(co_await t, kettle::CancelledError);
    EXPECT_EQ(t.cancelling(), 2u);
    EXPECT_EQ(i.result(), 5);
  }());
}

// A task awaiting another, cancelled twice: asyncio forwards both requests to the awaited
// task (its cancelling() is 2), and the first message is the one raised.
TEST(Tasks, test_cancel_twice_is_forwarded_to_the_awaited_task) {
  kettle::run([]() -> Coro<> {
    std::string seen;
    std::uint32_t inner_cancelling = 0;
    auto inner = [&]() -> Coro<> {
      try {
        co_await kettle::sleep(3600s);
      } catch (const kettle::CancelledError& e) {
        seen = e.message();
        inner_cancelling = kettle::current_task().cancelling();
        throw;
      }
    };
    Task<> b = kettle::create_task(inner());
    auto outer = [](Task<> b) -> Coro<> { co_await b; };
    Task<> a = kettle::create_task(outer(b));
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_TRUE(a.cancel("x"));
    EXPECT_TRUE(a.cancel("y"));
    EXPECT_EQ(b.cancelling(), 2u);
    EXPECT_EQ(a.cancelling(), 2u);
    try {
      co_await a;
      ADD_FAILURE() << "no CancelledError";
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), "x");
    }
    EXPECT_EQ(seen, "x");
    EXPECT_EQ(inner_cancelling, 2u);
  }());
}

TEST(Tasks, test_empty_task_raises_invalid_state) {
  Task<int> empty;
  EXPECT_THROW(empty.done(), kettle::InvalidStateError);
  EXPECT_THROW(empty.cancelled(), kettle::InvalidStateError);
  EXPECT_THROW(empty.cancel(), kettle::InvalidStateError);
  EXPECT_THROW(empty.result(), kettle::InvalidStateError);
  EXPECT_THROW(empty.exception(), kettle::InvalidStateError);
  EXPECT_THROW(empty.get_name(), kettle::InvalidStateError);
  EXPECT_THROW(empty.add_done_callback([] {}), kettle::InvalidStateError);
  kettle::run([&]() -> Coro<> {
    EXPECT_THROW(co_await empty, kettle::InvalidStateError);
    Task<int> t = kettle::create_task(value_after(1ms, 1));
    Task<int> moved = std::move(t);
    EXPECT_THROW(co_await t, kettle::InvalidStateError);  // moved from
    EXPECT_THROW((void)kettle::gather(t), kettle::InvalidStateError);
    EXPECT_EQ(co_await moved, 1);
    kettle::TaskRef ref;
    EXPECT_THROW(co_await ref, kettle::InvalidStateError);
  }());
}

// A done callback added before the await has run when the await returns (asyncio's awaiter
// is a done callback too, added after it); one added after the await started runs after.
TEST(Tasks, test_done_callbacks_and_awaiters_keep_registration_order) {
  kettle::run([]() -> Coro<> {
    std::vector<std::string> order;
    Task<int> t = kettle::create_task(value_after(1ms, 1));
    t.add_done_callback([&] { order.push_back("before"); });
    auto late = [&]() -> Coro<> {
      co_await kettle::sleep(0);
      t.add_done_callback([&] { order.push_back("after"); });
    };
    Task<> l = kettle::create_task(late());
    co_await t;
    order.push_back("awaiter");
    co_await l;
    co_await kettle::sleep(0);
    EXPECT_EQ(order, (std::vector<std::string>{"before", "awaiter", "after"}));
  }());
}

TEST(Tasks, test_sleep_huge_and_nan) {
  EXPECT_THROW((void)kettle::sleep(std::nan("")), kettle::ValueError);
  EXPECT_THROW((void)kettle::sleep(std::chrono::duration<double>(std::nan(""))),
               kettle::ValueError);
  kettle::run([]() -> Coro<> {
    // Huge sleeps never end early (they used to overflow): cancel them instead.
    auto sleeper = [](auto d) -> Coro<> { co_await kettle::sleep(d); };
    Task<> a = kettle::create_task(sleeper(std::chrono::hours::max()));
    Task<> b = kettle::create_task(sleeper(std::chrono::duration<double>(1e20)));
    Task<> c = kettle::create_task(sleeper(std::chrono::duration<double>(-1e300)));  // 0
    for (int i = 0; i < 1000 && !c.done(); ++i)
      co_await kettle::sleep(1ms);
    co_await kettle::sleep(5ms);  // a and b had their chance to end early
    EXPECT_FALSE(a.done());
    EXPECT_FALSE(b.done());
    EXPECT_TRUE(c.done());
    a.cancel();
    b.cancel();
    EXPECT_THROW(co_await a, kettle::CancelledError);
    EXPECT_THROW(co_await b, kettle::CancelledError);
  }());
}

// as_completed ---------------------------------------------------------------------------

// A task iterating as_completed cancelled twice (legal; also what a timeout and a parent
// do together) was put on the ready queue twice: a use-after-free.
TEST(AsCompleted, test_as_completed_cancelled_twice) {
  kettle::run([]() -> Coro<> {
    auto iterate = []() -> Coro<> {
      std::vector<Coro<int>> aws;
      aws.push_back(value_after(3600s, 1));
      for (auto next : kettle::as_completed(aws))
        (void)co_await next;
    };
    Task<> t = kettle::create_task(iterate());
    co_await kettle::sleep(0);
    t.cancel();
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);
    co_await kettle::sleep(1ms);
    // The same under a timeout that fires about when a parent cancels. A cancel that
    // reaches the task before it is done wins over the timeout (as in asyncio, where the
    // timeout sees cancelling() > 0); one that comes after finds it done.
    for (auto delay : {0ms, 1ms, 2ms}) {
      Task<> u = kettle::create_task(kettle::wait_for(iterate(), 1ms));
      co_await kettle::sleep(delay);
      if (u.cancel())
        EXPECT_THROW(co_await u, kettle::CancelledError);
      else
        EXPECT_THROW(co_await u, kettle::TimeoutError);
    }
  }());
}

// A task that cancels itself and then awaits an as_completed step gives the step its
// pending request at once; a second cancel() before the task runs must not wake it again
// (it resumed inside an unrelated sleep).
TEST(AsCompleted, test_as_completed_self_cancel_then_cancel) {
  kettle::run([]() -> Coro<> {
    std::vector<Task<int>> ts{kettle::create_task(value_after(3600s, 1))};
    int resumed = 0;
    std::chrono::steady_clock::duration slept{};
    auto body = [&]() -> Coro<> {
      auto ac = kettle::as_completed(ts);
      (void)kettle::current_task().cancel("self");
      try {
        (void)co_await ac.next();
      } catch (const kettle::CancelledError&) {
      }
      ++resumed;
      auto t0 = std::chrono::steady_clock::now();
      co_await kettle::sleep(100ms);  // a stray second wake-up would end it early
      slept = std::chrono::steady_clock::now() - t0;
    };
    Task<> t = kettle::create_task(body());
    co_await kettle::sleep(0);  // t runs: cancels itself, suspends in the step
    t.cancel("again");          // before t runs again
    co_await t;
    EXPECT_EQ(resumed, 1);
    EXPECT_GE(slept, 100ms);
    ts[0].cancel();
  }());
}

TEST(AsCompleted, test_as_completed_resume_iterator) {
  kettle::run([]() -> Coro<> {
    std::vector<Coro<int>> aws;
    for (int i = 0; i < 4; ++i)
      aws.push_back(value_after(std::chrono::milliseconds(i), i));
    auto ac = kettle::as_completed(aws);
    std::vector<int> collected;
    int iterations = 0;
    for (auto next : ac) {
      collected.push_back(co_await next);
      if (++iterations == 2) break;
    }
    EXPECT_EQ(collected.size(), 2u);
    for (auto next : ac)  // resumes where it stopped
      collected.push_back(co_await next);
    std::sort(collected.begin(), collected.end());
    EXPECT_EQ(collected, (std::vector<int>{0, 1, 2, 3}));
  }());
}

TEST(AsCompleted, test_as_completed_duplicate_coroutines) {
  kettle::run([]() -> Coro<> {
    Task<std::string> ham = kettle::create_task([]() -> Coro<std::string> { co_return "ham"; }());
    Task<std::string> spam = kettle::create_task([]() -> Coro<std::string> { co_return "spam"; }());
    std::vector<Task<std::string>> ts{ham, ham, spam};
    std::vector<std::string> result;
    for (auto next : kettle::as_completed(ts))
      result.push_back(co_await next);
    std::sort(result.begin(), result.end());
    EXPECT_EQ(result, (std::vector<std::string>{"ham", "spam"}));
  }());
}

TEST(Wait, test_wait_duplicate_coroutines) {
  kettle::run([]() -> Coro<> {
    Task<std::string> c = kettle::create_task([]() -> Coro<std::string> { co_return "test"; }());
    Task<std::string> s = kettle::create_task([]() -> Coro<std::string> { co_return "spam"; }());
    std::vector<Task<std::string>> ts{c, c, s};
    auto [done, pending] = co_await kettle::wait(ts);
    EXPECT_TRUE(pending.empty());
    std::set<std::string> got;
    for (auto& t : done)
      got.insert(t.result());
    EXPECT_EQ(done.size(), 2u);
    EXPECT_EQ(got, (std::set<std::string>{"test", "spam"}));
  }());
}

// kettle::wait takes Futures completed by other threads, as gather and as_completed do.
TEST(Wait, test_wait_futures_first_completed) {
  kettle::run([]() -> Coro<> {
    kettle::Future<int> quick, never;
    std::thread t([quick] {
      std::this_thread::sleep_for(5ms);
      quick.set_result(1);
    });
    std::vector<kettle::Future<int>> fs{never, quick};
    auto [done, pending] = co_await kettle::wait(fs, kettle::FIRST_COMPLETED);
    t.join();
    EXPECT_EQ(done.size(), 1u);
    EXPECT_TRUE(done.size() == 1 && done[0] == quick);
    EXPECT_EQ(pending.size(), 1u);
    EXPECT_TRUE(pending.size() == 1 && pending[0] == never);
    EXPECT_FALSE(never.cancelled());                                         // wait cancels nothing
    auto [d2, p2] = co_await kettle::wait(fs, kettle::ALL_COMPLETED, 10ms);  // times out
    EXPECT_EQ(d2.size(), 1u);
    EXPECT_EQ(p2.size(), 1u);
    // Cancelling the waiting task leaves the futures alone.
    auto waits = [](std::vector<kettle::Future<int>> fs) -> Coro<> {
      (void)co_await kettle::wait(fs);
    };
    Task<> w = kettle::create_task(waits(fs));
    co_await kettle::sleep(1ms);
    w.cancel();
    EXPECT_THROW(co_await w, kettle::CancelledError);
    EXPECT_FALSE(never.done());
  }());
}

// Exceptions raised on this thread: `throw` and std::rethrow_exception both start in the
// unwinder's _Unwind_RaiseException, which this program interposes to count them (a bare
// `throw;` goes through _Unwind_Resume_or_Rethrow and is not counted; kettle's cancellation
// path does not use one).
namespace {
thread_local long raises = 0;

Coro<> sleep_at_depth(int depth) {
  if (depth > 1)
    co_await sleep_at_depth(depth - 1);
  else
    co_await kettle::sleep(3600s);
}
}  // namespace

extern "C" _Unwind_Reason_Code _Unwind_RaiseException(_Unwind_Exception* e) {
  using Fn = _Unwind_Reason_Code (*)(_Unwind_Exception*);
  static const Fn real = [] {
    auto f = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "_Unwind_RaiseException"));
    if (!f) {
      std::fputs("kettle_tests: _Unwind_RaiseException not found in a shared library\n", stderr);
      std::abort();
    }
    return f;
  }();
  ++raises;
  return real(e);
}

// Cancellation costs one exception per coroutine level between the task and what it awaits
// (each level rethrows once to its awaiter), and nothing more: cancel(), waking the task and
// settling it raise nothing.
TEST(TaskCancel, CancelRaisesOncePerCoroutineLevel) {
  kettle::run([]() -> Coro<> {
    for (int depth : {1, 2, 5}) {
      Task<> t = kettle::create_task(sleep_at_depth(depth));
      co_await kettle::sleep(0);  // asleep now
      long before = raises;
      t.cancel();
      while (!t.done())
        co_await kettle::sleep(0);
      EXPECT_EQ(raises - before, depth) << "depth " << depth;
      EXPECT_TRUE(t.cancelled());
    }
  }());
}
