// kettle::Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier.
// Names follow CPython's test_locks.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::Task;

namespace {
template <class F>
void run_test(F body) {
  kettle::run(body());
}
// asyncio.create_task(lock.acquire()) needs a coroutine around the awaitable in C++.
Coro<bool> acquire(kettle::Lock& l) {
  co_await l.acquire();
  co_return true;
}
Coro<bool> acquire(kettle::Semaphore& s) {
  co_await s.acquire();
  co_return true;
}
}  // namespace

// Lock ------------------------------------------------------------------------------------

TEST(Lock, test_acquire) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    std::vector<int> result;
    co_await lock.acquire();
    auto c = [&](int n) -> Coro<bool> {
      co_await lock.acquire();
      result.push_back(n);
      co_return true;
    };
    Task<bool> t1 = kettle::create_task(c(1));
    Task<bool> t2 = kettle::create_task(c(2));
    co_await kettle::sleep(0);
    EXPECT_EQ(result, std::vector<int>{});
    lock.release();
    co_await kettle::sleep(0);
    EXPECT_EQ(result, std::vector<int>{1});
    co_await kettle::sleep(0);
    EXPECT_EQ(result, std::vector<int>{1});
    Task<bool> t3 = kettle::create_task(c(3));
    lock.release();
    co_await kettle::sleep(0);
    EXPECT_EQ(result, (std::vector<int>{1, 2}));
    lock.release();
    co_await kettle::sleep(0);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
  });
}

TEST(Lock, test_acquire_cancel) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    co_await lock.acquire();
    Task<bool> task = kettle::create_task(acquire(lock));
    kettle::get_running_loop().call_soon([task]() mutable { task.cancel(); });
    EXPECT_THROW(co_await task, kettle::CancelledError);
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());  // the cancelled waiter left nothing behind
    co_await lock.acquire();      // fast path: no waiter is in the way
    lock.release();
  });
}

TEST(Lock, test_cancel_race) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    auto lockit = [&](kettle::Future<>* blocker) -> Coro<> {
      co_await lock.acquire();
      try {
        if (blocker) co_await *blocker;
      } catch (...) {
        lock.release();
        throw;
      }
      lock.release();
    };
    kettle::Future<> fa;
    Task<> ta = kettle::create_task(lockit(&fa));
    co_await kettle::sleep(0);
    EXPECT_TRUE(lock.locked());
    Task<> tb = kettle::create_task(lockit(nullptr));
    co_await kettle::sleep(0);
    Task<> tc = kettle::create_task(lockit(nullptr));
    co_await kettle::sleep(0);
    // The race: B is cancelled while A releases the lock; C must get it.
    fa.set_result();
    tb.cancel();
    co_await kettle::sleep(0);
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(ta.done());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
  });
}

TEST(Lock, test_cancel_release_race) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    int lock_count = 0, call_count = 0;
    auto lockit = [&]() -> Coro<> {
      ++call_count;
      co_await lock.acquire();
      ++lock_count;
    };
    co_await lock.acquire();
    Task<> t1 = kettle::create_task(lockit());
    Task<> t2 = kettle::create_task(lockit());
    Task<> t3 = kettle::create_task(lockit());
    co_await kettle::sleep(0);  // start them
    kettle::get_running_loop().call_soon([&] {
      t1.cancel();
      lock.release();
    });
    EXPECT_THROW(co_await t1, kettle::CancelledError);
    EXPECT_EQ(lock_count, 1);  // only one lock was taken
    EXPECT_EQ(call_count, 3);
    EXPECT_TRUE(t1.cancelled() && t2.done());
    t3.cancel();
    co_await kettle::sleep(0);
    EXPECT_TRUE(t3.cancelled());
  });
}

TEST(Lock, test_finished_waiter_cancelled) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    Task<bool> tb = kettle::create_task(acquire(lock));
    co_await kettle::sleep(0);
    // A second waiter; wake the first up and cancel it: the second must not be forgotten.
    Task<bool> tc = kettle::create_task(acquire(lock));
    tb.cancel();
    lock.release();
    co_await kettle::sleep(0);
    EXPECT_TRUE(lock.locked());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
  });
}

