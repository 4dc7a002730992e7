// kettle::Future. Names follow CPython's test_futures.py and test_concurrent_futures/.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::Future;

TEST(Futures, test_initial_state) {
  Future<int> f;
  EXPECT_FALSE(f.cancelled());
  EXPECT_FALSE(f.running());
  EXPECT_FALSE(f.done());
}

TEST(Futures, test_result) {
  Future<int> f;
  f.set_result(42);
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.result(), 42);
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_THROW(f.set_result(1), kettle::InvalidStateError);
  EXPECT_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               kettle::InvalidStateError);
  EXPECT_FALSE(f.cancel());
}

TEST(Futures, test_exception) {
  Future<int> f;
  f.set_exception(std::make_exception_ptr(std::runtime_error("bad")));
  EXPECT_THROW(f.result(), std::runtime_error);
  EXPECT_EQ(kettle::describe(f.exception()), "std::runtime_error: bad");
  EXPECT_THROW(f.set_exception(nullptr), kettle::ValueError);
}

TEST(Futures, test_cancel) {
  Future<int> f;
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(f.done());
  EXPECT_TRUE(f.cancel());  // already cancelled: still true, as concurrent.futures
  EXPECT_THROW(f.result(), kettle::CancelledError);
  EXPECT_THROW(f.exception(), kettle::CancelledError);
  EXPECT_THROW(f.set_result(1), kettle::InvalidStateError);
}

TEST(Futures, test_running_cannot_be_cancelled) {
  Future<int> f;
  EXPECT_TRUE(f.set_running_or_notify_cancel());
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.cancel());
  EXPECT_THROW(f.set_running_or_notify_cancel(), kettle::RuntimeError);
  f.set_result(3);
  EXPECT_EQ(f.result(), 3);
  Future<int> g;
  g.cancel();
  EXPECT_FALSE(g.set_running_or_notify_cancel());
}

TEST(Futures, test_result_with_timeout) {
  Future<int> f;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(f.result(50ms), kettle::TimeoutError);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  std::thread t([f] {
    std::this_thread::sleep_for(20ms);
    f.set_result(9);
  });
  EXPECT_EQ(f.result(5s), 9);
  t.join();
}

TEST(Futures, test_result_on_loop_thread_raises) {
  kettle::run([]() -> Coro<> {
    Future<int> f;
    try {
      (void)f.result();
      ADD_FAILURE();
    } catch (const kettle::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("co_await"), std::string::npos);
    }
    f.set_result(1);
    EXPECT_EQ(f.result(), 1);  // done: no waiting needed
    co_return;
  }());
}

TEST(Futures, test_done_callbacks) {
  Future<std::string> f;
  std::vector<std::string> seen;
  f.add_done_callback([&](Future<std::string>& done) { seen.push_back("cb1:" + done.result()); });
  f.add_done_callback([&] { seen.push_back("cb2"); });
  f.add_done_callback([&] { throw std::runtime_error("callback failure is reported"); });
  testing::internal::CaptureStderr();
  f.set_result("x");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(seen, (std::vector<std::string>{"cb1:x", "cb2"}));
  EXPECT_NE(err.find("callback failure is reported"), std::string::npos);
  f.add_done_callback([&] { seen.push_back("late"); });  // done already: at once
  EXPECT_EQ(seen.back(), "late");
}

TEST(Futures, test_await_from_task_completed_by_other_thread) {
  kettle::run([]() -> Coro<> {
    Future<int> f;
    std::thread::id loop_thread = std::this_thread::get_id();
    std::thread t([f] {
      std::this_thread::sleep_for(10ms);
      f.set_result(5);
    });
    int v = co_await f;
    EXPECT_EQ(v, 5);
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);  // resumed on its own loop
    t.join();
  }());
}

TEST(Futures, test_cancelling_awaiting_task_cancels_pending_future) {
  kettle::run([]() -> Coro<> {
    Future<int> f;
    auto waiter = [](Future<int> f) -> Coro<int> { co_return co_await f; };
    kettle::Task<int> t = kettle::create_task(waiter(f));
    co_await kettle::sleep(0);
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);
    EXPECT_TRUE(f.cancelled());
  }());
}

TEST(Futures, test_cancelling_awaiting_task_stops_running_work) {
  kettle::run([]() -> Coro<> {
    Future<int> f;
    f.set_running_or_notify_cancel();
    std::atomic<bool> stop_seen{false};
    std::stop_callback cb(f.stop_token(), [&] { stop_seen = true; });
    auto waiter = [](Future<int> f) -> Coro<int> { co_return co_await f; };
    kettle::Task<int> t = kettle::create_task(waiter(f));
    co_await kettle::sleep(0);
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);  // at once, not when the work ends
    EXPECT_FALSE(f.cancelled());                       // running work cannot be cancelled
    EXPECT_TRUE(stop_seen);                            // but it was asked to stop
    f.set_result(1);
  }());
}

TEST(Futures, test_many_loops_await_one_future) {
  Future<int> f;
  std::atomic<int> sum{0};
  std::vector<std::thread> loops;
  for (int i = 0; i < 4; ++i)
    loops.emplace_back([f, &sum] {
      sum += kettle::run([](Future<int> f) -> Coro<int> { co_return co_await f; }(f));
    });
  std::this_thread::sleep_for(20ms);
  f.set_result(10);
  for (auto& t : loops)
    t.join();
  EXPECT_EQ(sum, 40);
}

TEST(Futures, test_move_only_value) {
  kettle::run([]() -> Coro<> {
    Future<std::unique_ptr<int>> f;
    f.set_result(std::make_unique<int>(3));
    std::unique_ptr<int> p = co_await std::move(f);
    EXPECT_EQ(*p, 3);
  }());
}
