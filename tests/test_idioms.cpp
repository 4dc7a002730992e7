// Every kettle awaitable composes with every combinator: the asyncio idioms Python users
// type first. This file must compile (that is most of the test); the tests then run each
// idiom once and check what it gives.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::Task;

namespace {
Coro<int> c() {
  co_await kettle::sleep(1ms);
  co_return 5;
}
int f(int x) {
  return x * 2;
}

template <class F>
void run_test(F body) {
  kettle::run(body());
}
}  // namespace

TEST(Idioms, wait_for_any_awaitable) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q;
    kettle::Event ev;
    kettle::Lock lock;
    kettle::Semaphore sem(1);
    kettle::Condition cond;
    co_await q.put(1);
    EXPECT_EQ(co_await kettle::wait_for(q.get(), 1s), 1);
    co_await kettle::wait_for(q.put(2), 1s);
    EXPECT_EQ(q.qsize(), 1u);
    ev.set();
    EXPECT_TRUE(co_await kettle::wait_for(ev.wait(), 1s));
    EXPECT_TRUE(co_await kettle::wait_for(lock.acquire(), 1s));  // test_acquire_no_hang
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_TRUE(co_await kettle::wait_for(sem.acquire(), 1.0));
    sem.release();
    co_await cond.acquire();
    EXPECT_THROW(co_await kettle::wait_for(cond.wait(), 10ms), kettle::TimeoutError);
    EXPECT_TRUE(cond.locked());  // re-acquired on the way out, as asyncio's
    cond.release();
    ev.clear();
    EXPECT_THROW(co_await kettle::wait_for(ev.wait(), 10ms), kettle::TimeoutError);
    EXPECT_EQ(co_await kettle::wait_for(q.get(), 1s), 2);
    EXPECT_THROW(co_await kettle::wait_for(q.get(), 10ms), kettle::TimeoutError);
  });
}

TEST(Idioms, timeout_scope_around_any_awaitable) {
  run_test([]() -> Coro<> {
    kettle::Event ev;
    kettle::Queue<std::string> q;
    EXPECT_THROW(co_await kettle::timeout(10ms, ev.wait()), kettle::TimeoutError);
    co_await q.put("x");
    EXPECT_EQ(co_await kettle::timeout(1s, q.get()), "x");
    kettle::Timeout cm = kettle::timeout(1s);
    EXPECT_EQ(co_await cm.run(c()), 5);
    kettle::Timeout cm2 = kettle::timeout(std::nullopt);
    auto body = [&]() -> Coro<int> {
      cm2.reschedule(std::nullopt);  // no longer ambiguous
      cm2.reschedule(kettle::get_running_loop().time() + 10);
      co_return 1;
    };
    EXPECT_EQ(co_await cm2.run(body()), 1);
  });
}

TEST(Idioms, gather_and_shield_any_awaitable) {
  run_test([]() -> Coro<> {
    kettle::Event a, b;
    kettle::Queue<int> q;
    auto setter = [&]() -> Coro<> {
      co_await kettle::sleep(1ms);
      a.set();
      b.set();
      co_await q.put(1);
      co_await q.put(2);
    };
    Task<> s = kettle::create_task(setter());
    auto [x, y] = co_await kettle::gather(a.wait(), b.wait());
    EXPECT_TRUE(x && y);
    auto [p, r] = co_await kettle::gather(q.get(), q.get());
    EXPECT_EQ(p + r, 3);
    auto [none, five] = co_await kettle::gather(kettle::sleep(1ms), c());
    (void)none;
    EXPECT_EQ(five, 5);
    co_await q.put(9);
    EXPECT_EQ(co_await kettle::shield(q.get()), 9);
    co_await s;
  });
}

TEST(Idioms, create_task_and_ensure_future_of_any_awaitable) {
  run_test([]() -> Coro<> {
    kettle::Queue<int> q;
    kettle::Lock lock;
    kettle::Event ev;
    Task<int> g = kettle::create_task(q.get());
    Task<bool> l = kettle::create_task(lock.acquire());
    Task<bool> e = kettle::create_task(ev.wait());
    Task<> s = kettle::create_task(kettle::sleep(1ms));
    Task<int> w = kettle::create_task(kettle::wait_for(c(), 1s));
    Task<int> t = kettle::create_task(kettle::to_thread(f, 21));
    co_await q.put(3);
    ev.set();
    EXPECT_EQ(co_await g, 3);
    EXPECT_TRUE(co_await l);
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_TRUE(co_await e);
    co_await s;
    EXPECT_EQ(co_await w, 5);
    EXPECT_EQ(co_await t, 42);

    // ensure_future: a Task stays itself; anything else becomes a task.
    Task<int> same = kettle::ensure_future(g);
    EXPECT_TRUE(same == g);
    auto from_coro = kettle::ensure_future(c());
    EXPECT_EQ(co_await from_coro, 5);
    auto from_thread = kettle::ensure_future(kettle::to_thread(f, 1));
    EXPECT_EQ(co_await from_thread, 2);
    auto gathered = kettle::gather(c(), c());
    auto same_future = kettle::ensure_future(gathered);
    auto [m, n] = co_await same_future;
    EXPECT_EQ(m + n, 10);
  });
}

TEST(Idioms, wait_and_as_completed_take_futures) {
  run_test([]() -> Coro<> {
    std::vector<kettle::Future<int>> fs{kettle::to_thread(f, 1), kettle::to_thread(f, 2)};
    auto [done, pending] = co_await kettle::wait(fs);
    EXPECT_EQ(done.size(), 2u);
    EXPECT_TRUE(pending.empty());
    int sum = 0;
    for (auto next : kettle::as_completed(fs))
      sum += co_await next;
    EXPECT_EQ(sum, 6);
  });
}

TEST(Idioms, acquire_yields_true_and_wait_for_predicate_value) {
  run_test([]() -> Coro<> {
    kettle::Lock lock;
    bool ok = co_await lock.acquire();
    EXPECT_TRUE(ok);
    lock.release();
    kettle::Semaphore sem(2);
    bool ok2 = co_await sem.acquire();
    EXPECT_TRUE(ok2);
    kettle::Condition cond;
    co_await cond.acquire();
    int n = 7;
    int v = co_await cond.wait_for([&] { return n; });  // the predicate's own value
    EXPECT_EQ(v, 7);
    cond.release();
  });
}
