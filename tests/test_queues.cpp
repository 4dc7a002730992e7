// kettle::Queue, LifoQueue, PriorityQueue. Names follow CPython's test_queues.py.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
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
template <class Q>
Coro<> put(Q& q, typename std::remove_cvref_t<decltype(std::declval<Q&>().get_nowait())> v) {
  co_await q.put(std::move(v));
}
template <class Q>
Coro<decltype(std::declval<Q&>().get_nowait())> get(Q& q) {
  co_return co_await q.get();
}
template <class Q>
Coro<> join(Q& q) {
  co_await q.join();
}

#define CO_EXPECT_SHUTDOWN(expr)                                  \
  do {                                                            \
    bool thrown_ = false;                                         \
    try {                                                         \
      expr;                                                       \
    } catch (const kettle::QueueShutDown&) {                      \
      thrown_ = true;                                             \
    }                                                             \
    EXPECT_TRUE(thrown_) << #expr " did not raise QueueShutDown"; \
  } while (0)
}  // namespace

TEST(Queue, test_maxsize) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q(2);
    EXPECT_EQ(q.maxsize(), 2);
    std::vector<int> have_been_put;
    auto putter = [&]() -> Coro<bool> {
      for (int i = 0; i < 3; ++i) {
        co_await q.put(i);
        have_been_put.push_back(i);
      }
      co_return true;
    };
    Task<bool> t = kettle::create_task(putter());
    for (int i = 0; i < 2; ++i)
      co_await kettle::sleep(0);
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1}));  // blocked after two
    EXPECT_EQ(co_await q.get(), 0);
    co_await kettle::sleep(0);  // the putter resumes and puts the last item
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(co_await q.get(), 2);
    EXPECT_TRUE(t.done() && t.result());
  });
}

TEST(Queue, test_blocking_put) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q;  // unbounded: never blocks
    co_await q.put(1);
    EXPECT_EQ(co_await q.get(), 1);
  });
}

TEST(Queue, test_nowait) {
  kettle::Queue<int> q(1);
  EXPECT_THROW(q.get_nowait(), kettle::QueueEmpty);
  q.put_nowait(1);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(2), kettle::QueueFull);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_TRUE(q.empty());
}

TEST(Queue, test_put_cancel_drop) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q(1);
    q.put_nowait(1);
    Task<> writer = kettle::create_task(put(q, 2));  // has to block
    co_await kettle::sleep(0);
    EXPECT_EQ(q.get_nowait(), 1);
    writer.cancel();
    bool cancelled = false;
    try {
      co_await writer;
    } catch (const kettle::CancelledError&) {
      cancelled = true;
    }
    if (cancelled) {
      writer = kettle::create_task(put(q, 2));  // try again
      co_await writer;
    }
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_EQ(q.qsize(), 0u);  // the cancelled put inserted nothing
  });
}

TEST(Queue, test_get_cancelled_race) {
  run_test([]() -> Coro<> {
    kettle::Queue<std::string> q;
    Task<std::string> t1 = kettle::create_task(get(q));
    Task<std::string> t2 = kettle::create_task(get(q));
    co_await kettle::sleep(0);
    t1.cancel();
    co_await kettle::sleep(0);
    EXPECT_TRUE(t1.done());
    co_await q.put("a");
    co_await kettle::sleep(0);
    EXPECT_EQ(co_await t2, "a");
  });
}

TEST(Queue, test_get_woken_then_cancelled_leaves_item) {
  // A getter woken for an item but cancelled before it runs leaves the item at the head
  // of the queue and passes the wake-up to the next getter.
  run_test([]() -> Coro<> {
    kettle::Queue<std::string> q;
    Task<std::string> t1 = kettle::create_task(get(q));
    Task<std::string> t2 = kettle::create_task(get(q));
    co_await kettle::sleep(0);
    q.put_nowait("a");  // wakes t1
    t1.cancel();        // before t1 runs
    EXPECT_THROW(co_await t1, kettle::CancelledError);
    EXPECT_EQ(co_await t2, "a");
    EXPECT_TRUE(q.empty());
  });
}

