// kettle::timeout, timeout_at, Timeout and wait_for. Names follow CPython's
// test_timeouts.py and test_waitfor.py.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::Task;

namespace {
constexpr auto kEpsilon = 1ms;

Coro<> sleep_for(std::chrono::milliseconds d) {
  co_await kettle::sleep(d);
}

template <class F>
void run_test(F body) {
  kettle::run(body());
}

// Expects `aw` to raise E; returns the task cancelling() count afterwards.
#define CO_EXPECT_THROW(expr, E)                        \
  do {                                                  \
    bool thrown_ = false;                               \
    try {                                               \
      expr;                                             \
    } catch (const E&) {                                \
      thrown_ = true;                                   \
    }                                                   \
    EXPECT_TRUE(thrown_) << #expr " did not raise " #E; \
  } while (0)
}  // namespace

TEST(Timeouts, test_timeout_basic) {
  run_test([]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(10ms);
    CO_EXPECT_THROW(co_await cm.run(sleep_for(10s)), kettle::TimeoutError);
    EXPECT_TRUE(cm.expired());
  });
}

TEST(Timeouts, test_timeout_one_liner) {
  run_test([]() -> Coro<> {
    auto t0 = std::chrono::steady_clock::now();
    CO_EXPECT_THROW(co_await kettle::timeout(10ms, sleep_for(10s)), kettle::TimeoutError);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    auto quick = []() -> Coro<int> { co_return 5; };
    EXPECT_EQ(co_await kettle::timeout(10ms, quick()), 5);
  });
}

TEST(Timeouts, test_timeout_at_basic) {
  run_test([]() -> Coro<> {
    double deadline = kettle::get_running_loop().time() + 0.01;
    kettle::Timeout cm = kettle::timeout_at(deadline);
    CO_EXPECT_THROW(co_await cm.run(sleep_for(10s)), kettle::TimeoutError);
    EXPECT_TRUE(cm.expired());
    EXPECT_NEAR(*cm.when(), deadline, 1e-6);
  });
}

TEST(Timeouts, test_nested_timeouts) {
  bool cancelled = false;
  auto inner = [&](double deadline) -> Coro<> {
    kettle::Timeout cm2 = kettle::timeout_at(deadline);
    try {
      co_await cm2.run(sleep_for(10s));
    } catch (const kettle::CancelledError&) {
      cancelled = true;  // only the outermost scope turns it into TimeoutError
      EXPECT_TRUE(cm2.expired());
      throw;
    }
  };
  run_test([&]() -> Coro<> {
    double deadline = kettle::get_running_loop().time() + 0.01;
    kettle::Timeout cm1 = kettle::timeout_at(deadline);
    CO_EXPECT_THROW(co_await cm1.run(inner(deadline)), kettle::TimeoutError);
    EXPECT_TRUE(cm1.expired());
  });
  EXPECT_TRUE(cancelled);
}

TEST(Timeouts, test_waiter_cancelled) {
  bool cancelled = false;
  auto body = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      cancelled = true;
      throw;
    }
  };
  run_test([&]() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::timeout(10ms, body()), kettle::TimeoutError);
  });
  EXPECT_TRUE(cancelled);
}

TEST(Timeouts, test_timeout_not_called) {
  run_test([]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(10s);
    co_await cm.run(sleep_for(10ms));
    double t1 = kettle::get_running_loop().time();
    EXPECT_FALSE(cm.expired());
    EXPECT_GT(*cm.when(), t1);
    EXPECT_EQ(kettle::get_running_loop().core().timers.size(), 0u);  // disarmed on exit
  });
}

TEST(Timeouts, test_timeout_disabled) {
  run_test([]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(std::nullopt);
    co_await cm.run(sleep_for(10ms));
    EXPECT_FALSE(cm.expired());
    EXPECT_FALSE(cm.when());
    kettle::Timeout cm2 = kettle::timeout_at(std::nullopt);
    co_await cm2.run(sleep_for(10ms));
    EXPECT_FALSE(cm2.expired());
    EXPECT_FALSE(cm2.when());
  });
}