TEST(Lock, test_release_not_acquired) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    EXPECT_THROW(lock.release(), kettle::RuntimeError);
    co_return;
  });
}

TEST(Lock, test_scoped_releases_on_exception_and_cancellation) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    auto failing = [&]() -> Coro<> {
      auto held = co_await lock.scoped();
      EXPECT_TRUE(lock.locked());
      throw std::runtime_error("inside");
    };
    EXPECT_THROW(co_await failing(), std::runtime_error);
    EXPECT_FALSE(lock.locked());
    auto sleeping = [&]() -> Coro<> {
      auto held = co_await lock.scoped();
      co_await kettle::sleep(10s);
    };
    Task<> t = kettle::create_task(sleeping());
    co_await kettle::sleep(1ms);
    EXPECT_TRUE(lock.locked());
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);
    EXPECT_FALSE(lock.locked());
  });
}

TEST(Lock, test_foreign_thread_raises) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    co_await lock.acquire();
    bool raised = false;
    std::thread other([&] {
      try {
        lock.release();
      } catch (const kettle::RuntimeError&) {
        raised = true;
      }
    });
    other.join();
    EXPECT_TRUE(raised);
    EXPECT_TRUE(lock.locked());
    lock.release();
  });
}

TEST(Lock, test_other_loop_raises) {
  kettle::Lock lock;
  run_test([&]() -> Coro<> {
    co_await lock.acquire();
    lock.release();
  });
  run_test([&]() -> Coro<> {  // a new loop: the lock is bound to the first one
    EXPECT_THROW(co_await lock.acquire(), kettle::RuntimeError);
  });
}

// Event -----------------------------------------------------------------------------------

TEST(Event, test_wait) {
  run_test([]() -> Coro<> {
    kettle::Event ev;
    EXPECT_FALSE(ev.is_set());
    std::vector<int> result;
    auto c = [&](int n) -> Coro<> {
      if (co_await ev.wait()) result.push_back(n);
    };
    Task<> t1 = kettle::create_task(c(1));
    Task<> t2 = kettle::create_task(c(2));
    co_await kettle::sleep(0);
    EXPECT_TRUE(result.empty());
    Task<> t3 = kettle::create_task(c(3));
    ev.set();
    co_await kettle::sleep(0);
    EXPECT_EQ(result, (std::vector<int>{3, 1, 2}));  // t3 had not started waiting yet
    co_await kettle::gather(t1, t2, t3);
    EXPECT_TRUE(co_await ev.wait());  // set: returns at once
  });
}

TEST(Event, test_clear_with_waiters) {
  run_test([]() -> Coro<> {
    kettle::Event ev;
    std::vector<int> result;
    auto c1 = [&]() -> Coro<bool> {
      if (co_await ev.wait()) result.push_back(1);
      co_return true;
    };
    Task<bool> t = kettle::create_task(c1());
    co_await kettle::sleep(0);
    EXPECT_TRUE(result.empty());
    ev.set();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    ev.set();
    ev.set();
    co_await kettle::sleep(0);
    EXPECT_EQ(result, std::vector<int>{1});
    EXPECT_TRUE(t.done() && t.result());
  });
}

TEST(Event, test_wait_cancel) {
  run_test([]() -> Coro<> {
    kettle::Event ev;
    auto w = [&]() -> Coro<> { co_await ev.wait(); };
    Task<> t = kettle::create_task(w());
    co_await kettle::sleep(0);
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);
    ev.set();
  });
}

// Condition --------------------------------------------------------------------------------

TEST(Condition, test_wait_and_notify) {
  run_test([]() -> Coro<> {
    kettle::Condition cond;
    std::vector<int> result;
    auto c = [&](int n) -> Coro<> {
      auto held = co_await cond.scoped();
      co_await cond.wait();
      result.push_back(n);
    };
    std::vector<Task<>> ts;
    for (int i = 1; i <= 3; ++i)
      ts.push_back(kettle::create_task(c(i)));
    co_await kettle::sleep(0);
    EXPECT_FALSE(cond.locked());
    {
      auto held = co_await cond.scoped();
      cond.notify(1);
    }
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_EQ(result, std::vector<int>{1});
    {
      auto held = co_await cond.scoped();
      cond.notify_all();
    }
    co_await kettle::gather(ts);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
  });
}

