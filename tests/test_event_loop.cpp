// kettle::EventLoop: callbacks, timers, running and stopping, closing, thread-safe entry.
// Names follow CPython's test_base_events.py / test_events.py where a test mirrors one.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <ratio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::EventLoop;

TEST(EventLoop, test_call_soon_runs_in_fifo_order) {
  EventLoop loop;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i)
    loop.call_soon([&order, i] { order.push_back(i); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(order[i], i);
}

TEST(EventLoop, test_call_soon_scheduled_during_batch_runs_next_iteration) {
  EventLoop loop;
  std::vector<std::string> order;
  loop.call_soon([&] {
    order.push_back("a");
    loop.call_soon([&] { order.push_back("c"); });
  });
  loop.call_soon([&] {
    order.push_back("b");
    loop.stop();  // stop() lets the current batch finish; "c" belongs to the next one
  });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b"}));
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(EventLoop, test_call_later_fires_in_deadline_order) {
  EventLoop loop;
  std::vector<int> order;
  loop.call_later(30ms, [&] { order.push_back(3); });
  loop.call_later(10ms, [&] { order.push_back(1); });
  loop.call_later(20ms, [&] { order.push_back(2); });
  loop.call_later(40ms, [&] { loop.stop(); });
  double t0 = loop.time();
  loop.run_forever();
  EXPECT_GE(loop.time() - t0, 0.039);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(EventLoop, test_call_at_equal_deadlines_fire_in_scheduling_order) {
  EventLoop loop;
  std::vector<int> order;
  auto when = EventLoop::clock::now() + 5ms;
  for (int i = 0; i < 50; ++i)
    loop.call_at(when, [&order, i] { order.push_back(i); });
  loop.call_at(when + 1ms, [&] { loop.stop(); });
  loop.run_forever();
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(order[i], i);
}

TEST(EventLoop, test_call_at_in_loop_time_units) {
  EventLoop loop;
  bool fired = false;
  double when = loop.time() + 0.01;
  kettle::TimerHandle h = loop.call_at(when, [&] {
    fired = true;
    loop.stop();
  });
  EXPECT_NEAR(h.when(), when, 1e-6);
  loop.run_forever();
  EXPECT_TRUE(fired);
  EXPECT_GE(loop.time(), when);
}

TEST(EventLoop, test_handle_cancel) {
  EventLoop loop;
  int runs = 0;
  kettle::Handle h = loop.call_soon([&] { ++runs; });
  EXPECT_FALSE(h.cancelled());
  h.cancel();
  EXPECT_TRUE(h.cancelled());
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(runs, 0);
  h.cancel();  // harmless after the fact
}

TEST(EventLoop, test_timer_handle_cancel_disarms_at_once) {
  EventLoop loop;
  int runs = 0;
  kettle::TimerHandle far = loop.call_later(3600s, [&] { ++runs; });
  kettle::TimerHandle near = loop.call_later(1ms, [&] { ++runs; });
  EXPECT_EQ(loop.core().timers.size(), 2u);
  far.cancel();
  EXPECT_EQ(loop.core().timers.size(), 1u);  // gone now, not when it would have expired
  near.cancel();
  EXPECT_EQ(loop.core().timers.size(), 0u);
  loop.call_later(5ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(runs, 0);
}

TEST(EventLoop, test_time_is_monotonic_seconds) {
  EventLoop loop;
  double a = loop.time();
  std::this_thread::sleep_for(2ms);
  double b = loop.time();
  EXPECT_GT(b, a);
  EXPECT_LT(b - a, 1.0);
}

TEST(EventLoop, test_run_forever_pre_stopped) {
  // stop() before run_forever(): it runs one iteration and returns.
  EventLoop loop;
  int runs = 0;
  loop.call_soon([&] { ++runs; });
  loop.stop();
  loop.run_forever();
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(loop.is_running());
}

TEST(EventLoop, test_run_until_complete_returns_result) {
  EventLoop loop;
  auto body = []() -> Coro<int> {
    co_await kettle::sleep(1ms);
    co_return 7;
  };
  EXPECT_EQ(loop.run_until_complete(body()), 7);
  EXPECT_FALSE(loop.is_running());
}

TEST(EventLoop, test_run_until_complete_raises_exception) {
  EventLoop loop;
  auto body = []() -> Coro<int> {
    throw std::logic_error("boom");
    co_return 0;
  };
  EXPECT_THROW(loop.run_until_complete(body()), std::logic_error);
}

TEST(EventLoop, test_run_until_complete_stopped) {
  EventLoop loop;
  auto body = [&]() -> Coro<> {
    loop.stop();
    co_await kettle::sleep(10ms);
  };
  try {
    loop.run_until_complete(body());
    FAIL() << "expected RuntimeError";
  } catch (const kettle::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("stopped before"), std::string::npos);
  }
}

TEST(EventLoop, test_run_nested_raises) {
  EventLoop loop;
  EventLoop other;
  auto body = [&]() -> Coro<> {
    EXPECT_TRUE(loop.is_running());
    EXPECT_THROW(loop.run_forever(), kettle::RuntimeError);
    EXPECT_THROW(other.run_forever(), kettle::RuntimeError);  // another loop on this thread
    co_return;
  };
  loop.run_until_complete(body());
}

TEST(EventLoop, test_close) {
  EventLoop loop;
  EXPECT_FALSE(loop.is_closed());
  loop.close();
  EXPECT_TRUE(loop.is_closed());
  loop.close();  // twice is fine
  EXPECT_THROW(loop.run_forever(), kettle::RuntimeError);
  EXPECT_THROW(loop.call_soon([] {}), kettle::RuntimeError);
  EXPECT_THROW(loop.call_later(1s, [] {}), kettle::RuntimeError);
  auto body = []() -> Coro<> { co_return; };
  EXPECT_THROW(loop.run_until_complete(body()), kettle::RuntimeError);
}

TEST(EventLoop, test_close_running_loop_raises) {
  EventLoop loop;
  bool raised = false;
  loop.call_soon([&] {
    try {
      loop.close();
    } catch (const kettle::RuntimeError&) {
      raised = true;
    }
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(raised);
}

TEST(EventLoop, test_close_destroys_pending_tasks_and_timers) {
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> weak = token;
  std::vector<std::string> reports;
  {
    EventLoop loop;
    loop.set_exception_handler(
        [&](EventLoop&, const kettle::ExceptionContext& c) { reports.push_back(c.message); });
    auto sleeper = [](std::shared_ptr<int> p) -> Coro<> { co_await kettle::sleep(3600s); };
    kettle::Task<> t;
    auto starter = [&]() -> Coro<> {
      t = kettle::create_task(sleeper(std::move(token)));
      co_await kettle::sleep(0);
    };
    loop.run_until_complete(starter());
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(weak.expired());
    loop.close();
    EXPECT_EQ(loop.core().timers.size(), 0u);
    EXPECT_FALSE(t.done());
    // As in Python, the coroutine is destroyed with the last reference to its task.
    EXPECT_FALSE(weak.expired());
    t = {};
    EXPECT_TRUE(weak.expired());
  }
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], "Task was destroyed but it is pending!");
}

TEST(EventLoop, test_get_running_loop) {
  EXPECT_THROW(kettle::get_running_loop(), kettle::RuntimeError);
  EventLoop loop;
  EventLoop* seen = nullptr;
  loop.call_soon([&] {
    seen = &kettle::get_running_loop();
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(seen, &loop);
  EXPECT_THROW(kettle::get_running_loop(), kettle::RuntimeError);
}

TEST(EventLoop, test_default_exc_handler_callback) {
  EventLoop loop;
  std::vector<kettle::ExceptionContext> seen;
  loop.set_exception_handler(
      [&](EventLoop&, const kettle::ExceptionContext& c) { seen.push_back(c); });
  loop.call_soon([] { throw std::runtime_error("callback failed"); });
  bool after = false;
  loop.call_soon([&] {
    after = true;  // the loop goes on after a failing callback
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(after);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].message, "Exception in callback");
  EXPECT_EQ(kettle::describe(seen[0].exception), "std::runtime_error: callback failed");
}

TEST(EventLoop, test_set_exc_handler_broken) {
  EventLoop loop;
  loop.set_exception_handler(
      [](EventLoop&, const kettle::ExceptionContext&) { throw std::runtime_error("handler"); });
  testing::internal::CaptureStderr();
  loop.call_soon([] { throw std::runtime_error("callback"); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("Unhandled error in exception handler"), std::string::npos);
  EXPECT_NE(err.find("callback"), std::string::npos);
}

TEST(EventLoop, test_call_soon_threadsafe_wakes_blocked_loop) {
  EventLoop loop;
  std::atomic<bool> started{false};
  std::thread::id ran_on;
  loop.call_soon([&] { started = true; });
  std::thread other([&] {
    while (!started)
      std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(20ms);  // the loop is now blocked with nothing to do
    loop.call_soon_threadsafe([&] {
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
  });
  loop.run_forever();  // no timers, no tasks: only the post can end this
  other.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoop, test_call_soon_threadsafe_many_threads) {
  EventLoop loop;
  constexpr int kThreads = 4, kEach = 2000;
  int count = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        loop.call_soon_threadsafe([&] { ++count; });
    });
  for (auto& t : threads)
    t.join();
  loop.call_soon_threadsafe([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(count, kThreads * kEach);
}

TEST(EventLoop, test_debug_mode_detects_foreign_thread) {
  EventLoop loop;
  loop.set_debug(true);
  bool raised = false;
  loop.call_soon([&] {
    std::thread t([&] {
      try {
        loop.call_soon([] {});
      } catch (const kettle::RuntimeError&) {
        raised = true;
      }
    });
    t.join();
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(raised);
}

TEST(EventLoop, test_million_timers) {
  EventLoop loop;
  constexpr int kTimers = 1'000'000;
  int fired = 0;
  long last = -1;
  bool ordered = true;
  auto now = EventLoop::clock::now();
  for (int i = 0; i < kTimers; ++i) {
    // Deadlines spread over 50 ms, scheduled out of order.
    long slot = (i * 7919L) % 1000;
    loop.call_at(now + std::chrono::microseconds(50 * slot), [&, slot] {
      if (slot < last) ordered = false;
      last = slot;
      if (++fired == kTimers) loop.stop();
    });
  }
  loop.run_forever();
  EXPECT_EQ(fired, kTimers);
  EXPECT_TRUE(ordered);
}

// call_soon_threadsafe and call_soon share one FIFO: a post from the loop's own thread is
// not held back until the loop next polls for I/O.
TEST(EventLoop, test_call_soon_threadsafe_keeps_fifo_with_call_soon) {
  EventLoop loop;
  std::vector<std::string> order;
  loop.call_soon_threadsafe([&] { order.push_back("A"); });
  loop.call_soon([&] { order.push_back("B"); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<std::string>{"A", "B"}));

  order.clear();
  auto body = [&]() -> Coro<> {
    loop.call_soon_threadsafe([&] { order.push_back("A"); });
    loop.call_soon([&] { order.push_back("B"); });
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
  };
  loop.run_until_complete(body());
  EXPECT_EQ(order, (std::vector<std::string>{"A", "B"}));
}

// A busy loop (something always ready) still runs posts from other threads at once, in
// the order each thread posted them, and stop() + close() never drops one posted earlier.
TEST(EventLoop, test_call_soon_threadsafe_from_other_thread_while_busy) {
  EventLoop loop;
  std::vector<int> seen;
  std::atomic<bool> posted{false};
  std::thread other([&] {
    for (int i = 0; i < 100; ++i)
      loop.call_soon_threadsafe([&seen, i] { seen.push_back(i); });
    posted = true;
  });
  // Keep the ready queue non-empty until every post has run.
  std::function<void()> spin = [&] {
    if (posted && seen.size() == 100)
      loop.stop();
    else
      loop.call_soon(spin);
  };
  loop.call_soon(spin);
  loop.run_forever();
  other.join();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(seen[i], i);
  // Posted, then stopped: the post runs in the last iteration, as asyncio's does.
  bool ran = false;
  std::thread([&] { loop.call_soon_threadsafe([&] { ran = true; }); }).join();
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_TRUE(ran);
  loop.close();
  EXPECT_THROW(loop.call_soon_threadsafe([] {}), kettle::RuntimeError);
}

// A coroutine awaits a Future; the loop stops and closes; then another thread completes the
// future. The completion must find the gate shut, not a freed task (this was a
// use-after-free in ~io_context).
TEST(EventLoop, test_future_completed_after_loop_closed) {
  kettle::Future<int> f;
  auto waiter = [](kettle::Future<int> f) -> Coro<int> { co_return co_await f; };
  {
    EventLoop loop;
    loop.set_exception_handler([](EventLoop&, const kettle::ExceptionContext&) {});
    kettle::Task<int> t;
    auto start = [&]() -> Coro<> {
      t = kettle::create_task(waiter(f));
      co_await kettle::sleep(0);
    };
    loop.run_until_complete(start());
    EXPECT_FALSE(t.done());
    loop.close();
    std::thread([&] { f.set_result(7); }).join();  // nobody waits any more
  }
  // Completed between stop and close, from another thread: the post is dropped by close().
  kettle::Future<int> g;
  {
    EventLoop loop;
    loop.set_exception_handler([](EventLoop&, const kettle::ExceptionContext&) {});
    auto start = [&]() -> Coro<> {
      (void)kettle::create_task(waiter(g));
      co_await kettle::sleep(0);
    };
    loop.run_until_complete(start());
    std::thread([&] { g.set_result(8); }).join();
    loop.close();
  }
  EXPECT_EQ(g.result(), 8);
}

// to_thread work that finishes after its loop closed early; an Asio operation completing on
// another thread after the loop closed.
TEST(EventLoop, test_late_completions_after_close) {
  std::atomic<bool> release{false};
  auto slow = [&release] {
    while (!release)
      std::this_thread::sleep_for(1ms);
    return 3;
  };
  asio::thread_pool other(1);
  std::atomic<bool> hop_started{false};
  {
    EventLoop loop;
    loop.set_exception_handler([](EventLoop&, const kettle::ExceptionContext&) {});
    auto waits = [&]() -> Coro<int> { co_return co_await kettle::to_thread(slow); };
    auto hops = [&]() -> Coro<> {
      // Runs on `other` once posted; completes there, long after the loop closed.
      asio::post(other, [&] {
        hop_started = true;
        while (!release)
          std::this_thread::sleep_for(1ms);
      });
      co_await asio::post(other, kettle::use_coro);
    };
    auto start = [&]() -> Coro<> {
      (void)kettle::create_task(waits());
      (void)kettle::create_task(hops());
      co_await kettle::sleep(10ms);
    };
    loop.run_until_complete(start());
    std::thread([&] {
      while (!hop_started)
        std::this_thread::sleep_for(1ms);
      release = true;
    }).detach();
    loop.close();  // the default executor is joined when the loop is destroyed
  }
  other.join();
}

TEST(EventLoop, test_run_until_complete_loop) {
  EventLoop loop;
  kettle::Task<int> t;
  auto make = [&]() -> Coro<> {
    t = kettle::create_task([]() -> Coro<int> { co_return 1; }());
    co_return;
  };
  loop.run_until_complete(make());
  EventLoop other;
  EXPECT_THROW(other.run_until_complete(t), kettle::ValueError);
  EXPECT_EQ(loop.run_until_complete(t), 1);
}

// Huge delays mean never (they overflowed and fired at once); NaN is ValueError.
TEST(EventLoop, test_call_later_huge_and_nan_delays) {
  EventLoop loop;
  int fired = 0;
  loop.call_later(1e20, [&] { ++fired; });
  loop.call_later(std::chrono::hours::max(), [&] { ++fired; });
  loop.call_later(std::chrono::duration<double>(1e300), [&] { ++fired; });
  loop.call_at(loop.time() + 1e20, [&] { ++fired; });
  loop.call_at(EventLoop::clock::time_point::max(), [&] { ++fired; });
  loop.call_later(-1e20, [&] { ++fired; });  // long ago: at once
  EXPECT_THROW(loop.call_later(std::nan(""), [] {}), kettle::ValueError);
  EXPECT_THROW(loop.call_at(std::nan(""), [] {}), kettle::ValueError);
  EXPECT_THROW(loop.call_later(std::chrono::duration<double>(std::nan("")), [] {}),
               kettle::ValueError);
  loop.call_later(20ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(fired, 1);
}

// A Task handle that outlives its loop, its task suspended on a Future when the loop
// closed: dropping the handle destroys the frame after the loop is gone (the awaiter used
// to write into the destroyed loop: ASan).
TEST(EventLoop, test_task_handle_outlives_its_loop) {
  kettle::Future<int> f;
  kettle::Task<int> t;  // declared before the loop: outlives it
  {
    auto loop = std::make_unique<EventLoop>();
    loop->set_exception_handler([](EventLoop&, const kettle::ExceptionContext&) {});
    auto waiter = [](kettle::Future<int> f) -> Coro<int> { co_return co_await f; };
    auto start = [&]() -> Coro<> {
      t = kettle::create_task(waiter(f));
      co_await kettle::sleep(0);
    };
    loop->run_until_complete(start());
    loop->close();
  }
  EXPECT_FALSE(t.done());
  t = {};
  f.set_result(1);  // nobody waits
}

// A period that is not a whole number of nanoseconds (1/3 s): converting it used to
// overflow (signed, UBSan) close to the 100-year cap.
TEST(EventLoop, test_odd_periods_saturate) {
  using third = std::chrono::duration<long long, std::ratio<1, 3>>;
  EventLoop loop;
  int fired = 0;
  loop.call_later(third(3LL * 3600 * 24 * 365 * 99), [&] { ++fired; });  // 99 years
  loop.call_later(third(std::numeric_limits<long long>::max()), [&] { ++fired; });
  loop.call_later(third(1), [&] { ++fired; });  // a third of a second
  loop.call_later(third(2), [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(fired, 1);
}

// The timer heap against a sorted model: pushes in deadline order (the sorted run), out of
// order (the heap) and with equal deadlines, removals from both, pops as time advances.
TEST(TimerHeap, MatchesASortedModel) {
  using kettle::detail::TimerNode;
  std::mt19937 rng(20261202);
  kettle::detail::TimerHeap heap;
  std::vector<TimerNode> nodes(500);
  std::vector<long> order_of(nodes.size());
  std::map<std::pair<std::int64_t, long>, TimerNode*> model;  // (deadline, push order)
  long order = 0;
  std::int64_t now = 0, last_in_order = 0;
  std::size_t in_order = 0, out_of_order = 0, to_run = 0, to_heap = 0;
  for (int step = 0; step < 100'000; ++step) {
    unsigned op = rng() % 10;
    std::size_t i = rng() % nodes.size();
    TimerNode& n = nodes[i];
    if (op < 5) {
      if (n.armed()) continue;
      if (op < 3) {  // in deadline order, sometimes equal to the last
        last_in_order = std::max(last_in_order, now) + (rng() % 3) * 100;
        n.when = last_in_order;
        ++in_order;
      } else {  // anywhere from now on, coarse so that deadlines tie
        n.when = now + (rng() % 20) * 100;
        ++out_of_order;
      }
      std::size_t run_before = heap.run_size();
      heap.push(&n);
      (heap.run_size() > run_before ? to_run : to_heap) += 1;
      order_of[i] = order++;
      model[{n.when, order_of[i]}] = &n;
    } else if (op < 7) {
      if (!n.armed()) continue;
      heap.remove(&n);
      EXPECT_FALSE(n.armed());
      model.erase({n.when, order_of[i]});
    } else {
      now += (rng() % 4) * 100;
      std::vector<TimerNode*> got, want;
      heap.pop_due(now, [&](TimerNode* t) {
        EXPECT_FALSE(t->armed());
        got.push_back(t);
      });
      while (!model.empty() && model.begin()->first.first <= now) {
        want.push_back(model.begin()->second);
        model.erase(model.begin());
      }
      ASSERT_EQ(got, want) << "step " << step;
    }
    ASSERT_EQ(heap.size(), model.size());
    ASSERT_EQ(heap.empty(), model.empty());
    if (!model.empty()) {
      ASSERT_EQ(heap.next_deadline(), model.begin()->first.first);
    }
  }
  EXPECT_GT(in_order, 10'000u);
  EXPECT_GT(out_of_order, 10'000u);
  EXPECT_GT(to_run, 10'000u);  // both parts of the structure were exercised
  EXPECT_GT(to_heap, 5'000u);
  std::size_t cleared = 0;
  heap.clear([&](TimerNode* t) {
    EXPECT_FALSE(t->armed());
    ++cleared;
  });
  EXPECT_EQ(cleared, model.size());
  EXPECT_TRUE(heap.empty());
}

// What fires may remove and add timers (a timeout cancels a task whose sleep leaves the
// sorted run; a poller re-arms itself): the pop sees the change.
TEST(TimerHeap, FiringMayRemoveAndPushTimers) {
  using kettle::detail::TimerNode;
  kettle::detail::TimerHeap heap;
  TimerNode a, b, c, d, late;
  a.when = 10;
  b.when = 20;
  c.when = 30;
  late.when = 5;  // out of order: into the heap
  heap.push(&a);
  heap.push(&b);
  heap.push(&c);
  heap.push(&late);
  EXPECT_EQ(heap.run_size(), 3u);
  std::vector<TimerNode*> fired;
  heap.pop_due(100, [&](TimerNode* n) {
    fired.push_back(n);
    if (n == &a) {
      heap.remove(&b);  // the run's next head goes
      d.when = 25;      // and a timer already due comes in
      heap.push(&d);
    }
  });
  EXPECT_EQ(fired, (std::vector<TimerNode*>{&late, &a, &d, &c}));
  EXPECT_FALSE(b.armed());
  EXPECT_TRUE(heap.empty());
}