TEST(Timeouts, test_timeout_zero) {
  run_test([]() -> Coro<> {
    double t0 = kettle::get_running_loop().time();
    kettle::Timeout cm = kettle::timeout(0s);
    CO_EXPECT_THROW(co_await cm.run(sleep_for(10s)), kettle::TimeoutError);
    double t1 = kettle::get_running_loop().time();
    EXPECT_TRUE(cm.expired());
    EXPECT_LE(t0, *cm.when());
    EXPECT_LE(*cm.when(), t1);
    EXPECT_LT(t1 - t0, 2.0);
  });
}

TEST(Timeouts, test_timeout_zero_sleep_zero) {
  run_test([]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(0s);
    CO_EXPECT_THROW(co_await cm.run(sleep_for(0ms)), kettle::TimeoutError);
    EXPECT_TRUE(cm.expired());
  });
}

TEST(Timeouts, test_timeout_in_the_past_sleep_zero) {
  run_test([]() -> Coro<> {
    double t0 = kettle::get_running_loop().time();
    kettle::Timeout cm = kettle::timeout(-11.0);
    CO_EXPECT_THROW(co_await cm.run(sleep_for(0ms)), kettle::TimeoutError);
    EXPECT_TRUE(cm.expired());
    EXPECT_LE(*cm.when(), t0);
  });
}

TEST(Timeouts, test_foreign_exception_passed) {
  auto raise = []() -> Coro<> {
    throw std::out_of_range("key");
    co_return;
  };
  run_test([&]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(10ms);
    CO_EXPECT_THROW(co_await cm.run(raise()), std::out_of_range);
    EXPECT_FALSE(cm.expired());
  });
}

TEST(Timeouts, test_foreign_exception_on_timeout) {
  // An exception raised while the body unwinds from the timeout's cancellation
  // propagates instead of TimeoutError.
  auto crash = []() -> Coro<> {
    try {
      co_await kettle::sleep(1s);
    } catch (const kettle::CancelledError&) {
    }
    throw std::domain_error("crash in cleanup");
  };
  run_test([&]() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::timeout(10ms, crash()), std::domain_error);
  });
}

TEST(Timeouts, test_foreign_cancel_doesnt_timeout_if_not_expired) {
  auto body = []() -> Coro<> {
    kettle::current_task().cancel();
    co_await kettle::sleep(10s);
  };
  run_test([&]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(10s);
    CO_EXPECT_THROW(co_await cm.run(body()), kettle::CancelledError);
    EXPECT_FALSE(cm.expired());
    kettle::current_task().uncancel();
  });
}

TEST(Timeouts, test_outer_task_is_not_cancelled) {
  auto outer = []() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::timeout(1ms, sleep_for(10s)), kettle::TimeoutError);
  };
  run_test([&]() -> Coro<> {
    Task<> task = kettle::create_task(outer());
    co_await task;
    EXPECT_FALSE(task.cancelled());
    EXPECT_TRUE(task.done());
    EXPECT_EQ(task.cancelling(), 0u);
  });
}

TEST(Timeouts, test_nested_timeouts_concurrent) {
  auto inner = []() -> Coro<> {
    std::this_thread::sleep_for(10ms);  // pretend we crunch some numbers
    co_await kettle::sleep(1s);
  };
  run_test([&]() -> Coro<> {
    // The outer deadline passes first: its TimeoutError, through the inner scope untouched.
    auto scoped = [&]() -> Coro<> { co_await kettle::timeout(100ms, inner()); };
    CO_EXPECT_THROW(co_await kettle::timeout(2ms, scoped()), kettle::TimeoutError);
  });
}

TEST(Timeouts, test_nested_timeouts_loop_busy) {
  auto busy_then_sleep = []() -> Coro<> {
    std::this_thread::sleep_for(10ms);  // the loop is busy past the inner deadline
    co_await kettle::sleep(1s);
  };
  auto outer_body = [&]() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::timeout(10ms, busy_then_sleep()), kettle::TimeoutError);
    co_await kettle::sleep(10s);  // interrupted by the outer timeout
  };
  run_test([&]() -> Coro<> {
    double t0 = kettle::get_running_loop().time();
    CO_EXPECT_THROW(co_await kettle::timeout(100ms, outer_body()), kettle::TimeoutError);
    double t1 = kettle::get_running_loop().time();
    EXPECT_LE(t1, t0 + 1);
  });
}