TEST(Condition, test_wait_for) {
  run_test([]() -> Coro<> {
    kettle::Condition cond;
    int presult = 0;
    auto waiter = [&]() -> Coro<bool> {
      auto held = co_await cond.scoped();
      co_return co_await cond.wait_for([&] { return presult == 2; });
    };
    auto t = kettle::create_task(waiter());
    co_await kettle::sleep(0);
    for (int i = 1; i <= 2; ++i) {
      auto held = co_await cond.scoped();
      presult = i;
      cond.notify();
    }
    EXPECT_TRUE(co_await t);
  });
}

TEST(Condition, test_wait_cancel_contested) {
  run_test([]() -> Coro<> {
    kettle::Condition cond;
    co_await cond.acquire();
    auto wait_coro = [&]() -> Coro<bool> { co_return co_await cond.wait(); };
    Task<bool> wait_task = kettle::create_task(wait_coro());
    co_await kettle::sleep(0);
    EXPECT_FALSE(cond.locked());
    // Notify, but contest the lock before cancelling.
    co_await cond.acquire();
    EXPECT_TRUE(cond.locked());
    cond.notify();
    kettle::get_running_loop().call_soon([&] { wait_task.cancel(); });
    kettle::get_running_loop().call_soon([&] { cond.release(); });
    try {
      co_await wait_task;
    } catch (const kettle::CancelledError&) {
    }
    EXPECT_TRUE(cond.locked());  // wait() returned holding the lock, cancelled or not
  });
}

TEST(Condition, test_wait_cancel_after_notify) {
  run_test([]() -> Coro<> {
    bool waited = false;
    kettle::Condition cond;
    auto wait_on_cond = [&]() -> Coro<> {
      auto held = co_await cond.scoped();
      waited = true;
      co_await cond.wait();
    };
    Task<> waiter = kettle::create_task(wait_on_cond());
    co_await kettle::sleep(0);  // start waiting
    co_await cond.acquire();
    cond.notify();
    co_await kettle::sleep(0);  // get to acquire()
    waiter.cancel();
    co_await kettle::sleep(0);  // activate the cancellation
    cond.release();
    co_await kettle::sleep(0);  // the cancellation occurs
    co_await kettle::sleep(0);
    EXPECT_TRUE(waiter.cancelled());
    EXPECT_TRUE(waited);
    EXPECT_FALSE(cond.locked());
  });
}

TEST(Condition, test_cancelled_error_re_aquire) {
  run_test([]() -> Coro<> {
    bool wake = false;
    kettle::Condition cond;
    auto func = [&]() -> Coro<> {
      auto held = co_await cond.scoped();
      co_await cond.wait_for([&] { return wake; });
    };
    Task<> task = kettle::create_task(func());
    co_await kettle::sleep(0);  // waiting on the condition
    co_await cond.acquire();
    wake = true;
    cond.notify();
    co_await kettle::sleep(0);  // the task now tries to re-acquire the lock: cancel it there
    task.cancel("foo");
    cond.release();
    try {
      co_await task;
      ADD_FAILURE() << "expected CancelledError";
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), "foo");
    }
    EXPECT_FALSE(cond.locked());
  });
}

TEST(Condition, test_cancelled_wakeup) {
  // A task cancelled at the "same" time as it is notified does not lose the wake-up.
  run_test([]() -> Coro<> {
    kettle::Condition condition;
    int state = 0;
    auto consumer = [&]() -> Coro<> {
      auto held = co_await condition.scoped();
      for (;;) {
        co_await condition.wait_for([&] { return state != 0; });
        if (state < 0) co_return;
        state -= 1;
        condition.notify_all();  // CPython relies on its 10 ms timeout here; a loaded
                                 // machine may not consume within it
      }
    };
    std::vector<Task<>> c{kettle::create_task(consumer()), kettle::create_task(consumer())};
    co_await kettle::sleep(0);
    {
      auto held = co_await condition.scoped();
      state += 1;
      condition.notify(1);
      c[0].cancel();  // cancelled while waiting to run
      try {
        co_await kettle::timeout(1s, condition.wait_for([&] { return state == 0; }));
      } catch (const kettle::TimeoutError&) {
      }
      EXPECT_EQ(state, 0);
      state = -1;
      condition.notify_all();
    }
    co_await c[1];
  });
}

