// kettle::gather. Names follow CPython's test_tasks.py (GatherTestsBase) where a test
// mirrors one.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
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
Coro<> nothing_after(std::chrono::milliseconds d) {
  co_await kettle::sleep(d);
}
}  // namespace

TEST(Gather, test_result_tuple_in_argument_order) {
  auto body = []() -> Coro<> {
    // Completion order is 3, 2, 1; results come in argument order.
    auto [a, b, c] =
        co_await kettle::gather(value_after(30ms, 1), value_after(20ms, 2), value_after(10ms, 3));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    EXPECT_EQ(c, 3);
  };
  kettle::run(body());
}

TEST(Gather, test_children_run_concurrently) {
  // Every child has started before any finishes (an ordering, not a time bound).
  std::vector<std::string> events;
  auto child = [&](int i) -> Coro<> {
    events.push_back("start " + std::to_string(i));
    co_await kettle::sleep(10ms);
    events.push_back("end " + std::to_string(i));
  };
  auto body = [&]() -> Coro<> { co_await kettle::gather(child(0), child(1), child(2)); };
  kettle::run(body());
  ASSERT_EQ(events.size(), 6u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(events[static_cast<std::size_t>(i)].rfind("start", 0), 0u);
}

TEST(Gather, test_mixed_types_and_void_children) {
  auto str = []() -> Coro<std::string> { co_return "s"; };
  auto body = [&]() -> Coro<> {
    Task<int> t = kettle::create_task(value_after(1ms, 9));
    std::tuple<std::string, std::monostate, int> r =
        co_await kettle::gather(str(), nothing_after(1ms), t);
    EXPECT_EQ(std::get<0>(r), "s");
    EXPECT_EQ(std::get<2>(r), 9);
  };
  kettle::run(body());
}

TEST(Gather, test_range_of_coros) {
  auto body = []() -> Coro<> {
    std::vector<Coro<int>> coros;
    for (int i = 0; i < 10; ++i)
      coros.push_back(value_after(std::chrono::milliseconds(10 - i), i));
    std::vector<int> r = co_await kettle::gather(coros);
    EXPECT_EQ(r, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  };
  kettle::run(body());
}

TEST(Gather, test_range_of_tasks_keeps_tasks_usable) {
  auto body = []() -> Coro<> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 5; ++i)
      tasks.push_back(kettle::create_task(value_after(1ms, i)));
    std::vector<int> r = co_await kettle::gather(tasks);
    EXPECT_EQ(r, (std::vector<int>{0, 1, 2, 3, 4}));
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(tasks[i].result(), i);  // copied, not stolen
  };
  kettle::run(body());
}

TEST(Gather, test_empty_range) {
  auto body = []() -> Coro<> {
    std::vector<Coro<int>> none;
    auto g = kettle::gather(none);
    EXPECT_TRUE(g.done());
    std::vector<int> r = co_await g;
    EXPECT_TRUE(r.empty());
  };
  kettle::run(body());
}

TEST(Gather, test_one_exception) {
  // The first exception propagates at once; the other children keep running.
  int finished = 0;
  kettle::Event release;
  auto counted = [&](std::chrono::seconds d) -> Coro<int> {
    co_await kettle::sleep(d);
    ++finished;
    co_return 0;
  };
  auto released = [&]() -> Coro<int> {
    co_await release.wait();
    ++finished;
    co_return 0;
  };
  auto body = [&]() -> Coro<> {
    try {
      co_await kettle::gather(counted(3600s), fail_after(5ms, "first"), released());
      ADD_FAILURE() << "gather did not raise";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "first");
    }
    EXPECT_EQ(finished, 0);  // did not wait for the others (one sleeps for an hour)
    release.set();
    while (finished < 1)
      co_await kettle::sleep(5ms);  // siblings were not cancelled: the released one finishes
    for (kettle::TaskRef t : kettle::all_tasks())
      if (t != kettle::current_task()) t.cancel();
  };
  kettle::run(body());
}

TEST(Gather, test_late_exceptions_are_not_reported) {
  // After gather propagated the first exception, later child failures are retrieved by
  // gather (as asyncio does), so the loop does not report them as never retrieved.
  std::vector<std::string> reports;
  kettle::RunOptions opts;
  opts.exception_handler = [&](kettle::EventLoop&, const kettle::ExceptionContext& c) {
    reports.push_back(c.message);
  };
  auto body = []() -> Coro<> {
    EXPECT_THROW(co_await kettle::gather(fail_after(1ms, "a"), fail_after(10ms, "b")),
                 std::runtime_error);
    co_await kettle::sleep(30ms);
  };
  kettle::run(body(), opts);
  EXPECT_TRUE(reports.empty());
}