TEST(Queue, test_put_cancelled_race) {
  run_test([]() -> Coro<> {
    kettle::Queue<std::string> q(1);
    Task<> put_a = kettle::create_task(put(q, "a"));
    Task<> put_b = kettle::create_task(put(q, "b"));
    Task<> put_c = kettle::create_task(put(q, "X"));
    co_await kettle::sleep(0);
    EXPECT_TRUE(put_a.done());
    EXPECT_FALSE(put_b.done());
    put_c.cancel();
    co_await kettle::sleep(0);
    EXPECT_TRUE(put_c.done());
    EXPECT_EQ(q.get_nowait(), "a");
    co_await kettle::sleep(0);
    EXPECT_EQ(q.get_nowait(), "b");
    co_await put_b;
  });
}

TEST(Queue, test_why_are_getters_waiting) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q(1);
    auto consumer = [&](int n) -> Coro<> {
      for (int i = 0; i < n; ++i)
        co_await q.get();
    };
    auto producer = [&](int n) -> Coro<> {
      for (int i = 0; i < n; ++i)
        co_await q.put(i);
    };
    co_await kettle::task_group([&](kettle::TaskGroup& tg) -> Coro<> {
      tg.create_task(producer(5));
      tg.create_task(consumer(5));
      co_return;
    });
  });
}

TEST(Queue, test_why_are_putters_waiting) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q(2);
    auto getter = [&]() -> Coro<> {
      co_await kettle::sleep(0);
      std::size_t n = q.qsize();
      for (std::size_t i = 0; i < n; ++i)
        q.get_nowait();
    };
    co_await kettle::task_group([&](kettle::TaskGroup& tg) -> Coro<> {
      tg.create_task(getter());
      for (int i = 0; i < 4; ++i)
        tg.create_task(put(q, i));
      co_return;
    });
  });
}

TEST(Queue, test_cancelled_getters_not_being_held_in_self_getters) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q(5);
    EXPECT_THROW(co_await kettle::wait_for(get(q), 100ms), kettle::TimeoutError);
    q.put_nowait(1);  // nobody is still registered as waiting for it
    EXPECT_EQ(q.qsize(), 1u);
  });
}

TEST(Queue, test_task_done_underflow) {
  kettle::Queue<int> q;
  EXPECT_THROW(q.task_done(), kettle::ValueError);
}

TEST(Queue, test_join_empty_queue) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q;
    co_await q.join();
    co_await q.join();
  });
}

TEST(Queue, test_task_done_and_join) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q;
    int accumulator = 0;
    auto worker = [&]() -> Coro<> {
      for (;;) {
        int item = co_await q.get();
        accumulator += item;
        q.task_done();
      }
    };
    for (int i = 0; i < 100; ++i)
      q.put_nowait(i);
    std::vector<Task<>> workers{kettle::create_task(worker()), kettle::create_task(worker())};
    co_await q.join();
    EXPECT_EQ(accumulator, 4950);
    for (auto& w : workers)
      w.cancel();
    co_await kettle::gather(kettle::return_exceptions, workers);
  });
}

TEST(Queue, test_order) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q;
    for (int i : {1, 3, 2})
      co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i)
      items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{1, 3, 2}));
  });
}

TEST(LifoQueue, test_order) {
  run_test([]() -> Coro<> {
    kettle::LifoQueue<int> q;
    for (int i : {1, 3, 2})
      co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i)
      items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{2, 3, 1}));
  });
}

TEST(PriorityQueue, test_order) {
  run_test([]() -> Coro<> {
    kettle::PriorityQueue<int> q;
    for (int i : {1, 3, 2})
      co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i)
      items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{1, 2, 3}));
    kettle::PriorityQueue<int, std::greater<int>> largest_first;
    for (int i : {1, 3, 2})
      largest_first.put_nowait(i);
    EXPECT_EQ(largest_first.get_nowait(), 3);
  });
}

