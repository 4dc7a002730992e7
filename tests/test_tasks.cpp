// kettle::Task, create_task, current_task, all_tasks and sleep.
// Names follow CPython's test_tasks.py where a test mirrors one.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
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
  auto body = []() -> Coro<int> {
    Task<int> a = kettle::create_task(value_after(20ms, 1));
    Task<int> b = kettle::create_task(value_after(20ms, 2));
    auto t0 = std::chrono::steady_clock::now();
    int x = co_await a;
    int y = co_await b;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 35ms);  // both slept at once
    co_return x + y;
  };
  EXPECT_EQ(kettle::run(body()), 3);
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
    co_await t;
    order.push_back("awaiter");  // the callback is scheduled, not called inline
    co_await kettle::sleep(0);
    EXPECT_EQ(order, (std::vector<std::string>{"awaiter", "callback 4"}));
    t.add_done_callback([&] { order.push_back("late"); });  // already done: soon
    EXPECT_EQ(order.size(), 2u);
    co_await kettle::sleep(0);
    EXPECT_EQ(order.back(), "late");
  };
  kettle::run(body());
}

TEST(Tasks, test_exception_never_retrieved_is_reported) {
  Reports r;
  auto body = []() -> Coro<> {
    (void)kettle::create_task(fail_after(0ms, "lost"), "careless");
    co_await kettle::sleep(5ms);
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
    co_await kettle::sleep(5ms);
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
  auto body = []() -> Coro<> {
    auto t0 = std::chrono::steady_clock::now();
    co_await kettle::sleep(-5s);
    co_await kettle::sleep(-1.5);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
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