TEST(Timeouts, test_reschedule) {
  run_test([]() -> Coro<> {
    kettle::EventLoop& loop = kettle::get_running_loop();
    double deadline1 = loop.time() + 10;
    double deadline2 = deadline1 + 20;
    kettle::Timeout cm = kettle::timeout_at(deadline1);
    kettle::Future<> entered;
    auto body = [](kettle::Future<> entered) -> Coro<> {
      entered.set_result();
      co_await kettle::sleep(50s);
    };
    auto f = [&]() -> Coro<> { co_await cm.run(body(entered)); };
    Task<> task = kettle::create_task(f());
    co_await entered;
    EXPECT_NEAR(*cm.when(), deadline1, 1e-6);
    cm.reschedule(deadline2);
    EXPECT_NEAR(*cm.when(), deadline2, 1e-6);
    cm.reschedule(std::optional<double>());
    EXPECT_FALSE(cm.when());
    EXPECT_EQ(loop.core().timers.size(), 1u);  // only the sleep's timer is left
    task.cancel();
    CO_EXPECT_THROW(co_await task, kettle::CancelledError);
    EXPECT_FALSE(cm.expired());
  });
}

TEST(Timeouts, test_reschedule_sooner_fires) {
  auto body = [](kettle::Timeout& cm) -> Coro<> {
    cm.reschedule(kettle::get_running_loop().time() + 0.01);
    co_await kettle::sleep(10s);
  };
  run_test([&]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(3600s);
    auto t0 = std::chrono::steady_clock::now();
    CO_EXPECT_THROW(co_await cm.run(body(cm)), kettle::TimeoutError);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  });
}

TEST(Timeouts, test_timeout_after_cancellation) {
  run_test([]() -> Coro<> {
    try {
      kettle::current_task().cancel();
      co_await kettle::sleep(1s);  // work which will be cancelled
    } catch (const kettle::CancelledError&) {
    }
    CO_EXPECT_THROW(co_await kettle::timeout(0s, sleep_for(1s)), kettle::TimeoutError);
  });
}

TEST(Timeouts, test_cancel_in_timeout_after_cancellation) {
  auto cleanup = []() -> Coro<> {
    kettle::current_task().cancel();
    co_await kettle::sleep(2s);
  };
  run_test([&]() -> Coro<> {
    try {
      kettle::current_task().cancel();
      co_await kettle::sleep(1s);
    } catch (const kettle::CancelledError&) {
    }
    CO_EXPECT_THROW(co_await kettle::timeout(1s, cleanup()), kettle::CancelledError);
    kettle::current_task().uncancel();
    kettle::current_task().uncancel();
  });
}

TEST(Timeouts, test_timeout_double_enter) {
  run_test([]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(1h);
    co_await cm.run(sleep_for(0ms));
    try {
      co_await cm.run(sleep_for(0ms));
      ADD_FAILURE() << "entered twice";
    } catch (const kettle::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("has already been entered"), std::string::npos);
    }
  });
}

TEST(Timeouts, test_timeout_states_refuse_reschedule) {
  run_test([]() -> Coro<> {
    kettle::Timeout not_entered = kettle::timeout(10ms);
    EXPECT_THROW(not_entered.reschedule(0.02), kettle::RuntimeError);  // has not been entered

    kettle::Timeout finished = kettle::timeout(1h);
    co_await finished.run(sleep_for(0ms));
    try {
      finished.reschedule(0.02);
      ADD_FAILURE();
    } catch (const kettle::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("finished"), std::string::npos);
    }

    kettle::Timeout expired = kettle::timeout(10ms);
    CO_EXPECT_THROW(co_await expired.run(sleep_for(1s)), kettle::TimeoutError);
    try {
      expired.reschedule(0.02);
      ADD_FAILURE();
    } catch (const kettle::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("expired"), std::string::npos);
    }
  });
}

TEST(Timeouts, test_timeout_expiring) {
  auto body = [](kettle::Timeout& cm) -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::sleep(1s), kettle::CancelledError);
    try {
      cm.reschedule(0.02);
      ADD_FAILURE();
    } catch (const kettle::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("expiring"), std::string::npos);
    }
  };
  run_test([&]() -> Coro<> {
    kettle::Timeout cm = kettle::timeout(10ms);
    co_await cm.run(body(cm));  // the body swallowed the cancellation: no TimeoutError
    EXPECT_TRUE(cm.expired());
  });
}