TEST(Queue, test_move_only_items) {
  run_test([]() -> Coro<> {
    kettle::Queue<std::unique_ptr<int>> q(1);
    auto producer = [&]() -> Coro<> {
      for (int i = 0; i < 3; ++i)
        co_await q.put(std::make_unique<int>(i));
    };
    Task<> p = kettle::create_task(producer());
    int sum = 0;
    for (int i = 0; i < 3; ++i)
      sum += *co_await q.get();
    co_await p;
    EXPECT_EQ(sum, 3);
    auto by_value = [](const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) {
      return *a < *b;
    };
    kettle::PriorityQueue<std::unique_ptr<int>, decltype(by_value)> pq;
    pq.put_nowait(std::make_unique<int>(5));
    pq.put_nowait(std::make_unique<int>(2));
    EXPECT_EQ(*pq.get_nowait(), 2);
  });
}

// Threads: a queue is not thread-safe while its loop exists; its nowait methods are allowed on
// the loop's thread between runs and anywhere once the loop is gone (asyncio's never check).

TEST(Queue, test_nowait_from_another_thread_while_its_loop_runs_raises) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q;
    Task<int> getter = kettle::create_task(get(q));
    co_await kettle::sleep(0);  // waiting: the queue is bound to this loop
    bool put_raised = false;
    std::thread other([&] {
      try {
        q.put_nowait(1);
      } catch (const kettle::RuntimeError& e) {
        put_raised =
            std::string(e.what()).find("an event loop of another thread") != std::string::npos;
      }
    });
    other.join();
    EXPECT_TRUE(put_raised);
    EXPECT_FALSE(getter.done());
    q.put_nowait(2);
    EXPECT_EQ(co_await getter, 2);
  });
}

TEST(Queue, test_nowait_between_runs_of_its_loop) {
  // A loop the program keeps: between its runs the queue is plain data for the loop's
  // thread, not for another one (the loop could run again there at any time).
  kettle::Queue<int> q;
  auto loop = std::make_unique<kettle::EventLoop>();
  loop->run_until_complete([](kettle::Queue<int>& q) -> Coro<> {
    Task<int> getter = kettle::create_task(get(q));
    co_await kettle::sleep(0);  // bound to this loop
    q.put_nowait(1);
    EXPECT_EQ(co_await getter, 1);
  }(q));
  q.put_nowait(2);  // its thread, the loop stopped
  bool raised = false;
  std::thread([&] {
    try {
      q.get_nowait();
    } catch (const kettle::RuntimeError&) {
      raised = true;
    }
  }).join();
  EXPECT_TRUE(raised);
  EXPECT_EQ(q.qsize(), 1u);
  loop.reset();  // gone: anyone may use the queue now
  int got = 0;
  std::thread([&] { got = q.get_nowait(); }).join();
  EXPECT_EQ(got, 2);
}

TEST(Queue, test_nowait_once_its_loop_is_gone) {
  kettle::Queue<int> q(2);
  run_test([&]() -> Coro<> {
    Task<int> getter = kettle::create_task(get(q));
    co_await kettle::sleep(0);  // bound to this loop
    q.put_nowait(1);
    EXPECT_EQ(co_await getter, 1);
    q.put_nowait(2);  // left in the queue when the loop ends
  });
  EXPECT_EQ(q.get_nowait(), 2);  // drained after kettle::run, on its thread
  q.put_nowait(3);
  int from_thread = 0;
  std::thread([&] { from_thread = q.get_nowait(); }).join();
  EXPECT_EQ(from_thread, 3);
  run_test([&]() -> Coro<> {
    q.put_nowait(4);  // another loop, the bound one gone
    EXPECT_EQ(q.get_nowait(), 4);
    EXPECT_THROW(co_await q.get(), kettle::RuntimeError);  // waiting stays bound, as asyncio
  });
}

// Shutdown, for each kind of queue ---------------------------------------------------------

