// MPIPoolExecutor under `mpiexec -n 4`: main (GoogleTest) runs on rank 0, ranks 1-3 are the
// workers. Mirrors mpi4py's test/test_futures.py where it applies.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kettle/kettle.hpp"
#include "kettle/mpi.hpp"

using namespace std::chrono_literals;
using kettle::mpi::MPIPoolExecutor;

namespace {

int square(int x) {
  return x * x;
}
int add(int a, int b) {
  return a + b;
}
int my_rank() {
  return kettle::mpi::rank();
}
std::string shout(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
int sleep_then(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int fails_with_value(int x) {
  throw kettle::ValueError("bad value " + std::to_string(x));
}
int fails_with_range(int) {
  throw std::out_of_range("out of range");
}
struct Custom : std::exception {
  const char* what() const noexcept override { return "custom failure"; }
};
int fails_custom(int) {
  throw Custom();
}

int init_value = 0;
void initializer(int v) {
  init_value = v;
}
int get_init_value() {
  return init_value;
}
void bad_initializer() {
  throw std::runtime_error("initializer failed on purpose");
}
void slow_bad_initializer() {
  std::this_thread::sleep_for(300ms);
  bad_initializer();
}

struct Point {
  double x = 0, y = 0;
  template <class A>
  void serialize(A& a) {
    a(x, y);
  }
};
double norm(Point p) {
  return std::sqrt(p.x * p.x + p.y * p.y);
}

// test_futures.py: ProcessPoolMixin / ExecutorShutdownTest / ...

TEST(MPIPoolExecutor, test_submit) {
  MPIPoolExecutor pool;
  EXPECT_EQ(pool.num_workers(), 3u);
  auto f = pool.submit(square, 7);
  EXPECT_EQ(f.result(), 49);
  EXPECT_EQ(pool.submit(add, 2, 3).result(), 5);
  EXPECT_EQ(pool.submit(shout, std::string("kettle")).result(), "KETTLE");
  EXPECT_DOUBLE_EQ(pool.submit(norm, Point{3, 4}).result(), 5.0);
}

TEST(MPIPoolExecutor, test_submit_runs_on_workers) {
  MPIPoolExecutor pool;
  std::vector<kettle::Future<int>> fs;
  for (int i = 0; i < 60; ++i)
    fs.push_back(pool.submit(my_rank));
  for (auto& f : fs) {
    int r = f.result();
    EXPECT_GE(r, 1);
    EXPECT_LE(r, 3);
  }
}

TEST(MPIPoolExecutor, test_map) {
  MPIPoolExecutor pool;
  std::vector<int> in(1000);
  for (int i = 0; i < 1000; ++i)
    in[static_cast<std::size_t>(i)] = i;
  for (std::size_t chunksize : {1u, 3u, 256u, 5000u}) {
    std::vector<int> out = pool.map(square, in, chunksize).get();
    ASSERT_EQ(out.size(), in.size());
    for (int i = 0; i < 1000; ++i)
      EXPECT_EQ(out[static_cast<std::size_t>(i)], i * i);
  }
  EXPECT_TRUE(pool.map(square, std::vector<int>{}).get().empty());
  EXPECT_THROW(pool.map(square, in, 0), kettle::ValueError);
}

TEST(MPIPoolExecutor, test_map_unordered) {
  MPIPoolExecutor pool;
  std::vector<int> in{800, 1, 2, 3, 4};
  std::vector<int> out = pool.map_unordered(sleep_then, in).get();
  ASSERT_EQ(out.size(), in.size());
  std::vector<int> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int>{1, 2, 3, 4, 800}));
  EXPECT_NE(out.front(), 800);  // in the order they complete, not the input's
  // Iterated: each result as its chunk completes; the first is not the slow one.
  auto results = pool.map_unordered(sleep_then, in);
  auto it = results.begin();
  EXPECT_NE(*it, 800);
  int n = 0;
  for (; it != results.end(); ++it)
    ++n;
  EXPECT_EQ(n, 5);
  // An error is raised where it comes, and the chunks not yet done are cancelled.
  std::vector<int> bad{1, 2, 3};
  EXPECT_THROW(pool.map_unordered(fails_with_value, bad).get(), kettle::ValueError);
}

TEST(MPIPoolExecutor, test_starmap) {
  MPIPoolExecutor pool;
  std::vector<std::tuple<int, int>> in{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(pool.starmap(add, in, 2).get(), (std::vector<int>{3, 7, 11}));
}

TEST(MPIPoolExecutor, test_exceptions_across_ranks) {
  MPIPoolExecutor pool;
  try {
    pool.submit(fails_with_value, 3).result();
    ADD_FAILURE() << "no exception";
  } catch (const kettle::ValueError& e) {
    EXPECT_STREQ(e.what(), "bad value 3");
  }
  EXPECT_THROW(pool.submit(fails_with_range, 1).result(), std::out_of_range);
  try {
    pool.submit(fails_custom, 1).result();
    ADD_FAILURE() << "no exception";
  } catch (const kettle::RemoteError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("custom failure"), std::string::npos) << what;
    EXPECT_NE(what.find("Worker "), std::string::npos) << what;
    EXPECT_NE(what.find(" of 4 on "), std::string::npos) << what;
  }
  // A failing item fails its chunk: map raises it where it comes.
  EXPECT_THROW(pool.map(fails_with_value, std::vector<int>{1, 2, 3}, 2).get(), kettle::ValueError);
  // The executor goes on.
  EXPECT_EQ(pool.submit(square, 3).result(), 9);
}

TEST(MPIPoolExecutor, test_initializer) {
  MPIPoolExecutor pool(kettle::mpi::MPIPoolOptions{}, initializer, 42);
  pool.bootup();
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(pool.submit(get_init_value).result(), 42);
}

TEST(MPIPoolExecutor, test_initializer_error) {
  MPIPoolExecutor pool(kettle::mpi::MPIPoolOptions{}, bad_initializer);
  try {
    pool.bootup();
    ADD_FAILURE() << "bootup did not raise";
  } catch (const kettle::BrokenExecutor& e) {
    EXPECT_NE(std::string(e.what()).find("initializer failed on purpose"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(pool.submit(square, 2), kettle::BrokenExecutor);
}

TEST(MPIPoolExecutor, test_initializer_error_fails_pending) {
  MPIPoolExecutor pool(kettle::mpi::MPIPoolOptions{}, slow_bad_initializer);
  std::optional<kettle::Future<int>> f;
  try {
    f = pool.submit(square, 2);  // before the workers answer (they take 300 ms to fail)
  } catch (const kettle::BrokenExecutor&) {
    GTEST_SKIP() << "this process was not scheduled for 300 ms: the workers failed first";
  }
  EXPECT_THROW(f->result(), kettle::BrokenExecutor);
}

// test_shutdown.py: test_cancel_futures
TEST(MPIPoolExecutor, test_cancel_futures) {
  MPIPoolExecutor pool;
  std::vector<kettle::Future<int>> fs;
  for (int i = 0; i < 1000; ++i)  // (20 s of work: some are still pending at the shutdown)
    fs.push_back(pool.submit(sleep_then, 20));
  fs.front().result();  // running by now
  pool.shutdown(true, true);
  int cancelled = 0, ran = 0;
  for (auto& f : fs) {
    ASSERT_TRUE(f.done());
    if (f.cancelled()) {
      ++cancelled;
    } else {
      EXPECT_EQ(f.result(), 20);
      ++ran;
    }
  }
  EXPECT_GT(cancelled, 0);
  EXPECT_GT(ran, 0);
  EXPECT_THROW(pool.submit(square, 1), kettle::RuntimeError);
}

TEST(MPIPoolExecutor, test_shutdown_waits) {
  std::vector<kettle::Future<int>> fs;
  {
    MPIPoolExecutor pool;
    for (int i = 0; i < 12; ++i)
      fs.push_back(pool.submit(sleep_then, 10));
  }  // the destructor waits
  for (auto& f : fs) {
    ASSERT_TRUE(f.done());
    EXPECT_EQ(f.result(), 10);
  }
}

TEST(MPIPoolExecutor, test_shutdown_nowait_then_new_executor) {
  auto first = std::make_unique<MPIPoolExecutor>();
  auto f = first->submit(sleep_then, 200);
  first->shutdown(false);
  MPIPoolExecutor second;  // waits until the first's work is done
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.result(), 200);
  EXPECT_EQ(second.submit(square, 4).result(), 16);
}

TEST(MPIPoolExecutor, test_one_executor_at_a_time) {
  MPIPoolExecutor pool;
  EXPECT_THROW(MPIPoolExecutor(), kettle::RuntimeError);
  EXPECT_EQ(pool.submit(square, 5).result(), 25);
}

TEST(MPIPoolExecutor, test_moved_from) {
  MPIPoolExecutor pool;
  MPIPoolExecutor moved(std::move(pool));
  EXPECT_EQ(moved.submit(square, 2).result(), 4);
  EXPECT_EQ(pool.num_workers(), 0u);
  EXPECT_THROW(pool.submit(square, 2), kettle::RuntimeError);
  EXPECT_THROW(pool.shutdown(), kettle::RuntimeError);
}

TEST(MPIPoolExecutor, test_broken_executor_frees_the_workers) {
  MPIPoolExecutor broken(kettle::mpi::MPIPoolOptions{}, bad_initializer);
  EXPECT_THROW(broken.bootup(), kettle::BrokenExecutor);
  MPIPoolExecutor next;  // the broken one, not shut down, holds nothing
  EXPECT_EQ(next.submit(square, 3).result(), 9);
}

TEST(MPIPoolExecutor, test_comm_executor_needs_spmd) {
  EXPECT_THROW(kettle::mpi::MPICommExecutor(), kettle::RuntimeError);
}

// Run with mpiexec -n 1 (ctest mpi.pool.one_process): no worker rank, a clear error.
TEST(MPIPoolExecutor, test_one_process) {
  if (kettle::mpi::size() != 1) GTEST_SKIP() << "for mpiexec -n 1";
  try {
    MPIPoolExecutor pool;
    ADD_FAILURE() << "no error";
  } catch (const kettle::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("mpiexec -n N"), std::string::npos) << e.what();
  }
}

TEST(MPIPoolExecutor, test_max_workers) {
  kettle::mpi::MPIPoolOptions o;
  o.max_workers = 1;
  MPIPoolExecutor pool(o);
  EXPECT_EQ(pool.num_workers(), 1u);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(pool.submit(my_rank).result(), 1);
  o.max_workers = 0;
  pool.shutdown();
  EXPECT_THROW(MPIPoolExecutor{o}, kettle::ValueError);
}

TEST(MPIPoolExecutor, test_await_from_tasks) {
  MPIPoolExecutor pool;
  auto main = [&]() -> kettle::Coro<int> {
    int a = co_await pool.submit(square, 6);
    std::vector<int> in1{1, 2, 3}, in2{4, 5};
    std::vector<int> m = co_await pool.map(square, in1, 2);
    std::vector<int> u = co_await pool.map_unordered(square, in2);
    std::sort(u.begin(), u.end());
    // A heartbeat on the same loop keeps ticking while the workers crunch.
    int beats = 0;
    auto heartbeat = [](int& n) -> kettle::Coro<void> {
      for (;;) {
        co_await kettle::sleep(0.01);
        ++n;
      }
    };
    auto hb = kettle::create_task(heartbeat(beats));
    int slow = co_await pool.submit(sleep_then, 300);
    hb.cancel();
    // (Had the loop been blocked during the await, beats would be 0.)
    co_return a + m[0] + m[1] + m[2] + u[0] + u[1] + slow + (beats >= 1 ? 1000 : 0);
  };
  EXPECT_EQ(kettle::run(main()), 36 + 1 + 4 + 9 + 16 + 25 + 300 + 1000);
}

TEST(MPIPoolExecutor, test_cancel_awaiting_task) {
  MPIPoolExecutor pool;
  auto main = [&]() -> kettle::Coro<bool> {
    try {
      co_await kettle::wait_for(pool.submit(sleep_then, 2000), 0.05);
    } catch (const kettle::TimeoutError&) {
      co_return true;
    }
    co_return false;
  };
  EXPECT_TRUE(kettle::run(main()));
}

TEST(MPIPoolExecutor, test_many_submits_from_threads) {
  MPIPoolExecutor pool;
  std::atomic<long> sum{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      std::vector<kettle::Future<int>> fs;
      for (int i = 0; i < 500; ++i)
        fs.push_back(pool.submit(add, t, i));
      for (auto& f : fs)
        sum += f.result();
    });
  for (auto& t : ts)
    t.join();
  long expect = 0;
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 500; ++i)
      expect += t + i;
  EXPECT_EQ(sum.load(), expect);
}

}  // namespace