TEST(Timeouts, test_timeout_without_task) {
  kettle::Timeout cm = kettle::timeout(10ms);
  EXPECT_THROW(cm.enter(), kettle::RuntimeError);
  EXPECT_THROW(cm.reschedule(0.02), kettle::RuntimeError);
}

// wait_for ------------------------------------------------------------------------------

namespace {
struct SlowTask {
  static constexpr auto kTimeout = 100ms;
  bool exited = false;
  Coro<> run() {
    try {
      co_await kettle::sleep(kTimeout);
    } catch (const kettle::CancelledError&) {
      exited = true;
      throw;
    }
    exited = true;
  }
};
}  // namespace

TEST(WaitFor, test_asyncio_wait_for_cancelled) {
  SlowTask t;
  auto waiting = [&]() -> Coro<> { co_await kettle::wait_for(t.run(), SlowTask::kTimeout * 2); };
  run_test([&]() -> Coro<> {
    Task<> wft = kettle::create_task(waiting());
    co_await kettle::sleep(0);
    wft.cancel();
    co_await kettle::gather(kettle::return_exceptions, wft);
    EXPECT_TRUE(t.exited);
    EXPECT_TRUE(wft.cancelled());
  });
}

TEST(WaitFor, test_asyncio_wait_for_timeout) {
  SlowTask t;
  run_test([&]() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::wait_for(t.run(), SlowTask::kTimeout / 2),
                    kettle::TimeoutError);
    EXPECT_TRUE(t.exited);
  });
}

TEST(WaitFor, test_wait_for_timeout_less_then_0_or_0_future_done) {
  run_test([]() -> Coro<> {
    kettle::Future<std::string> fut;
    fut.set_result("done");
    EXPECT_EQ(co_await kettle::wait_for(fut, 0s), "done");
    EXPECT_TRUE(fut.done());
  });
}

TEST(WaitFor, test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started) {
  bool foo_started = false;
  auto foo = [&]() -> Coro<> {
    foo_started = true;
    co_return;
  };
  run_test([&]() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::wait_for(foo(), 0s), kettle::TimeoutError);
    CO_EXPECT_THROW(co_await kettle::wait_for(foo(), -1.0), kettle::TimeoutError);
  });
  EXPECT_FALSE(foo_started);
}

TEST(WaitFor, test_wait_for_timeout_less_then_0_or_0) {
  for (double timeout : {0.0, -1.0}) {
    std::optional<bool> foo_running;
    auto foo = [&](kettle::Future<> started) -> Coro<std::string> {
      foo_running = true;
      started.set_result();
      try {
        co_await kettle::sleep(10s);
      } catch (...) {
        foo_running = false;
        throw;
      }
      co_return "done";
    };
    run_test([&]() -> Coro<> {
      kettle::Future<> started;
      Task<std::string> fut = kettle::create_task(foo(started));
      co_await started;
      CO_EXPECT_THROW(co_await kettle::wait_for(fut, timeout), kettle::TimeoutError);
      EXPECT_TRUE(fut.done());
      EXPECT_TRUE(fut.cancelled());  // cancelled because of the timeout
      EXPECT_EQ(foo_running, false);
    });
  }
}

TEST(WaitFor, test_wait_for) {
  std::optional<bool> foo_running;
  auto foo = [&]() -> Coro<std::string> {
    foo_running = true;
    try {
      co_await kettle::sleep(3600s);
    } catch (...) {
      foo_running = false;
      throw;
    }
    co_return "done";
  };
  run_test([&]() -> Coro<> {
    Task<std::string> fut = kettle::create_task(foo());
    co_await kettle::sleep(0);  // foo starts before the deadline can pass
    CO_EXPECT_THROW(co_await kettle::wait_for(fut, 100ms), kettle::TimeoutError);
    EXPECT_TRUE(fut.done());
    EXPECT_TRUE(fut.cancelled());
    EXPECT_EQ(foo_running, false);
  });
}

TEST(WaitFor, test_wait_for_blocking) {
  auto coro = []() -> Coro<std::string> { co_return "done"; };
  run_test([&]() -> Coro<> {
    EXPECT_EQ(co_await kettle::wait_for(coro(), std::nullopt), "done");
    EXPECT_EQ(co_await kettle::wait_for(coro(), 1s), "done");
  });
}

