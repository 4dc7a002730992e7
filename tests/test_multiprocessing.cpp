// Mirrors CPython's Lib/test/_test_multiprocessing.py (_TestProcess, _TestPool) for
// kettle::Process and kettle::Pool.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "kettle/kettle.hpp"

namespace {

using namespace std::chrono_literals;

void nothing() {}
void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}
void raise_error() {
  throw std::runtime_error("target failed");
}
void exit_with(int code) {
  std::exit(code);
}
int sqr(int x) {
  return x * x;
}
int mul(int x, int y) {
  return x * y;
}
int fail_on_3(int x) {
  if (x == 3) throw std::invalid_argument("three");
  return x;
}

}  // namespace

TEST(TestProcess, test_process) {
  kettle::Process p(sleep_ms, 50);
  EXPECT_EQ(p.pid(), 0);
  EXPECT_FALSE(p.exitcode().has_value());
  p.start();
  EXPECT_GT(p.pid(), 0);
  EXPECT_NE(p.pid(), ::getpid());
  EXPECT_TRUE(p.is_alive());
  EXPECT_TRUE(p.join());
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_THROW(p.start(), kettle::RuntimeError);
}

TEST(TestProcess, test_exitcode_of_a_target_that_threw) {
  kettle::Process p(raise_error);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
}

TEST(TestProcess, test_exit_status) {
  kettle::Process p(exit_with, 5);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 5);
}

TEST(TestProcess, test_terminate) {
  kettle::Process p(sleep_ms, 10000);
  p.start();
  EXPECT_FALSE(p.join(0.1s));  // the timeout passes
  EXPECT_TRUE(p.is_alive());
  int pid = p.pid();
  p.terminate();
  EXPECT_TRUE(p.join(5s));
  EXPECT_EQ(p.exitcode(), -SIGTERM);
  EXPECT_NE(::kill(pid, 0) == 0 && false, true);
}

TEST(TestProcess, test_kill) {
  kettle::Process p(sleep_ms, 10000);
  p.start();
  p.kill();
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

TEST(TestProcess, test_wait_from_a_task) {
  auto main = []() -> kettle::Coro<int> {
    kettle::Process a(sleep_ms, 30), b(nothing);
    a.start();
    b.start();
    co_await a.wait();
    co_await b.wait();
    co_return *a.exitcode() + *b.exitcode();
  };
  EXPECT_EQ(kettle::run(main()), 0);
}

TEST(TestPool, test_map) {
  kettle::Pool pool(2);
  std::vector<int> xs;
  for (int i = 0; i < 100; ++i)
    xs.push_back(i);
  std::vector<int> r = pool.map(sqr, xs);
  ASSERT_EQ(r.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(r[static_cast<std::size_t>(i)], i * i);
  EXPECT_EQ(pool.map(sqr, xs, 1), r);  // test_map_chunksize
  EXPECT_TRUE(pool.map(sqr, std::vector<int>{}).empty());
}

TEST(TestPool, test_starmap) {
  kettle::Pool pool(2);
  std::vector<std::tuple<int, int>> args{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(pool.starmap(mul, args), (std::vector<int>{2, 12, 30}));
}

TEST(TestPool, test_apply) {
  kettle::Pool pool(1);
  EXPECT_EQ(pool.apply(mul, 6, 7), 42);
  EXPECT_EQ(pool.apply_async(sqr, 5).result(), 25);
}

TEST(TestPool, test_imap) {
  kettle::Pool pool(2);
  std::vector<int> xs{0, 1, 2, 3, 4, 5};
  std::vector<int> seen;
  for (int v : pool.imap(sqr, xs, 2))
    seen.push_back(v);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 4, 9, 16, 25}));
}

TEST(TestPool, test_imap_unordered) {
  kettle::Pool pool(2);
  std::vector<int> xs;
  for (int i = 0; i < 100; ++i)
    xs.push_back(i);
  for (std::size_t chunk : {1u, 7u}) {
    std::vector<int> got = pool.imap_unordered(sqr, xs, chunk).get();
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got.size(), 100u);
    for (int i = 0; i < 100; ++i)
      EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);
  }
  auto r = pool.imap_unordered(fail_on_3, std::vector<int>{1, 2, 3, 4});
  EXPECT_THROW(r.get(), std::invalid_argument);
}

TEST(TestPool, test_traceback) {
  kettle::Pool pool(2);
  std::vector<int> xs{0, 1, 2, 3, 4};
  try {
    pool.map(fail_on_3, xs);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "three");
  }
}

TEST(TestPool, test_terminate) {
  kettle::Pool pool(2);
  auto slow = pool.apply_async(sqr, 2);
  slow.result();
  auto stuck = pool.apply_async(sleep_ms, 10000);
  while (!stuck.running())
    std::this_thread::sleep_for(1ms);
  auto start = std::chrono::steady_clock::now();
  pool.terminate();
  pool.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_THROW(stuck.result(), kettle::BrokenProcessPool);
}

TEST(TestPool, test_close_join) {
  kettle::Pool pool(2);
  auto f = pool.apply_async(sqr, 9);
  pool.close();
  EXPECT_THROW(pool.apply_async(sqr, 1), kettle::RuntimeError);
  pool.join();
  EXPECT_EQ(f.result(), 81);
}

int pool_value = 0;
void set_pool_value(int v) {
  pool_value = v;
}
int get_pool_value_plus(int x) {
  return pool_value + x;
}
int worker_pid(int) {
  return static_cast<int>(::getpid());
}

TEST(TestPool, test_initializer_and_maxtasksperchild) {
  kettle::Pool pool(kettle::PoolOptions{.processes = 1, .maxtasksperchild = 2}, set_pool_value,
                    100);
  EXPECT_EQ(pool.map(get_pool_value_plus, std::vector<int>{1, 2, 3}, 1),
            (std::vector<int>{101, 102, 103}));  // the replacement worker ran it too
  kettle::Pool fresh(kettle::PoolOptions{.processes = 1, .maxtasksperchild = 2});
  std::vector<int> pids = fresh.map(worker_pid, std::vector<int>{0, 0, 0, 0}, 1);
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_NE(pids[1], pids[2]);
  EXPECT_EQ(pids[2], pids[3]);
}

TEST(TestPool, test_cpu_count) {
  EXPECT_GE(kettle::cpu_count(), 1u);
}