TEST(Gather, test_return_exceptions) {
  auto body = []() -> Coro<> {
    auto [a, b, c, d] =
        co_await kettle::gather(kettle::return_exceptions, value_after(3ms, 3), value_after(1ms, 1),
                                fail_after(2ms, "exc"), fail_after(4ms, "exc2"));
    EXPECT_EQ(a.value(), 3);
    EXPECT_EQ(b.value(), 1);
    EXPECT_FALSE(c.has_value());
    EXPECT_EQ(kettle::describe(c.exception()), "std::runtime_error: exc");
    EXPECT_THROW(c.value(), std::runtime_error);
    EXPECT_FALSE(d);
    EXPECT_EQ(kettle::describe(d.exception()), "std::runtime_error: exc2");
  };
  kettle::run(body());
}

TEST(Gather, test_return_exceptions_range) {
  auto body = []() -> Coro<> {
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(1ms, 1));
    coros.push_back(fail_after(1ms, "x"));
    std::vector<kettle::Result<int>> r = co_await kettle::gather(kettle::return_exceptions, coros);
    EXPECT_EQ(r.size(), 2u);
    if (r.size() == 2) {
      EXPECT_EQ(r[0].value(), 1);
      EXPECT_FALSE(r[1].has_value());
    }
  };
  kettle::run(body());
}

TEST(Gather, test_exceptions_through_gather_and_three_levels) {
  struct L {
    static Coro<int> l3() {
      co_await kettle::sleep(1ms);
      throw std::invalid_argument("from level 3");
    }
    static Coro<int> l2() { co_return co_await l3(); }
    static Coro<int> l1() {
      auto [x] = co_await kettle::gather(l2());
      co_return x;
    }
  };
  EXPECT_THROW(kettle::run(L::l1()), std::invalid_argument);
}

TEST(Gather, test_children_already_done) {
  auto body = []() -> Coro<> {
    Task<int> a = kettle::create_task(value_after(0ms, 1));
    Task<int> b = kettle::create_task(value_after(0ms, 2));
    while (!a.done() || !b.done())
      co_await kettle::sleep(1ms);
    auto g = kettle::gather(a, b);
    EXPECT_TRUE(g.done());  // completes eagerly, as in asyncio
    auto [x, y] = co_await g;
    EXPECT_EQ(x + y, 3);
  };
  kettle::run(body());
}

TEST(Gather, test_nested_gather) {
  auto body = []() -> Coro<> {
    auto inner = kettle::gather(value_after(2ms, 1), value_after(1ms, 2));
    auto [pair, z] = co_await kettle::gather(inner, value_after(1ms, 3));
    EXPECT_EQ(std::get<0>(pair) + std::get<1>(pair) + z, 6);
  };
  kettle::run(body());
}

TEST(Gather, test_gather_of_any_awaitable) {
  auto body = []() -> Coro<> {
    auto [s, v] = co_await kettle::gather(kettle::sleep(1ms), value_after(1ms, 5));
    (void)s;
    EXPECT_EQ(v, 5);
  };
  kettle::run(body());
}

TEST(Gather, test_hundred_thousand_tasks) {
  constexpr int kTasks = 100'000;
  auto child = [](int i) -> Coro<int> {
    co_await kettle::sleep(0);
    co_return i;
  };
  auto body = [&]() -> Coro<long> {
    std::vector<Coro<int>> coros;
    coros.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i)
      coros.push_back(child(i));
    std::vector<int> r = co_await kettle::gather(coros);
    long sum = 0;
    for (int i = 0; i < kTasks; ++i) {
      EXPECT_EQ(r[i], i);
      sum += r[i];
    }
    co_return sum;
  };
  EXPECT_EQ(kettle::run(body()), long(kTasks) * (kTasks - 1) / 2);
}

TEST(Gather, test_move_only_results) {
  auto make = [](int v) -> Coro<std::unique_ptr<int>> { co_return std::make_unique<int>(v); };
  auto body = [&]() -> Coro<> {
    auto [a, b] = co_await kettle::gather(make(1), make(2));
    EXPECT_EQ(*a + *b, 3);
  };
  kettle::run(body());
}