TEST(WaitFor, test_wait_for_race_condition) {
  run_test([]() -> Coro<> {
    kettle::Future<std::string> fut;
    kettle::get_running_loop().call_soon([fut] { fut.set_result("ok"); });
    EXPECT_EQ(co_await kettle::wait_for(fut, 200ms), "ok");
  });
}

TEST(WaitFor, test_wait_for_cancellation_race_condition) {
  auto inner = []() -> Coro<int> {
    CO_EXPECT_THROW(co_await kettle::sleep(1s), kettle::CancelledError);
    co_return 1;
  };
  run_test([&]() -> Coro<> { EXPECT_EQ(co_await kettle::wait_for(inner(), 10ms), 1); });
}

TEST(WaitFor, test_wait_for_waits_for_task_cancellation) {
  bool task_done = false;
  auto inner = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      task_done = false;
    }
    co_await kettle::sleep(kEpsilon);  // takes its time to clean up
    task_done = true;
    throw kettle::CancelledError();
  };
  run_test([&]() -> Coro<> {
    Task<> inner_task = kettle::create_task(inner());
    co_await kettle::sleep(0);  // inner starts before the deadline can pass
    CO_EXPECT_THROW(co_await kettle::wait_for(inner_task, kEpsilon), kettle::TimeoutError);
    EXPECT_TRUE(task_done);  // wait_for waited until the task had really finished
  });
}

TEST(WaitFor, test_wait_for_waits_for_task_cancellation_w_timeout_0) {
  bool task_done = false;
  auto inner = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
    }
    co_await kettle::sleep(kEpsilon);
    task_done = true;
    throw kettle::CancelledError();
  };
  run_test([&]() -> Coro<> {
    Task<> inner_task = kettle::create_task(inner());
    co_await kettle::sleep(kEpsilon);
    CO_EXPECT_THROW(co_await kettle::wait_for(inner_task, 0s), kettle::TimeoutError);
    EXPECT_TRUE(task_done);
  });
}

TEST(WaitFor, test_wait_for_reraises_exception_during_cancellation) {
  struct FooException : std::exception {};
  auto inner = []() -> Coro<> {
    try {
      co_await kettle::sleep(200ms);
    } catch (...) {
    }
    throw FooException();
  };
  run_test([&]() -> Coro<> {
    Task<> inner_task = kettle::create_task(inner());
    co_await kettle::sleep(0);  // inner starts before the deadline can pass
    CO_EXPECT_THROW(co_await kettle::wait_for(inner_task, kEpsilon), FooException);
  });
}

TEST(WaitFor, test_cancel_wait_for) {
  for (std::optional<double> timeout : {std::optional<double>(60.0), std::optional<double>()}) {
    auto blocking = []() -> Coro<> {
      kettle::Future<> never;
      co_await never;
    };
    auto waiting = [](Task<> task, std::optional<double> t) -> Coro<> {
      if (t)
        co_await kettle::wait_for(task, *t);
      else
        co_await kettle::wait_for(task, std::nullopt);
    };
    run_test([&]() -> Coro<> {
      Task<> task = kettle::create_task(blocking());
      Task<> wait = kettle::create_task(waiting(task, timeout));
      kettle::get_running_loop().call_soon([wait]() mutable { wait.cancel(); });
      CO_EXPECT_THROW(co_await wait, kettle::CancelledError);
      EXPECT_TRUE(task.cancelled());  // cancelling the wait also cancels the task
    });
  }
}

TEST(WaitFor, test_wait_for_cancel_suppressed) {
  auto return_42 = []() -> Coro<int> {
    try {
      co_await kettle::sleep(10s);
    } catch (const kettle::CancelledError&) {
      co_return 42;
    }
    co_return 0;
  };
  run_test([&]() -> Coro<> { EXPECT_EQ(co_await kettle::wait_for(return_42(), 100ms), 42); });
}