TEST(Condition, test_notify_unacquired) {
  run_test([]() -> Coro<> {
    kettle::Condition cond;
    EXPECT_THROW(cond.notify(), kettle::RuntimeError);
    EXPECT_THROW(cond.notify_all(), kettle::RuntimeError);
    EXPECT_THROW(co_await cond.wait(), kettle::RuntimeError);
  });
}

TEST(Condition, test_explicit_lock) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    kettle::Condition cond(lock);
    co_await lock.acquire();
    EXPECT_TRUE(cond.locked());
    cond.release();
    EXPECT_FALSE(lock.locked());
  });
}

// Semaphore --------------------------------------------------------------------------------

TEST(Semaphore, test_initial_value_zero_and_negative) {
  kettle::Semaphore sem(0);
  EXPECT_TRUE(sem.locked());
  EXPECT_THROW(kettle::Semaphore(-1), kettle::ValueError);
}

TEST(Semaphore, test_acquire_fifo_order) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(1);
    std::vector<std::string> result;
    auto coro = [&](std::string tag) -> Coro<> {
      co_await sem.acquire();
      result.push_back(tag + "_1");
      co_await kettle::sleep(10ms);
      sem.release();
      co_await sem.acquire();
      result.push_back(tag + "_2");
      co_await kettle::sleep(10ms);
      sem.release();
    };
    co_await kettle::gather(coro("c1"), coro("c2"), coro("c3"));
    EXPECT_EQ(result, (std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"}));
  });
}

TEST(Semaphore, test_acquire_fifo_order_2) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(1);
    std::vector<int> result;
    auto c1 = [&]() -> Coro<> {
      co_await sem.acquire();
      result.push_back(1);
    };
    auto c2 = [&]() -> Coro<> {
      co_await sem.acquire();
      result.push_back(2);
      sem.release();
      co_await sem.acquire();
      result.push_back(4);
    };
    auto c3 = [&]() -> Coro<> {
      co_await sem.acquire();
      result.push_back(3);
    };
    Task<> t1 = kettle::create_task(c1());
    Task<> t2 = kettle::create_task(c2());
    Task<> t3 = kettle::create_task(c3());
    co_await kettle::sleep(0);
    sem.release();
    sem.release();
    co_await kettle::gather(t1, t2, t3);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
  });
}

TEST(Semaphore, test_acquire_fifo_order_3) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(0);
    std::vector<int> result;
    auto c = [&](int n) -> Coro<> {
      co_await sem.acquire();
      result.push_back(n);
    };
    Task<> t1 = kettle::create_task(c(1));
    Task<> t2 = kettle::create_task(c(2));
    Task<> t3 = kettle::create_task(c(3));
    co_await kettle::sleep(0);
    t1.cancel();
    co_await kettle::sleep(0);
    sem.release();
    sem.release();
    co_await kettle::gather(kettle::return_exceptions, t1, t2, t3);
    EXPECT_EQ(result, (std::vector<int>{2, 3}));
  });
}

