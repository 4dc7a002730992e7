// kettle::Future. Names follow CPython's test_futures.py and test_concurrent_futures/.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
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

// Durations saturate: a timeout of 1e300 seconds or hours::max() means no timeout (it used
// to overflow and expire at once); NaN is ValueError.
TEST(Futures, test_result_huge_and_nan_timeouts) {
  Future<int> f;
  std::thread t([f] {
    std::this_thread::sleep_for(20ms);
    f.set_result(1);
  });
  EXPECT_EQ(f.result(std::chrono::duration<double>(1e300)), 1);
  t.join();
  Future<int> g;
  std::thread u([g] {
    std::this_thread::sleep_for(20ms);
    g.set_result(2);
  });
  EXPECT_EQ(g.result(std::chrono::hours::max()), 2);
  u.join();
  Future<int> h;
  EXPECT_THROW(h.result(std::chrono::duration<double>(std::nan(""))), kettle::ValueError);
  EXPECT_THROW(h.exception(std::chrono::duration<double>(std::nan(""))), kettle::ValueError);
  EXPECT_THROW(h.result(-5s), kettle::TimeoutError);  // negative: poll
}

// A Future whose exception nobody retrieved is reported, as asyncio.Future is, to the
// handler of the loop it was made on.
TEST(Futures, test_exception_never_retrieved_is_reported) {
  std::vector<std::string> seen;
  kettle::RunOptions options;
  options.exception_handler = [&](kettle::EventLoop&, const kettle::ExceptionContext& c) {
    seen.push_back(c.message + ": " + kettle::describe(c.exception));
  };
  kettle::run(
      [&]() -> Coro<> {
        {
          Future<int> f;  // dropped on the loop's thread
          f.set_exception(std::make_exception_ptr(std::runtime_error("lost here")));
        }
        EXPECT_EQ(seen.size(), 1u);
        {
          Future<int> f;  // looked at: not reported
          f.set_exception(std::make_exception_ptr(std::runtime_error("seen")));
          EXPECT_THROW(co_await f, std::runtime_error);
        }
        {
          Future<int> f;  // cancelled: not reported
          f.cancel();
        }
        // Dropped last by a worker thread: reported on the loop all the same.
        auto fails = []() -> int { throw std::logic_error("lost in a thread"); };
        (void)kettle::to_thread(fails);
        for (int i = 0; i < 5000 && seen.size() < 2; ++i)
          co_await kettle::sleep(1ms);
      }(),
      options);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "Future exception was never retrieved: std::runtime_error: lost here");
  EXPECT_EQ(seen[1], "Future exception was never retrieved: std::logic_error: lost in a thread");
}

// concurrent.futures.wait and as_completed, from a plain thread (test_wait.py,
// test_as_completed.py). Futures are completed by hand or by a ThreadPoolExecutor.
namespace {
Future<int> successful() {
  Future<int> f;
  f.set_result(42);
  return f;
}
Future<int> failed() {
  Future<int> f;
  f.set_exception(std::make_exception_ptr(std::runtime_error("failed")));
  f.exception();  // retrieved: the tests look at it through wait()
  return f;
}
Future<int> cancelled() {
  Future<int> f;
  f.cancel();
  return f;
}
template <class V>
bool same_set(std::vector<Future<int>> a, V b) {
  std::vector<Future<int>> bv(b.begin(), b.end());
  if (a.size() != bv.size()) return false;
  for (auto& x : a)
    if (std::find(bv.begin(), bv.end(), x) == bv.end()) return false;
  return true;
}
}  // namespace

TEST(ConcurrentWait, test_20369) {
  kettle::ThreadPoolExecutor pool(2);
  Future<void> f = pool.submit([] { std::this_thread::sleep_for(50ms); });
  std::vector<Future<void>> twice{f, f};
  auto [done, not_done] = kettle::concurrent::wait(twice, std::nullopt, kettle::ALL_COMPLETED);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0] == f);
  EXPECT_TRUE(not_done.empty());
}

TEST(ConcurrentWait, test_first_completed) {
  kettle::ThreadPoolExecutor pool(2);
  Future<int> f1 = pool.submit([] { return 21 * 2; });
  Future<int> never;
  Future<int> c = cancelled();
  auto [done, not_done] =
      kettle::concurrent::wait(std::vector{never, f1}, std::nullopt, kettle::FIRST_COMPLETED);
  EXPECT_TRUE(same_set(done, std::vector{f1}));
  EXPECT_TRUE(same_set(not_done, std::vector{never}));
  auto [done2, not_done2] =
      kettle::concurrent::wait(std::vector{c, successful(), never}, 5s, kettle::FIRST_COMPLETED);
  EXPECT_EQ(done2.size(), 2u);
  EXPECT_TRUE(same_set(not_done2, std::vector{never}));
}

TEST(ConcurrentWait, test_first_exception) {
  Future<int> ok = successful();
  Future<int> bad;
  Future<int> slow;
  std::thread t([bad] {
    std::this_thread::sleep_for(20ms);
    bad.set_exception(std::make_exception_ptr(std::runtime_error("x")));
  });
  auto [done, not_done] =
      kettle::concurrent::wait(std::vector{ok, bad, slow}, std::nullopt, kettle::FIRST_EXCEPTION);
  t.join();
  EXPECT_TRUE(same_set(done, std::vector{ok, bad}));
  EXPECT_TRUE(same_set(not_done, std::vector{slow}));
  EXPECT_THROW(bad.result(), std::runtime_error);
  // One failed already: returns at once.
  auto [d2, n2] =
      kettle::concurrent::wait(std::vector{failed(), slow}, std::nullopt, kettle::FIRST_EXCEPTION);
  EXPECT_EQ(d2.size(), 1u);
  EXPECT_EQ(n2.size(), 1u);
}

