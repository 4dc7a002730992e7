// kettle::ThreadPoolExecutor. Names follow CPython's test_concurrent_futures/.
#include <gtest/gtest.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Future;
using kettle::ThreadPoolExecutor;

namespace {
int mul(int x, int y) {
  return x * y;
}
void sleep_and_raise(std::chrono::milliseconds t) {
  std::this_thread::sleep_for(t);
  throw std::runtime_error("raised");
}
std::string thread_name() {
  char buf[32] = {};
  pthread_getname_np(pthread_self(), buf, sizeof buf);
  return buf;
}
}  // namespace

TEST(ThreadPool, test_submit) {
  ThreadPoolExecutor pool;
  Future<int> f = pool.submit(mul, 2, 8);
  EXPECT_EQ(f.result(), 16);
}

TEST(ThreadPool, test_submit_lambda_and_void) {
  ThreadPoolExecutor pool(2);
  std::atomic<int> n{0};
  Future<void> f = pool.submit([&] { ++n; });
  f.result();
  EXPECT_EQ(n, 1);
  auto g = pool.submit([](std::string s) { return s + "!"; }, std::string("hi"));
  EXPECT_EQ(g.result(), "hi!");
}

TEST(ThreadPool, test_default_workers) {
  ThreadPoolExecutor pool;
  EXPECT_EQ(pool.max_workers(), std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4));
  EXPECT_THROW(ThreadPoolExecutor(0), kettle::ValueError);
}

TEST(ThreadPool, test_map) {
  ThreadPoolExecutor pool(3);
  std::vector<int> xs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<int> ys{10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  std::vector<int> got;
  for (int v : pool.map(mul, xs, ys))
    got.push_back(v);
  std::vector<int> want;
  for (int i = 0; i < 10; ++i)
    want.push_back(xs[i] * ys[i]);
  EXPECT_EQ(got, want);  // input order, whatever the completion order
}

TEST(ThreadPool, test_map_zips_to_shortest) {
  ThreadPoolExecutor pool(2);
  std::vector<int> xs{1, 2, 3};
  std::vector<int> ys{4, 5};
  EXPECT_EQ(pool.map(mul, xs, ys).get(), (std::vector<int>{4, 10}));
}

TEST(ThreadPool, test_map_exception) {
  ThreadPoolExecutor pool(2);
  std::vector<int> xs{5, 0, 2};
  auto div = [](int x) {
    if (x == 0) throw std::domain_error("division by zero");
    return 10 / x;
  };
  auto r = pool.map(div, xs);
  auto it = r.begin();
  EXPECT_EQ(*it, 2);
  ++it;
  EXPECT_THROW(*it, std::domain_error);
}

TEST(ThreadPool, test_map_timeout) {
  ThreadPoolExecutor pool(2);
  std::vector<int> delays{0, 0, -1};  // -1: until released (at most 20 s)
  std::vector<int> results;
  std::atomic<bool> release{false};
  auto t0 = std::chrono::steady_clock::now();
  try {
    for (auto v : pool.map(
                          [&release](int ms) {
                            auto until = std::chrono::steady_clock::now() + 20s;
                            while (ms < 0 && !release && std::chrono::steady_clock::now() < until)
                              std::this_thread::sleep_for(1ms);
                            return ms;
                          },
                          delays)
                      .with_timeout(1s))
      results.push_back(v);
    FAIL() << "expected TimeoutError";
  } catch (const kettle::TimeoutError&) {
  }
  auto dt = std::chrono::steady_clock::now() - t0;
  release = true;
  EXPECT_EQ(results, (std::vector<int>{0, 0}));
  EXPECT_GE(dt, 1s);   // measured from the map() call
  EXPECT_LT(dt, 15s);  // and not waiting for the slow call
}

TEST(ThreadPool, test_map_awaitable) {
  ThreadPoolExecutor pool(3);
  std::vector<std::string> names{"Alice", "Bob", "Charlie"};
  auto greet = [](const std::string& n) { return "Hello, " + n + "!"; };
  auto body = [&]() -> kettle::Coro<std::vector<std::string>> {
    co_return co_await pool.map(greet, names);
  };
  EXPECT_EQ(kettle::run(body()),
            (std::vector<std::string>{"Hello, Alice!", "Hello, Bob!", "Hello, Charlie!"}));
}

TEST(ThreadPool, test_submit_after_shutdown) {
  ThreadPoolExecutor pool(1);
  pool.shutdown();
  EXPECT_THROW(pool.submit(mul, 1, 2), kettle::RuntimeError);
}

TEST(ThreadPool, test_shutdown_waits) {
  std::atomic<int> done{0};
  {
    ThreadPoolExecutor pool(2);
    for (int i = 0; i < 4; ++i)
      pool.submit([&] {
        std::this_thread::sleep_for(20ms);
        ++done;
      });
  }  // the destructor is shutdown(wait = true)
  EXPECT_EQ(done, 4);
}

TEST(ThreadPool, test_cancel_futures) {
  ThreadPoolExecutor pool(1);
  std::atomic<bool> release{false};
  Future<void> running = pool.submit([&] {
    while (!release)
      std::this_thread::sleep_for(1ms);
  });
  std::vector<Future<int>> pending;
  for (int i = 0; i < 5; ++i)
    pending.push_back(pool.submit(mul, i, i));
  while (!running.running())
    std::this_thread::sleep_for(1ms);
  std::thread releaser([&] {
    std::this_thread::sleep_for(20ms);
    release = true;
  });
  pool.shutdown(true, true);
  releaser.join();
  for (auto& f : pending)
    EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running.cancelled());
}