TEST(WaitFor, test_wait_for_issue86296) {
  auto inner = []() -> Coro<std::string> { co_return "done"; };
  bool reached_end = false;
  auto wait_for_coro = [&](Task<std::string> inner_task) -> Coro<> {
    co_await kettle::wait_for(inner_task, 100s);
    co_await kettle::sleep(1s);
    reached_end = true;
  };
  run_test([&]() -> Coro<> {
    Task<std::string> inner_task = kettle::create_task(inner());
    Task<> task = kettle::create_task(wait_for_coro(inner_task));
    EXPECT_FALSE(task.done());
    co_await kettle::sleep(0);
    task.cancel();
    CO_EXPECT_THROW(co_await task, kettle::CancelledError);
    EXPECT_TRUE(inner_task.done());
    EXPECT_EQ(co_await inner_task, "done");
    EXPECT_FALSE(reached_end);
  });
}

TEST(WaitFor, test_wait_for_completed_coro_arms_no_timer) {
  auto quick = []() -> Coro<int> { co_return 3; };
  run_test([&]() -> Coro<> {
    for (int i = 0; i < 1000; ++i)
      EXPECT_EQ(co_await kettle::wait_for(quick(), 1s), 3);
    EXPECT_EQ(kettle::get_running_loop().core().timers.size(), 0u);
  });
}

// Huge deadlines mean none: they used to overflow (UBSan: signed integer overflow, a
// double out of range) and expire at once. NaN is ValueError.
TEST(Timeouts, test_timeout_huge_deadlines_never_expire) {
  run_test([]() -> Coro<> {
    double now = kettle::get_running_loop().time();
    {
      kettle::Timeout cm = kettle::timeout(1e20);
      co_await cm.run(sleep_for(5ms));
      EXPECT_FALSE(cm.expired());
    }
    {
      kettle::Timeout cm = kettle::timeout(std::chrono::hours::max());
      co_await cm.run(sleep_for(5ms));
      EXPECT_FALSE(cm.expired());
    }
    {
      kettle::Timeout cm = kettle::timeout_at(now + 1e20);
      co_await cm.run(sleep_for(5ms));
      EXPECT_FALSE(cm.expired());
    }
    {
      kettle::Timeout cm = kettle::timeout_at(kettle::Timeout::clock::time_point::max());
      co_await cm.run(sleep_for(5ms));
      EXPECT_FALSE(cm.expired());
    }
    co_await kettle::timeout(std::chrono::duration<double>(1e300), sleep_for(5ms));
    co_await kettle::wait_for(sleep_for(5ms), 1e300);
    co_await kettle::wait_for(sleep_for(5ms), std::chrono::hours::max());
    {
      kettle::Timeout cm = kettle::timeout(std::nullopt);
      auto body = [&]() -> Coro<> {
        cm.reschedule(now + 1e20);
        co_await kettle::sleep(5ms);
        cm.reschedule(kettle::Timeout::clock::time_point::max());
        co_await kettle::sleep(1ms);
        EXPECT_THROW(cm.reschedule(std::nan("")), kettle::ValueError);
      };
      co_await cm.run(body());
      EXPECT_FALSE(cm.expired());
    }
    // A hugely negative delay is simply in the past.
    CO_EXPECT_THROW(co_await kettle::timeout(std::chrono::duration<double>(-1e300), sleep_for(1s)),
                    kettle::TimeoutError);
  });
}

TEST(Timeouts, test_nan_is_value_error) {
  EXPECT_THROW(kettle::timeout(std::nan("")), kettle::ValueError);
  EXPECT_THROW(kettle::timeout(std::chrono::duration<double>(std::nan(""))), kettle::ValueError);
  EXPECT_THROW(kettle::timeout_at(std::nan("")), kettle::ValueError);
  run_test([]() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::wait_for(sleep_for(1ms), std::nan("")), kettle::ValueError);
    CO_EXPECT_THROW(
        co_await kettle::wait_for(sleep_for(1ms), std::chrono::duration<double>(std::nan(""))),
        kettle::ValueError);
    std::vector<Task<>> ts{kettle::create_task(sleep_for(1ms))};
    CO_EXPECT_THROW((void)co_await kettle::wait(ts, kettle::ALL_COMPLETED,
                                                std::chrono::duration<double>(std::nan(""))),
                    kettle::ValueError);
    CO_EXPECT_THROW((void)kettle::as_completed(ts, std::chrono::duration<double>(std::nan(""))),
                    kettle::ValueError);
    co_await ts[0];
  });
}