TEST(ConcurrentWait, test_all_completed_and_timeout) {
  kettle::ThreadPoolExecutor pool(2);
  Future<int> f1 = pool.submit([] { return 1; });
  Future<int> s = successful(), e = failed(), c = cancelled();
  auto [done, not_done] = kettle::concurrent::wait(std::vector{s, e, c, f1});
  EXPECT_EQ(done.size(), 4u);
  EXPECT_TRUE(not_done.empty());
  Future<int> never;
  auto [d2, n2] = kettle::concurrent::wait(std::vector{s, e, never}, 50ms);
  EXPECT_TRUE(same_set(d2, std::vector{s, e}));
  EXPECT_TRUE(same_set(n2, std::vector{never}));
  EXPECT_THROW(kettle::concurrent::wait(std::vector{never}, std::chrono::duration<double>(NAN)),
               kettle::ValueError);
}

TEST(ConcurrentWait, test_wait_on_loop_thread_raises_rather_than_block) {
  kettle::run([]() -> Coro<> {
    Future<int> never;
    EXPECT_THROW(kettle::concurrent::wait(std::vector{never}), kettle::RuntimeError);
    auto [done, not_done] = kettle::concurrent::wait(std::vector{successful()});  // no wait
    EXPECT_EQ(done.size(), 1u);
    co_return;
  }());
}

TEST(ConcurrentAsCompleted, test_no_timeout) {
  kettle::ThreadPoolExecutor pool(2);
  Future<int> f1 = pool.submit([] { return 2 * 21; });
  Future<int> f2 = pool.submit([] { return 7 * 6; });
  std::vector<Future<int>> all{cancelled(), failed(), successful(), f1, f2};
  std::vector<Future<int>> got;
  for (Future<int> f : kettle::concurrent::as_completed(all))
    got.push_back(f);
  EXPECT_TRUE(same_set(got, all));
}

TEST(ConcurrentAsCompleted, test_future_times_out) {
  for (double timeout : {0.0, 0.1}) {
    std::vector<Future<int>> already{cancelled(), failed(), successful()};
    Future<int> never;
    std::vector<Future<int>> all = already;
    all.push_back(never);
    std::vector<Future<int>> got;
    try {
      for (Future<int> f :
           kettle::concurrent::as_completed(all, std::chrono::duration<double>(timeout)))
        got.push_back(f);
      ADD_FAILURE() << "no TimeoutError";
    } catch (const kettle::TimeoutError& e) {
      EXPECT_STREQ(e.what(), "1 (of 4) futures unfinished");  // test_correct_timeout_exception_msg
    }
    EXPECT_TRUE(same_set(got, already));
  }
}

TEST(ConcurrentAsCompleted, test_duplicate_futures) {
  Future<int> f;
  std::thread t([f] {
    std::this_thread::sleep_for(10ms);
    f.set_result(1);
  });
  std::vector<Future<int>> thrice{f, f, f};
  int n = 0;
  for (Future<int> g : kettle::concurrent::as_completed(thrice)) {
    EXPECT_TRUE(g == f);
    ++n;
  }
  t.join();
  EXPECT_EQ(n, 1);
}

// Some futures done before the wait registers, others completed by another thread at the
// same moment: the wait's own list of finished futures is written under its lock (TSan).
TEST(ConcurrentWait, test_pending_calls_race) {
  for (int round = 0; round < 200; ++round) {
    std::vector<Future<int>> fs(8);
    std::thread t([fs] {
      for (std::size_t i = 0; i < fs.size(); i += 2)
        fs[i].set_result(static_cast<int>(i));
    });
    std::thread u([fs] {
      for (std::size_t i = 1; i < fs.size(); i += 2)
        fs[i].set_result(static_cast<int>(i));
    });
    auto [done, not_done] = kettle::concurrent::wait(fs, 30s);
    t.join();
    u.join();
    ASSERT_EQ(done.size(), 8u) << "round " << round;
  }
}

// The documented cooperative cancellation: work that takes a stop_token gives up by
// throwing when its awaiting task is cancelled. Nobody can retrieve that exception any more,
// and it is not reported (asyncio reports nothing either).
TEST(Futures, test_work_stopped_by_cancellation_is_not_reported) {
  std::vector<std::string> seen;
  kettle::RunOptions options;
  options.exception_handler = [&](kettle::EventLoop&, const kettle::ExceptionContext& c) {
    seen.push_back(c.message);
  };
  std::atomic<bool> running{false}, threw{false};
  auto work = [&](std::stop_token st) -> int {
    running = true;
    while (!st.stop_requested())
      std::this_thread::sleep_for(1ms);
    threw = true;
    throw std::runtime_error("stopped on request");
  };
  kettle::run(
      [&]() -> Coro<> {
        auto waiter = [&]() -> Coro<> { (void)co_await kettle::to_thread(work); };
        kettle::Task<> t = kettle::create_task(waiter());
        while (!running)
          co_await kettle::sleep(1ms);
        t.cancel();
        EXPECT_THROW(co_await t, kettle::CancelledError);
        while (!threw)
          co_await kettle::sleep(1ms);
      }(),
      options);
  EXPECT_TRUE(seen.empty()) << seen.front();
}