TEST(Semaphore, test_acquire_fifo_order_4) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(0);
    std::vector<int> result;
    Task<> t4;
    auto c4 = [&]() -> Coro<> {
      result.push_back(4);
      co_return;
    };
    auto c1 = [&]() -> Coro<> {
      EXPECT_EQ(sem.value(), 0);
      co_await sem.acquire();
      EXPECT_EQ(sem.value(), 0);       // every waiting task was woken
      t4 = kettle::create_task(c4());  // runs after c3, not c2
      result.push_back(1);
    };
    auto c2 = [&]() -> Coro<> {
      sem.release();
      sem.release();
      sem.release();
      EXPECT_EQ(sem.value(), 2);
      EXPECT_TRUE(sem.locked());  // c1 has not woken yet
      co_await sem.acquire();
      result.push_back(2);
    };
    auto c3 = [&]() -> Coro<> {
      co_await sem.acquire();
      EXPECT_TRUE(sem.locked());
      result.push_back(3);
    };
    Task<> t1 = kettle::create_task(c1());
    Task<> t2 = kettle::create_task(c2());
    Task<> t3 = kettle::create_task(c3());
    co_await kettle::sleep(0);
    EXPECT_EQ(sem.value(), 2);
    co_await kettle::sleep(0);
    co_await kettle::gather(t1, t2, t3);
    co_await t4;
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
  });
}

TEST(Semaphore, test_acquire_hang) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(0);
    Task<bool> t1 = kettle::create_task(acquire(sem));
    Task<bool> t2 = kettle::create_task(acquire(sem));
    co_await kettle::sleep(0);
    t1.cancel();
    sem.release();
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_TRUE(sem.locked());
    EXPECT_TRUE(t2.done());
  });
}

TEST(Semaphore, test_acquire_cancel_before_awoken) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(0);
    std::vector<Task<bool>> t;
    for (int i = 0; i < 4; ++i)
      t.push_back(kettle::create_task(acquire(sem)));
    co_await kettle::sleep(0);
    t[0].cancel();
    t[1].cancel();
    sem.release();
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_TRUE(t[2].done());
    EXPECT_FALSE(t[3].done());
    t[2].cancel();
    t[3].cancel();
    co_await kettle::sleep(0);
  });
}

TEST(Semaphore, test_bounded_over_release) {
  run_test([]() -> Coro<> {
    kettle::BoundedSemaphore sem(2);
    co_await sem.acquire();
    sem.release();
    EXPECT_THROW(sem.release(), kettle::ValueError);
    kettle::Semaphore unbounded(1);
    unbounded.release();  // fine: not bounded
    EXPECT_EQ(unbounded.value(), 2);
  });
}

TEST(Semaphore, test_scoped) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(2);
    int inside = 0, peak = 0;
    auto worker = [&]() -> Coro<> {
      auto slot = co_await sem.scoped();
      peak = std::max(peak, ++inside);
      co_await kettle::sleep(1ms);
      --inside;
    };
    std::vector<Coro<>> ws;
    for (int i = 0; i < 6; ++i)
      ws.push_back(worker());
    co_await kettle::gather(ws);
    EXPECT_EQ(peak, 2);
    EXPECT_EQ(sem.value(), 2);
  });
}

// Barrier ----------------------------------------------------------------------------------

TEST(Barrier, test_barrier_parties) {
  EXPECT_THROW(kettle::Barrier(0), kettle::ValueError);
  kettle::Barrier b(5);
  EXPECT_EQ(b.parties(), 5u);
}