TEST(ThreadPool, test_cancel_futures_stops_running_work) {
  ThreadPoolExecutor pool(1);
  Future<int> f = pool.submit([](std::stop_token st) {
    int spins = 0;
    while (!st.stop_requested()) {
      std::this_thread::sleep_for(1ms);
      ++spins;
    }
    return spins;
  });
  while (!f.running())
    std::this_thread::sleep_for(1ms);
  pool.shutdown(true, true);  // would hang if the work did not get the stop request
  EXPECT_GE(f.result(), 0);
}

TEST(ThreadPool, test_shutdown_no_wait) {
  ThreadPoolExecutor pool(2);
  std::atomic<bool> release{false};
  Future<int> f = pool.submit([&] {
    while (!release)
      std::this_thread::sleep_for(1ms);
    return 1;
  });
  pool.shutdown(false);  // returns while the work is blocked
  EXPECT_FALSE(f.done());
  release = true;
  EXPECT_EQ(f.result(), 1);  // the work still completes
}

TEST(ThreadPool, test_initializer_failure_breaks_pool) {
  ThreadPoolExecutor pool(2, "broken", [] { throw std::runtime_error("init failed"); });
  testing::internal::CaptureStderr();
  Future<int> f = pool.submit(mul, 1, 2);
  EXPECT_THROW(f.result(), kettle::BrokenThreadPool);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("init failed"), std::string::npos);
  EXPECT_THROW(pool.submit(mul, 1, 2), kettle::BrokenThreadPool);
}

TEST(ThreadPool, test_initializer_runs_in_each_worker) {
  std::atomic<int> inits{0};
  std::set<std::string> names;
  std::mutex m;
  {
    ThreadPoolExecutor pool(3, "worker", [&] { ++inits; });
    std::vector<Future<void>> fs;
    for (int i = 0; i < 30; ++i)
      fs.push_back(pool.submit([&] {
        std::this_thread::sleep_for(2ms);
        std::lock_guard l(m);
        names.insert(thread_name());
      }));
    for (auto& f : fs)
      f.result();
  }
  EXPECT_GE(inits, 1);
  EXPECT_LE(inits, 3);
  for (const auto& n : names)
    EXPECT_EQ(n.rfind("worker_", 0), 0u) << n;
}