template <class Q>
class QueueShutdown : public testing::Test {};
using QueueKinds = testing::Types<kettle::Queue<std::string>, kettle::LifoQueue<std::string>,
                                  kettle::PriorityQueue<std::string>>;
TYPED_TEST_SUITE(QueueShutdown, QueueKinds);

TYPED_TEST(QueueShutdown, test_shutdown_empty) {
  run_test([]() -> Coro<> {
    TypeParam q;
    Task<std::string> get_task = kettle::create_task(get(q));
    co_await kettle::sleep(0);  // the get is pending before the shutdown
    q.shutdown(false);
    EXPECT_EQ(q.qsize(), 0u);
    co_await q.join();
    co_await kettle::sleep(0);
    EXPECT_TRUE(get_task.done());
    CO_EXPECT_SHUTDOWN(co_await get_task);
    CO_EXPECT_SHUTDOWN(co_await q.put("data"));
    CO_EXPECT_SHUTDOWN(q.put_nowait("data"));
    CO_EXPECT_SHUTDOWN(co_await q.get());
    CO_EXPECT_SHUTDOWN(q.get_nowait());
  });
}

TYPED_TEST(QueueShutdown, test_shutdown_nonempty) {
  run_test([]() -> Coro<> {
    TypeParam q(1);
    q.put_nowait("data");
    Task<> join_task = kettle::create_task(join(q));
    Task<> put_task = kettle::create_task(put(q, "data2"));
    co_await kettle::sleep(0);
    EXPECT_FALSE(put_task.done());
    q.shutdown(false);
    EXPECT_EQ(q.qsize(), 1u);
    co_await kettle::sleep(0);
    EXPECT_TRUE(put_task.done());
    CO_EXPECT_SHUTDOWN(co_await put_task);
    EXPECT_EQ(co_await q.get(), "data");  // what is queued can still be got
    co_await kettle::sleep(0);
    EXPECT_FALSE(join_task.done());
    CO_EXPECT_SHUTDOWN(co_await q.put("data"));
    CO_EXPECT_SHUTDOWN(q.put_nowait("data"));
    CO_EXPECT_SHUTDOWN(co_await q.get());
    CO_EXPECT_SHUTDOWN(q.get_nowait());
    q.task_done();
    co_await kettle::sleep(0);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    EXPECT_THROW(q.task_done(), kettle::ValueError);
  });
}

TYPED_TEST(QueueShutdown, test_shutdown_immediate) {
  run_test([]() -> Coro<> {
    TypeParam q;
    q.put_nowait("data");
    Task<> join_task = kettle::create_task(join(q));
    q.shutdown(true);
    EXPECT_EQ(q.qsize(), 0u);
    co_await kettle::sleep(0);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    CO_EXPECT_SHUTDOWN(co_await q.put("data"));
    CO_EXPECT_SHUTDOWN(q.put_nowait("data"));
    CO_EXPECT_SHUTDOWN(co_await q.get());
    CO_EXPECT_SHUTDOWN(q.get_nowait());
    EXPECT_THROW(q.task_done(), kettle::ValueError);
  });
}

TYPED_TEST(QueueShutdown, test_shutdown_immediate_with_unfinished) {
  run_test([]() -> Coro<> {
    TypeParam q;
    q.put_nowait("data");
    q.put_nowait("data");
    Task<> join_task = kettle::create_task(join(q));
    EXPECT_EQ(co_await q.get(), "data");
    q.shutdown(true);
    EXPECT_EQ(q.qsize(), 0u);
    co_await kettle::sleep(0);
    EXPECT_FALSE(join_task.done());
    CO_EXPECT_SHUTDOWN(co_await q.put("data"));
    CO_EXPECT_SHUTDOWN(q.put_nowait("data"));
    CO_EXPECT_SHUTDOWN(co_await q.get());
    CO_EXPECT_SHUTDOWN(q.get_nowait());
    q.task_done();
    EXPECT_THROW(q.task_done(), kettle::ValueError);
    co_await kettle::sleep(0);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
  });
}