TEST(Barrier, test_filling_tasks_check_return_value) {
  run_test([]() -> Coro<> {
    kettle::Barrier barrier(3);
    std::vector<std::size_t> indices;
    auto w = [&]() -> Coro<> { indices.push_back(co_await barrier.wait()); };
    co_await kettle::gather(w(), w(), w());
    std::sort(indices.begin(), indices.end());
    EXPECT_EQ(indices, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_FALSE(barrier.broken());
  });
}

TEST(Barrier, test_reset_barrier_while_tasks_waiting) {
  run_test([]() -> Coro<> {
    kettle::Barrier barrier(3);
    int broken = 0;
    auto w = [&]() -> Coro<> {
      try {
        co_await barrier.wait();
      } catch (const kettle::BrokenBarrierError&) {
        ++broken;
      }
    };
    Task<> t1 = kettle::create_task(w());
    Task<> t2 = kettle::create_task(w());
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_EQ(barrier.n_waiting(), 2u);
    co_await barrier.reset();
    co_await kettle::gather(t1, t2);
    EXPECT_EQ(broken, 2);
    EXPECT_FALSE(barrier.broken());  // reset: usable again
    co_await kettle::gather(w(), w(), w());
    EXPECT_EQ(broken, 2);
  });
}

TEST(Barrier, test_abort_barrier) {
  run_test([]() -> Coro<> {
    kettle::Barrier barrier(3);
    int broken = 0;
    auto w = [&]() -> Coro<> {
      try {
        co_await barrier.wait();
      } catch (const kettle::BrokenBarrierError&) {
        ++broken;
      }
    };
    Task<> t1 = kettle::create_task(w());
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    co_await barrier.abort();
    co_await t1;
    EXPECT_TRUE(barrier.broken());
    co_await w();  // later waits fail at once
    EXPECT_EQ(broken, 2);
  });
}

TEST(Barrier, test_abort_barrier_when_exception_then_resetting) {
  run_test([]() -> Coro<> {
    kettle::Barrier barrier(2);
    co_await barrier.abort();
    EXPECT_TRUE(barrier.broken());
    co_await barrier.reset();
    EXPECT_FALSE(barrier.broken());
    auto w = [&]() -> Coro<std::size_t> { co_return co_await barrier.wait(); };
    auto [a, b] = co_await kettle::gather(w(), w());
    EXPECT_EQ(a + b, 1u);
  });
}

// loop.close() destroys a pending task whose coroutine holds the lock (`async with`): the
// guard releases it, which used to throw "no running loop" inside a destructor
// (std::terminate). Python leaves the lock released.
TEST(Lock, test_close_with_task_holding_lock) {
  kettle::Lock lock;
  kettle::Semaphore sem(1);
  {
    kettle::EventLoop loop;
    loop.set_exception_handler([](kettle::EventLoop&, const kettle::ExceptionContext&) {});
    auto holder = [&]() -> Coro<> {
      auto l = co_await lock.scoped();
      auto s = co_await sem.scoped();
      co_await kettle::sleep(3600s);
    };
    auto waiter = [&]() -> Coro<> {
      auto l = co_await lock.scoped();  // waits behind the holder
      co_await kettle::sleep(3600s);
    };
    auto start = [&]() -> Coro<> {
      (void)kettle::create_task(holder());
      (void)kettle::create_task(waiter());
      co_await kettle::sleep(1ms);
    };
    loop.run_until_complete(start());
    EXPECT_TRUE(lock.locked());
    EXPECT_EQ(sem.value(), 0);
    loop.close();
    EXPECT_FALSE(lock.locked());
    EXPECT_EQ(sem.value(), 1);
  }
}

TEST(Semaphore, test_release_overflow) {
  run_test([]() -> Coro<> {
    kettle::Semaphore sem(std::numeric_limits<long>::max());
    EXPECT_THROW(sem.release(), kettle::ValueError);
    EXPECT_EQ(sem.value(), std::numeric_limits<long>::max());
    co_return;
  });
}

// Woken (handed the unit, the lock's turn) just before the loop closed, and destroyed with it
// before it could run: the unit goes back (the semaphore used to lose it).
TEST(Semaphore, test_close_with_waiter_woken_but_not_resumed) {
  kettle::Semaphore sem(1);
  kettle::Lock lock;
  {
    kettle::EventLoop loop;
    loop.set_exception_handler([](kettle::EventLoop&, const kettle::ExceptionContext&) {});
    auto waiter = [&]() -> Coro<> {
      auto s = co_await sem.scoped();
      auto l = co_await lock.scoped();
      co_await kettle::sleep(3600s);
    };
    auto start = [&]() -> Coro<> {
      co_await sem.acquire();
      co_await lock.acquire();
      (void)kettle::create_task(waiter());
      co_await kettle::sleep(1ms);  // the waiter now waits for the semaphore
    };
    loop.run_until_complete(start());
    EXPECT_EQ(sem.value(), 0);
    loop.call_soon([&] {
      sem.release();  // hands the unit to the waiter, which will not run before the stop
      loop.stop();
    });
    loop.run_forever();
    EXPECT_EQ(sem.value(), 0);  // taken for the waiter
    loop.close();
  }
  EXPECT_EQ(sem.value(), 1);
  EXPECT_TRUE(lock.locked());  // still held by start(), which finished holding it
}