TEST(ThreadPool, test_idle_thread_reuse) {
  ThreadPoolExecutor pool(8);
  pool.submit(mul, 21, 2).result();
  pool.submit(mul, 6, 7).result();
  pool.submit(mul, 3, 14).result();
  std::set<std::thread::id> ids;
  for (int i = 0; i < 3; ++i)
    ids.insert(pool.submit([] { return std::this_thread::get_id(); }).result());
  EXPECT_EQ(ids.size(), 1u);  // threads are started lazily, while none is idle
}

TEST(ThreadPool, test_exception_propagates) {
  ThreadPoolExecutor pool(1);
  Future<void> f = pool.submit(sleep_and_raise, 1ms);
  EXPECT_THROW(f.result(), std::runtime_error);
  EXPECT_EQ(kettle::describe(f.exception()), "std::runtime_error: raised");
}

TEST(ThreadPool, test_no_stale_references) {
  // The pool does not keep the work (and what it captured) once it ran.
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> weak = token;
  ThreadPoolExecutor pool(1);
  pool.submit([t = std::move(token)] { return *t; }).result();
  for (int i = 0; i < 5000 && !weak.expired(); ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(weak.expired());
}

// Two threads call shutdown(wait=true) at once: both return only after the work finished
// (the second used to return while the first was still joining).
TEST(ThreadPool, test_shutdown_wait_from_two_threads) {
  for (int round = 0; round < 20; ++round) {
    kettle::ThreadPoolExecutor pool(2);
    std::atomic<bool> finished{false};
    std::atomic<bool> started{false};
    (void)pool.submit([&] {
      started = true;
      std::this_thread::sleep_for(20ms);
      finished = true;
    });
    while (!started)
      std::this_thread::yield();
    std::atomic<int> saw_unfinished{0};
    auto stop = [&] {
      pool.shutdown(true);
      if (!finished) ++saw_unfinished;
    };
    std::thread a(stop), b(stop);
    a.join();
    b.join();
    EXPECT_EQ(saw_unfinished, 0);
  }
}

// One of the pool's own workers calls shutdown(wait) while another thread is joining: it
// raises rather than wait for its own join (that deadlocked).
TEST(ThreadPool, test_shutdown_wait_from_a_worker_while_joining) {
  auto pool = std::make_unique<ThreadPoolExecutor>(2);
  std::atomic<bool> joining{false};
  Future<void> f = pool->submit([&] {
    while (!joining)
      std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(20ms);  // the other thread is in shutdown(wait) by now
    pool->shutdown(true);
  });
  std::thread joiner([&] {
    joining = true;
    pool->shutdown(true);
  });
  joiner.join();
  EXPECT_TRUE(f.done());
  EXPECT_THROW(f.result(), kettle::RuntimeError);
}

// As Python's (threading: "cannot join current thread"): shutdown(wait) from a worker
// raises, after shutting the pool down; the owner's shutdown then joins every thread.
TEST(ThreadPool, test_shutdown_wait_from_a_worker_raises) {
  ThreadPoolExecutor pool(2);
  Future<void> f = pool.submit([&] { pool.shutdown(true); });
  try {
    f.result();
    ADD_FAILURE() << "shutdown(wait) from a worker returned";
  } catch (const kettle::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot join current thread"), std::string::npos);
  }
  EXPECT_THROW(pool.submit([] {}), kettle::RuntimeError);  // it did shut down
  pool.shutdown(true);
  // shutdown(false) from a worker is fine.
  ThreadPoolExecutor other(1);
  other.submit([&] { other.shutdown(false); }).result();
}

// Releasing the last owner of a pool inside its own work cannot work (the thread would
// free the state it runs on): a clear message and terminate, never undefined behaviour.
TEST(ThreadPoolDeathTest, test_destroyed_by_its_own_worker) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto pool = std::make_shared<ThreadPoolExecutor>(1);
        std::weak_ptr<ThreadPoolExecutor> weak = pool;
        std::atomic<bool> go{false};
        (void)pool->submit([&go, p = pool]() mutable {
          while (!go)
            std::this_thread::sleep_for(1ms);
          p.reset();
        });
        pool.reset();
        go = true;
        std::this_thread::sleep_for(10s);
      },
      "destroyed by one of its own worker threads");
}
