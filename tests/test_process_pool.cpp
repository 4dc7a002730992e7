// Mirrors CPython's Lib/test/test_concurrent_futures/test_process_pool.py, test_deadlock.py,
// test_shutdown.py and test_init.py, for kettle::ProcessPoolExecutor.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <list>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "helpers.hpp"
#include "kettle/kettle.hpp"

namespace {

using namespace std::chrono_literals;
using kettle::OnWorkerCrash;
using kettle::ProcessPoolExecutor;
using kettle::ProcessPoolOptions;
using kettle::StartMethod;

int square(int x) {
  return x * x;
}
int get_pid() {
  return static_cast<int>(::getpid());
}
int sleep_and_return(int ms, int v) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return v;
}
int raise_invalid(std::string msg) {
  throw std::invalid_argument(msg);
}

}  // namespace

TEST(ProcessPoolExecutor, test_submit) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto f = pool.submit(square, 8);
  EXPECT_EQ(f.result(), 64);
  EXPECT_NE(pool.submit(get_pid).result(), ::getpid());
}

TEST(ProcessPoolExecutor, test_map) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<int> xs;
  for (int i = 0; i < 1000; ++i)
    xs.push_back(i);
  for (std::size_t chunk : {1u, 7u, 256u, 5000u}) {
    std::vector<int> r = pool.map(square, xs, chunk).get();
    ASSERT_EQ(r.size(), xs.size());
    for (int i = 0; i < 1000; ++i)
      ASSERT_EQ(r[static_cast<std::size_t>(i)], i * i);
  }
}

TEST(ProcessPoolExecutor, test_exception_is_rethrown) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto f = pool.submit(raise_invalid, std::string("nope"));
  EXPECT_THROW(
      {
        try {
          f.result();
        } catch (const std::invalid_argument& e) {
          EXPECT_STREQ(e.what(), "nope");
          throw;
        }
      },
      std::invalid_argument);
}

namespace {

struct Point {
  int x = 0;
  int y = 0;
  template <class Archive>
  void serialize(Archive& a) {
    a(x, y);
  }
};
Point swap_point(Point p) {
  return Point{p.y, p.x};
}

// Serializing it always fails (Python's ErrorAtPickle / ErrorAtUnpickle).
struct Unserializable {
  template <class Archive>
  void save(Archive&) const {
    throw std::runtime_error("Unserializable cannot be saved");
  }
  template <class Archive>
  void load(Archive&) {}
};
Unserializable make_unserializable() {
  return {};
}
int take_unserializable(Unserializable) {
  return 1;
}

struct CustomError : std::exception {
  const char* what() const noexcept override { return "custom trouble"; }
};
int raise_custom() {
  throw CustomError();
}

int crash_abort() {
  std::abort();
}
int crash_segv() {
  ::raise(SIGSEGV);
  return 0;
}
int exit_3() {
  std::exit(3);
}

int initialized_value = 0;
void set_initialized(int v) {
  initialized_value = v;
}
int get_initialized() {
  return initialized_value;
}
void failing_initializer() {
  throw std::runtime_error("initializer refuses");
}

std::vector<int> range(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i)
    v.push_back(i);
  return v;
}

// Waits until a worker has started f's task (a fixed sleep is not enough on a loaded machine).
template <class T>
void wait_running(const kettle::Future<T>& f) {
  auto end = std::chrono::steady_clock::now() + 30s;
  while (!f.running() && !f.done() && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(f.running());
  std::this_thread::sleep_for(20ms);  // and that the worker has begun running it
}

}  // namespace

TEST(ProcessPoolExecutor, test_user_type_round_trip) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  Point p = pool.submit(swap_point, Point{1, 2}).result();
  EXPECT_EQ(p.x, 2);
  EXPECT_EQ(p.y, 1);
  auto lambda = [](std::vector<std::string> v) { return v.size(); };
  EXPECT_EQ(pool.submit(lambda, std::vector<std::string>{"a", "b"}).result(), 2u);
}

TEST(ProcessPoolExecutor, test_remote_error_carries_type_and_pid) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  int pid = pool.submit(get_pid).result();
  try {
    pool.submit(raise_custom).result();
    FAIL() << "no exception";
  } catch (const kettle::RemoteError& e) {
    EXPECT_NE(e.type_name().find("CustomError"), std::string::npos) << e.type_name();
    EXPECT_EQ(e.message(), "custom trouble");
    EXPECT_EQ(e.pid(), pid);
    EXPECT_NE(std::string(e.what()).find("custom trouble"), std::string::npos);
  }
}

// test_deadlock.py ------------------------------------------------------------------------

TEST(ProcessPoolDeadlock, test_crash_during_func_exec_on_worker) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  std::vector<kettle::Future<int>> ok;
  for (int i = 0; i < 20; ++i)
    ok.push_back(pool.submit(square, i));
  auto crash = pool.submit(crash_abort);
  for (int i = 20; i < 40; ++i)
    ok.push_back(pool.submit(square, i));
  try {
    crash.result();
    FAIL() << "no exception";
  } catch (const kettle::WorkerCrashedError& e) {
    EXPECT_TRUE(WIFSIGNALED(e.status()));
    EXPECT_EQ(WTERMSIG(e.status()), SIGABRT);
    EXPECT_GT(e.pid(), 0);
    EXPECT_NE(std::string(e.what()).find("SIGABRT"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(e.pid())), std::string::npos);
  }
  for (int i = 0; i < 40; ++i)
    EXPECT_EQ(ok[static_cast<std::size_t>(i)].result(), i * i);
  EXPECT_EQ(pool.submit(square, 3).result(), 9);  // the pool goes on
}

TEST(ProcessPoolDeadlock, test_segfault_during_func_exec_on_worker) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto crash = pool.submit(crash_segv);
  auto after = pool.submit(square, 7);
  EXPECT_THROW(crash.result(), kettle::BrokenProcessPool);
  EXPECT_EQ(after.result(), 49);
}

TEST(ProcessPoolDeadlock, test_exit_during_func_exec_on_worker) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto f = pool.submit(exit_3);
  try {
    f.result();
    FAIL() << "no exception";
  } catch (const kettle::WorkerCrashedError& e) {
    EXPECT_TRUE(WIFEXITED(e.status()));
    EXPECT_EQ(WEXITSTATUS(e.status()), 3);
    EXPECT_NE(std::string(e.what()).find("exited with status 3"), std::string::npos);
  }
  EXPECT_EQ(pool.submit(square, 4).result(), 16);
}

TEST(ProcessPoolDeadlock, test_killed_child) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  int pid = pool.submit(get_pid).result();
  auto slow = pool.submit(sleep_and_return, 10000, 1);
  wait_running(slow);
  std::vector<int> pids = pool.worker_pids();
  ASSERT_FALSE(pids.empty());
  // Kill every worker: the running task fails, the pool replaces the workers.
  for (int p : pids)
    ::kill(p, SIGKILL);
  try {
    slow.result();
    FAIL() << "no exception";
  } catch (const kettle::WorkerCrashedError& e) {
    EXPECT_EQ(WTERMSIG(e.status()), SIGKILL);
    EXPECT_NE(std::string(e.what()).find("SIGKILL"), std::string::npos);
  }
  int after = pool.submit(get_pid).result();
  EXPECT_NE(after, pid);
  EXPECT_TRUE(wait_gone(pids, 2s));
}

// A worker killed while idle fails nothing: the tasks sent to it that it never started run
// on the replacement. (SIGSTOP first, so that the tasks surely reach the dying worker.)
TEST(ProcessPoolDeadlock, test_idle_worker_killed_loses_nothing) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  int pid = pool.submit(get_pid).result();
  ::kill(pid, SIGSTOP);
  std::vector<kettle::Future<int>> fs;
  for (int i = 0; i < 5; ++i)
    fs.push_back(pool.submit(square, i));
  auto end = std::chrono::steady_clock::now() + 10s;
  while (!fs[0].running() && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(fs[0].running());  // sent to the stopped worker
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(), i * i);
  EXPECT_NE(pool.submit(get_pid).result(), pid);
}

TEST(ProcessPoolDeadlock, test_killed_child_break_pool) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 1, .on_worker_crash = OnWorkerCrash::break_pool});
  auto slow = pool.submit(sleep_and_return, 10000, 1);
  auto queued = pool.submit(square, 2);
  wait_running(slow);
  for (int p : pool.worker_pids())
    ::kill(p, SIGKILL);
  EXPECT_THROW(slow.result(), kettle::BrokenProcessPool);
  EXPECT_THROW(queued.result(), kettle::BrokenProcessPool);
  EXPECT_THROW(pool.submit(square, 3), kettle::BrokenProcessPool);
}

TEST(ProcessPoolDeadlock, test_crash_during_result_pickle_on_worker) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  int pid = pool.submit(get_pid).result();
  auto f = pool.submit(make_unserializable);
  try {
    f.result();
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Unserializable cannot be saved");
  }
  EXPECT_EQ(pool.submit(get_pid).result(), pid);  // the worker survived
}

TEST(ProcessPoolDeadlock, test_error_at_task_pickle) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto f = pool.submit(take_unserializable, Unserializable{});
  EXPECT_THROW(f.result(), std::runtime_error);
  EXPECT_EQ(pool.submit(square, 5).result(), 25);
}

// test_process_pool.py --------------------------------------------------------------------

TEST(ProcessPoolExecutor, test_max_tasks_per_child) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .max_tasks_per_child = 3});
  std::vector<int> pids;
  for (int i = 0; i < 6; ++i)
    pids.push_back(pool.submit(get_pid).result());
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_EQ(pids[1], pids[2]);
  EXPECT_NE(pids[2], pids[3]);
  EXPECT_EQ(pids[3], pids[4]);
  EXPECT_EQ(pids[4], pids[5]);
}

TEST(ProcessPoolExecutor, test_max_tasks_early_shutdown) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 3, .max_tasks_per_child = 1});
  std::vector<kettle::Future<int>> fs;
  for (int i = 0; i < 9; ++i)
    fs.push_back(pool.submit(square, i));
  pool.shutdown();
  for (int i = 0; i < 9; ++i)
    EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(), i * i);
}

TEST(ProcessPoolExecutor, test_bad_options) {
  EXPECT_THROW(ProcessPoolExecutor(ProcessPoolOptions{.max_workers = 0}), kettle::ValueError);
  EXPECT_THROW(ProcessPoolExecutor(ProcessPoolOptions{.max_tasks_per_child = 0}),
               kettle::ValueError);
}

TEST(ProcessPoolExecutor, test_map_exception) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto boom_on_5 = [](int x) {
    if (x == 5) throw std::out_of_range("five");
    return x;
  };
  auto r = pool.map(boom_on_5, range(10), 3);
  std::vector<int> seen;
  EXPECT_THROW(
      {
        for (int v : r)
          seen.push_back(v);
      },
      std::out_of_range);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
}

TEST(ProcessPoolExecutor, test_map_awaited_from_a_task) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto main = [&]() -> kettle::Coro<long> {
    std::vector<int> r = co_await pool.map(square, range(100), 8);
    int one = co_await pool.submit(square, 11);
    long s = one;
    for (int v : r)
      s += v;
    co_return s;
  };
  EXPECT_EQ(kettle::run(main()), 328350 + 121);
}

// test_shutdown.py ------------------------------------------------------------------------

TEST(ProcessPoolShutdown, test_run_after_shutdown) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  pool.shutdown();
  EXPECT_THROW(pool.submit(square, 2), kettle::RuntimeError);
}

TEST(ProcessPoolShutdown, test_cancel_futures) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto first = pool.submit(sleep_and_return, 2000, 1);  // long enough to shut down first
  std::vector<kettle::Future<int>> rest;
  for (int i = 0; i < 50; ++i)
    rest.push_back(pool.submit(square, i));
  wait_running(first);
  pool.shutdown(true, true);
  EXPECT_EQ(first.result(), 1);
  int cancelled = 0;
  for (auto& f : rest) {
    if (f.cancelled()) {
      ++cancelled;
      continue;
    }
    // The others (sent to the worker before the shutdown) finished normally.
    EXPECT_TRUE(f.done());
    EXPECT_EQ(f.exception(), nullptr);
  }
  EXPECT_GT(cancelled, 30);
}

TEST(ProcessPoolShutdown, test_terminate_workers) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto slow = pool.submit(sleep_and_return, 10000, 1);
  wait_running(slow);
  auto pids = pool.worker_pids();
  pool.terminate_workers();
  EXPECT_THROW(slow.result(), kettle::BrokenProcessPool);
  EXPECT_TRUE(wait_gone(pids, 2s));
  EXPECT_THROW(pool.submit(square, 1), kettle::RuntimeError);
}

TEST(ProcessPoolShutdown, test_kill_workers) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto slow = pool.submit(sleep_and_return, 10000, 1);
  wait_running(slow);
  pool.kill_workers();
  EXPECT_THROW(slow.result(), kettle::BrokenProcessPool);
}

// test_init.py ----------------------------------------------------------------------------

TEST(ProcessPoolInit, test_initializer) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2}, set_initialized, 42);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(pool.submit(get_initialized).result(), 42);
  EXPECT_EQ(initialized_value, 0);  // not in this process
}

TEST(ProcessPoolInit, test_initializer_failure) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2}, failing_initializer);
  auto f = pool.submit(square, 2);
  try {
    f.result();
    FAIL() << "no exception";
  } catch (const kettle::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("initializer refuses"), std::string::npos) << e.what();
  }
  // Once broken, later submits fail at once.
  std::this_thread::sleep_for(50ms);
  EXPECT_THROW(pool.submit(square, 3), kettle::BrokenProcessPool);
}

// Start methods and hygiene -----------------------------------------------------------------

namespace {

std::size_t thread_count() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}

std::set<int> children() {
  std::set<int> out;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(t.path() / "children");
    int pid;
    while (in >> pid)
      out.insert(pid);
  }
  return out;
}

}  // namespace

TEST(ProcessPoolStartMethods, test_spawn) {
  ProcessPoolExecutor pool(
      ProcessPoolOptions{.max_workers = 2, .start_method = StartMethod::spawn});
  EXPECT_EQ(pool.submit(square, 9).result(), 81);
  auto r = pool.map(square, range(50), 5).get();
  EXPECT_EQ(r[49], 49 * 49);
  EXPECT_EQ(pool.submit(crash_abort).exception() != nullptr, true);
  EXPECT_EQ(pool.submit(square, 3).result(), 9);
}

TEST(ProcessPoolStartMethods, test_fork_needs_a_single_thread) {
  kettle::ThreadPoolExecutor threads(1);
  threads.submit([] {}).result();  // a second thread now runs
  try {
    ProcessPoolExecutor pool(ProcessPoolOptions{.start_method = StartMethod::fork});
    FAIL() << "no exception";
  } catch (const kettle::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("single-threaded"), std::string::npos) << e.what();
  }
}

TEST(ProcessPoolStartMethods, test_fork) {
  if (thread_count() != 1)
    GTEST_SKIP() << "this process already has " << thread_count()
                 << " threads (the sanitizer runtime's), and fork needs one";
  initialized_value = 7;  // workers forked from here see it
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2, .start_method = StartMethod::fork});
  EXPECT_EQ(pool.submit(get_initialized).result(), 7);
  EXPECT_THROW(pool.submit(crash_segv).result(), kettle::WorkerCrashedError);
  EXPECT_EQ(pool.submit(get_initialized).result(), 7);
  initialized_value = 0;
}

// The default method works from a program that already runs a loop and a thread pool.
TEST(ProcessPoolStartMethods, test_default_method_inside_a_running_loop) {
  auto main = []() -> kettle::Coro<int> {
    int t = co_await kettle::to_thread(square, 3);
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
    int p = co_await pool.submit(square, 4);
    co_return t + p;
  };
  EXPECT_EQ(kettle::run(main()), 25);
}

TEST(ProcessPoolHygiene, test_many_pools_leak_nothing) {
  {
    ProcessPoolExecutor warm(ProcessPoolOptions{.max_workers = 1});
    warm.submit(square, 1).result();
  }
  std::size_t fds = open_fds();
  std::set<int> kids = children();
  for (int i = 0; i < 200; ++i) {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
    ASSERT_EQ(pool.submit(square, i).result(), i * i);
  }
  EXPECT_EQ(open_fds(), fds);
  EXPECT_EQ(children(), kids);
}

// Run in a child process by test_workers_die_with_their_parent: makes a pool with busy
// and idle workers, writes their pids and waits to be killed.
TEST(ProcessPoolHygiene, helper_child_pool) {
  const char* out = std::getenv("KETTLE_TEST_PID_FILE");
  if (!out) GTEST_SKIP() << "a helper for test_workers_die_with_their_parent";
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto busy = pool.submit(sleep_and_return, 60000, 1);
  pool.submit(square, 1).result();
  wait_running(busy);
  {
    std::ofstream f(std::string(out) + ".tmp");
    for (int p : pool.worker_pids())
      f << p << "\n";
  }
  std::filesystem::rename(std::string(out) + ".tmp", out);
  std::this_thread::sleep_for(60s);
}

TEST(ProcessPoolHygiene, test_workers_die_with_their_parent) {
  std::string file =
      std::filesystem::temp_directory_path() / ("kettle_pids_" + std::to_string(::getpid()));
  std::filesystem::remove(file);
  pid_t child =
      spawn_helper_test("ProcessPoolHygiene.helper_child_pool", "KETTLE_TEST_PID_FILE=" + file);
  ASSERT_GT(child, 0);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!std::filesystem::exists(file) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  std::vector<int> pids;
  {
    std::ifstream in(file);
    int p;
    while (in >> p)
      pids.push_back(p);
  }
  std::filesystem::remove(file);
  ::kill(child, SIGKILL);
  int st;
  ::waitpid(child, &st, 0);
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_TRUE(wait_gone(pids, 1s)) << "workers outlived their parent by more than 1 s";
}

// loop.run_in_executor(ProcessPoolExecutor(), f, *args), as the Python docs show it.
TEST(ProcessPoolExecutor, test_run_in_executor) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  auto main = [&]() -> kettle::Coro<int> {
    auto a = kettle::run_in_executor(&pool, square, 6);
    auto b = kettle::run_in_executor(&pool, square, 7);
    auto [x, y] = co_await kettle::gather(a, b);
    co_return x + y;
  };
  EXPECT_EQ(kettle::run(main()), 36 + 49);
}

namespace {
kettle::Coro<int> submit_and_await(ProcessPoolExecutor& pool, int x) {
  co_return co_await pool.submit(sleep_and_return, 1 + x % 3, x);
}
}  // namespace

// Stress: four loops on four threads share one pool; a fifth thread SIGKILLs random
// workers meanwhile. Every task ends exactly once: with its value, or with
// WorkerCrashedError (at most one per kill), or cancelled (when its awaiting task was).
TEST(ProcessPoolStress, test_loops_and_killed_workers) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 3});
  std::atomic<int> ok{0}, crashed{0}, cancelled{0}, wrong{0};
  std::atomic<bool> done{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    unsigned seed = 12345;
    std::set<int> seen;  // workers of the previous round: started at least 15 ms ago
    while (!done) {
      std::this_thread::sleep_for(15ms);
      std::vector<int> old;
      for (int p : pool.worker_pids())
        if (seen.count(p)) old.push_back(p);
      auto now = pool.worker_pids();
      seen = std::set<int>(now.begin(), now.end());
      if (old.empty()) continue;
      seed = seed * 1103515245 + 12345;
      int victim = old[(seed >> 8) % old.size()];
      if (::kill(victim, SIGKILL) == 0) {
        ++kills;
        seen.erase(victim);
      }
    }
  });
  auto loop_main = [&](int id) -> kettle::Coro<> {
    std::vector<kettle::Task<int>> tasks;
    for (int i = 0; i < 150; ++i)
      tasks.push_back(kettle::create_task(submit_and_await(pool, id * 1000 + i)));
    for (int i = 0; i < 150; i += 7)
      tasks[static_cast<std::size_t>(i)].cancel();
    for (int i = 0; i < 150; ++i) {
      try {
        int v = co_await tasks[static_cast<std::size_t>(i)];
        (v == id * 1000 + i ? ok : wrong)++;
      } catch (const kettle::WorkerCrashedError&) {
        ++crashed;
      } catch (const kettle::CancelledError&) {
        ++cancelled;
      }
    }
  };
  std::vector<std::thread> loops;
  for (int id = 0; id < 4; ++id)
    loops.emplace_back([&, id] {
      try {
        kettle::run(loop_main(id));
      } catch (const std::exception& e) {
        ADD_FAILURE() << "loop " << id << ": " << e.what();
      }
    });
  for (auto& t : loops)
    t.join();
  done = true;
  killer.join();
  std::printf("ok %d, crashed %d, cancelled %d, workers killed %d\n", ok.load(), crashed.load(),
              cancelled.load(), kills.load());
  EXPECT_GT(kills.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ok + crashed + cancelled, 600);
  EXPECT_LE(crashed.load(), kills.load());
  EXPECT_GE(cancelled.load(), 4 * 22);  // the tasks cancelled before they ever ran, at least
  EXPECT_EQ(pool.submit(square, 12).result(), 144);  // and the pool still works
}

namespace {
void crashing_initializer() {
  std::abort();
}
}  // namespace

// Workers that die before they are ready are replaced, but not forever: an initializer that
// crashes every time breaks the pool with a message that says so.
TEST(ProcessPoolInit, test_initializer_crash_breaks_pool) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1}, crashing_initializer);
  auto f = pool.submit(square, 2);
  try {
    f.result();
    FAIL() << "no exception";
  } catch (const kettle::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("keep dying before they are ready"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("initializer"), std::string::npos) << e.what();
  }
}

namespace {
// The descriptors a worker holds beyond stdin/out/err and its socket (fd 3).
std::vector<std::string> extra_fds(int) {
  std::vector<std::string> out;
  std::filesystem::path self = "/proc/self/fd";
  for (const auto& e : std::filesystem::directory_iterator(self)) {
    int fd = std::stoi(e.path().filename().string());
    if (fd <= 3) continue;
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (ec) continue;  // the directory iterator's own descriptor, already closed
    if (target.string().rfind("/proc/", 0) == 0) continue;  // the iterator's, still open
    out.push_back(std::to_string(fd) + " -> " + target.string());
  }
  return out;
}
}  // namespace

// No worker inherits another worker's descriptors (or any of the parent's).
TEST(ProcessPoolHygiene, test_workers_inherit_no_descriptors) {
  for (StartMethod m : {StartMethod::forkserver, StartMethod::spawn}) {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 3, .start_method = m});
    auto all = pool.map(extra_fds, std::vector<int>{0, 1, 2, 3, 4, 5}).get();
    for (const auto& fds : all)
      EXPECT_TRUE(fds.empty()) << fds.front();
  }
}

// Faults and workers that cannot be trusted -------------------------------------------------

namespace {

namespace proc = kettle::detail::proc;
using Payload = std::pair<std::vector<std::uint8_t>, std::vector<std::string>>;

std::string frame(proc::MessageKind kind, const std::string& body) {
  std::string out;
  std::size_t at = proc::begin_frame(out, kind);
  out += body;
  proc::end_frame(out, at);
  return out;
}

std::string u64(std::uint64_t v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

// A well-formed reply to task `id` carrying `p`.
std::string valid_result(std::uint64_t id, const Payload& p) {
  std::string body = u64(id);
  {
    proc::OutArchive oa(body);
    oa(p);
  }
  return frame(proc::MessageKind::result, body);
}

void write_all(const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(3, bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

// Runs in a worker: writes forged bytes on its socket to the parent (fd 3), as a buggy or
// compromised worker could, then dies (then_exit) or hangs until killed.
Payload hostile(int mode, std::uint32_t seed, bool then_exit) {
  std::uint64_t id = proc::worker_task_id();
  std::mt19937 rng(seed);
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  Payload good{{1, 2, 3}, {"honest", "reply"}};
  std::string bytes;
  switch (mode) {
    case 0:  // a reply to a task it is not running
      bytes = valid_result(id + 1000, good);
      break;
    case 1: {  // a 30-byte reply that claims a 3e9-element vector
      std::string body = u64(id) + u64(3'000'000'000ull) + "0123456789abcd";
      bytes = frame(proc::MessageKind::result, body);
      break;
    }
    case 2:  // READY again
      bytes = frame(proc::MessageKind::ready, "");
      break;
    case 3: {  // an initializer failure after READY
      std::string body = u64(0);
      proc::Writer w(body);
      proc::write_error(w, std::make_exception_ptr(std::runtime_error("late")), 1);
      bytes = frame(proc::MessageKind::init_failed, body);
      break;
    }
    case 4:  // a kind nobody knows
      bytes = frame(static_cast<proc::MessageKind>(99), u64(id));
      break;
    case 5: {  // a bool that is neither 0 nor 1 (inside an optional)
      std::string body = u64(id) + std::string(1, '\x07');
      bytes = frame(proc::MessageKind::result, body);
      break;
    }
    case 6:  // a length of 4 GiB, then nothing
      bytes = std::string("\xf0\xff\xff\xff", 4) + "x";
      break;
    case 7:  // replies out of order: the next task's first
      bytes = valid_result(id + 1, good) + valid_result(id, good);
      break;
    default: {  // the fuzz: a valid reply (and a second frame), mutated
      bytes = valid_result(id, good) + valid_result(id + 1, good);
      std::size_t edits = 1 + pick(4);
      for (std::size_t e = 0; e < edits; ++e) {
        switch (pick(6)) {
          case 0:  // flip a bit
            bytes[pick(bytes.size())] ^= static_cast<char>(1 << pick(8));
            break;
          case 1:  // a random byte
            bytes[pick(bytes.size())] = static_cast<char>(pick(256));
            break;
          case 2:  // truncate
            bytes.resize(1 + pick(bytes.size()));
            break;
          case 3: {  // a huge or wrong length in the first frame
            std::uint32_t len = pick(2) ? 0xFFFFFFF0u - static_cast<std::uint32_t>(pick(100))
                                        : static_cast<std::uint32_t>(pick(64));
            std::memcpy(bytes.data(), &len, 4);
            break;
          }
          case 4:  // a wrong id
            if (bytes.size() >= 13) bytes[5 + pick(8)] ^= 0x5a;
            break;
          default:  // garbage after it
            for (std::size_t i = pick(32); i > 0; --i)
              bytes.push_back(static_cast<char>(pick(256)));
        }
      }
    }
  }
  write_all(bytes);
  if (then_exit) ::_exit(7);
  for (;;)
    ::pause();
}

long peak_rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    long v;
    if (key == "VmHWM:" && in >> v) return v;
  }
  return 0;
}

}  // namespace

// Each way a worker can break the protocol: the parent kills that worker (through its pidfd:
// a worker whose pid is not known yet is not signalled through pid 0) and fails its task
// with WorkerCrashedError saying why; the other worker's task and the pool go on, and a lie
// about a size allocates nothing.
TEST(ProcessPoolFaults, test_worker_breaking_the_protocol_is_killed) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  pool.submit(square, 1).result();
  long rss = peak_rss_kb();
  for (int mode : {0, 1, 2, 3, 4, 5, 7}) {
    auto honest = pool.submit(sleep_and_return, 50, mode);
    auto f = pool.submit(hostile, mode, 0u, false);  // hangs: only the parent can end it
    try {
      f.result(60s);
      ADD_FAILURE() << "mode " << mode << ": the forged reply was accepted";
    } catch (const kettle::WorkerCrashedError& e) {
      EXPECT_NE(std::string(e.what()).find("was killed for sending"), std::string::npos)
          << e.what();
      EXPECT_TRUE(WIFSIGNALED(e.status()) && WTERMSIG(e.status()) == SIGKILL);
    }
    EXPECT_EQ(honest.result(60s), mode);
  }
  EXPECT_EQ(pool.submit(square, 5).result(), 25);
  EXPECT_LT(peak_rss_kb() - rss, 512 * 1024) << "the parent believed a size a worker sent";
}

// A worker that dies half-way through a 4 GiB frame fails its task; it is not waited for.
TEST(ProcessPoolFaults, test_worker_dying_inside_a_frame) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  EXPECT_THROW(pool.submit(hostile, 6, 0u, true).result(60s), kettle::WorkerCrashedError);
  EXPECT_EQ(pool.submit(square, 6).result(), 36);
}

// The fuzz: valid replies with flipped bits, random bytes, truncated, with huge or wrong
// lengths, wrong ids, garbage after them. The parent never crashes or hangs, believes no
// size, fails only that worker's task, and the pool goes on working.
TEST(ProcessPoolFaults, test_fuzzed_worker_replies) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  pool.submit(square, 1).result();
  long rss = peak_rss_kb();
  int crashed = 0, accepted = 0;
  for (std::uint32_t seed = 1; seed <= 120; ++seed) {
    auto honest = pool.submit(square, static_cast<int>(seed));
    auto f = pool.submit(hostile, 100, seed, true);
    try {
      Payload p = f.result(60s);
      ++accepted;  // a mutation that left a well-formed reply: the worker's word is taken
      (void)p;
    } catch (const kettle::WorkerCrashedError&) {
      ++crashed;
    } catch (const kettle::TimeoutError&) {
      ADD_FAILURE() << "seed " << seed << ": the parent hangs";
    } catch (...) {
      ++crashed;  // a well-formed error report
    }
    EXPECT_EQ(honest.result(60s), static_cast<int>(seed * seed)) << "seed " << seed;
  }
  std::printf("fuzzed replies: %d failed the task, %d were well-formed\n", crashed, accepted);
  EXPECT_GT(crashed, 0);
  EXPECT_EQ(pool.submit(square, 7).result(), 49);
  EXPECT_LT(peak_rss_kb() - rss, 512 * 1024);
}

// Bytes from a worker are read with checks (unit level): no read past the end, no size
// prefix larger than the bytes left, no bool that is not 0 or 1.
TEST(ProcessPoolFaults, test_input_archive_trusts_nothing) {
  auto read = [](const std::string& bytes, auto& value) {
    proc::Reader r(bytes.data(), bytes.size());
    proc::InArchive ia(r);
    ia(value);
    return r.left();
  };
  std::vector<int> v;
  EXPECT_THROW(read(u64(3'000'000'000ull) + "abc", v), kettle::RuntimeError);
  std::string s;
  EXPECT_THROW(read(u64(1ull << 62), s), kettle::RuntimeError);
  std::vector<std::vector<std::string>> nested;
  EXPECT_THROW(read(u64(2) + u64(1) + u64(1'000'000'000), nested), kettle::RuntimeError);
  std::map<int, std::string> m;
  EXPECT_THROW(read(u64(1'000'000), m), kettle::RuntimeError);
  bool b;
  EXPECT_THROW(read(std::string(1, '\x02'), b), kettle::RuntimeError);
  int i;
  EXPECT_THROW(read(std::string("ab"), i), kettle::RuntimeError);
  // A size claim no bigger than the bytes left, for elements that are large in memory: the
  // sequence grows as elements are read, rather than being resized to the claim first
  // (1 GiB of zeroed memory for this 256 KiB reply).
  {
    long rss = peak_rss_kb();
    std::string claim = u64((256 << 10) - 8) + std::string((256 << 10) - 8, '\0');
    std::vector<std::array<char, 4096>> big;
    EXPECT_THROW(read(claim, big), kettle::RuntimeError);
    std::deque<std::array<char, 4096>> dq;
    EXPECT_THROW(read(claim, dq), kettle::RuntimeError);
    std::list<std::array<char, 4096>> ls;
    EXPECT_THROW(read(claim, ls), kettle::RuntimeError);
    EXPECT_LT(peak_rss_kb() - rss, 128 * 1024);
  }
  // And what cereal wrote reads back.
  Payload p{{4, 5}, {"x", "yz"}}, q;
  std::string bytes;
  {
    proc::OutArchive oa(bytes);
    oa(p);
  }
  EXPECT_EQ(read(bytes, q), 0u);
  EXPECT_EQ(q, p);
  std::vector<std::array<double, 3>> arrays{{1, 2, 3}, {4, 5, 6}}, arrays2;
  std::deque<std::string> words{"a", "bc"}, words2;
  std::string bytes2;
  {
    proc::OutArchive oa(bytes2);
    oa(arrays, words);
  }
  proc::Reader r2(bytes2.data(), bytes2.size());
  proc::InArchive ia2(r2);
  ia2(arrays2, words2);
  EXPECT_EQ(arrays2, arrays);
  EXPECT_EQ(words2, words);
}

namespace {
// 4 GiB + 1 bytes of zeros, mapped read-only: an argument too large for one message that
// costs no memory to build.
struct HugeBlob {
  const char* bytes = nullptr;
  std::size_t size = 0;
  template <class Archive>
  void save(Archive& a) const {
    a(cereal::make_size_tag(static_cast<cereal::size_type>(size)));
    a(cereal::binary_data(bytes, size));
  }
  template <class Archive>
  void load(Archive& a) {  // in a worker: small blobs only ever get there
    cereal::size_type n;
    a(cereal::make_size_tag(n));
    copy.resize(n);
    a(cereal::binary_data(copy.data(), copy.size()));
    bytes = copy.data();
    size = copy.size();
  }
  std::vector<char> copy;
};
std::size_t blob_size(HugeBlob b) {
  return b.size;
}
}  // namespace

// An argument that does not fit a message (4 GiB or more) fails its future with ValueError,
// where it used to wrap the u32 length and have the worker run bytes of the argument as
// tasks.
TEST(ProcessPoolFaults, test_argument_too_large_for_a_frame) {
  std::size_t n = proc::kMaxFrame + 1;
  void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1});
  auto f = pool.submit(blob_size, HugeBlob{static_cast<const char*>(p), n, {}});
  try {
    f.result();
    FAIL() << "no exception";
  } catch (const kettle::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit a process pool message"), std::string::npos)
        << e.what();
  }
  // In a map, only the chunk that holds it fails.
  std::vector<HugeBlob> blobs{{static_cast<const char*>(p), 3, {}},
                              {static_cast<const char*>(p), n, {}}};
  auto chunks = pool.map(blob_size, blobs, 1).futures();
  EXPECT_EQ(chunks[0].result(), std::vector<std::size_t>{3});
  EXPECT_THROW(chunks[1].result(), kettle::ValueError);
  ::munmap(p, n);
  EXPECT_EQ(pool.submit(square, 3).result(), 9);
}

namespace {
// Forks a child that keeps the worker's socket open and records its pid, then crashes.
int fork_then_crash(std::string pid_file) {
  pid_t child = ::fork();
  if (child == 0) {
    ::sleep(30);
    ::_exit(0);
  }
  std::ofstream(pid_file) << child << "\n";
  std::abort();
}
}  // namespace

// A worker that forks a child and then crashes: noticed at once through its exit, not when
// the child (which holds the worker's socket) exits.
TEST(ProcessPoolFaults, test_worker_crash_with_grandchild_holding_its_socket) {
  for (StartMethod m : {StartMethod::forkserver, StartMethod::spawn}) {
    std::string file = std::filesystem::temp_directory_path() /
                       ("kettle_grandchild_" + std::to_string(::getpid()));
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .start_method = m});
    EXPECT_THROW(pool.submit(fork_then_crash, file).result(20s), kettle::WorkerCrashedError);
    int grandchild = 0;
    std::ifstream(file) >> grandchild;
    std::filesystem::remove(file);
    ASSERT_GT(grandchild, 0);
    EXPECT_FALSE(process_gone(grandchild)) << "noticed only after the grandchild ended";
    ::kill(grandchild, SIGKILL);
    EXPECT_EQ(pool.submit(square, 4).result(), 16);  // and the one-worker pool goes on
  }
}

// The fork server dies (killed, OOM): it is started again, and existing pools go on.
TEST(ProcessPoolFaults, test_fork_server_restarts) {
  ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2});
  EXPECT_EQ(pool.submit(square, 2).result(), 4);
  int server = proc::forkserver_pid();
  ASSERT_GT(server, 0);
  ::kill(server, SIGKILL);
  auto until = std::chrono::steady_clock::now() + 30s;  // until the pool's manager sees it
  while (proc::forkserver_pid() == server && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  // Its workers die with it; a task caught on one fails, the ones after it run.
  std::vector<int> values;
  for (int i = 0; i < 20; ++i) {
    try {
      values.push_back(pool.submit(square, i).result(30s));
    } catch (const kettle::WorkerCrashedError&) {
    }
  }
  EXPECT_GE(values.size(), 18u);
  EXPECT_EQ(pool.submit(square, 9).result(30s), 81);
  EXPECT_NE(proc::forkserver_pid(), server);
  ProcessPoolExecutor fresh(ProcessPoolOptions{.max_workers = 1});
  EXPECT_EQ(fresh.submit(square, 3).result(30s), 9);
}

// The same, with work submitted the moment the server is dead, before the pool's manager
// has read its end: the request it cannot take starts another server (it used to break the
// pool for good: "the fork server does not answer").
TEST(ProcessPoolFaults, test_fork_server_dies_just_before_a_request) {
  for (int round = 0; round < 10; ++round) {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 4});
    EXPECT_EQ(pool.submit(square, 2).result(30s), 4);
    int server = proc::forkserver_pid();
    ASSERT_GT(server, 0);
    ::kill(server, SIGKILL);
    siginfo_t si{};  // until it is dead (not reaped: WNOWAIT)
    while (::waitid(P_PID, static_cast<id_t>(server), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           si.si_pid == 0)
      std::this_thread::yield();
    std::vector<kettle::Future<int>> fs;
    for (int i = 0; i < 8; ++i)
      fs.push_back(pool.submit(square, i));
    for (auto& f : fs) {
      try {
        (void)f.result(30s);
      } catch (const kettle::WorkerCrashedError&) {  // caught on a worker of the dead server
      }
    }
    EXPECT_EQ(pool.submit(square, 3).result(30s), 9) << "round " << round;
  }
}

namespace {
int forever() {
  for (;;)
    ::pause();
}
}  // namespace

// Leaving `with Pool() as pool:` terminates the workers: ~Pool with a task that runs forever
// used to block forever.
TEST(ProcessPoolFaults, test_pool_destructor_terminates_running_work) {
  kettle::Future<int> f;
  {
    kettle::Pool pool(1);
    f = pool.apply_async(forever);
    wait_running(f);
  }
  EXPECT_THROW(f.result(30s), kettle::BrokenProcessPool);
}

// A process limit of 64 descriptors (fcntl(F_DUPFD_CLOEXEC, 100) used to fail).
TEST(ProcessPoolFaults, test_low_descriptor_limit) {
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  for (StartMethod m : {StartMethod::spawn, StartMethod::forkserver}) {
    try {
      ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 1, .start_method = m});
      EXPECT_EQ(pool.submit(square, 8).result(30s), 64);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
  ::setrlimit(RLIMIT_NOFILE, &old);
}

namespace {
// Runs this test program through a shell with KETTLE_PROCESS_ROLE set (and
// KETTLE_PARENT_PID naming the shell, its parent), fd 3 redirected as `fd3` says. Returns the
// exit status and what it printed on stderr.
std::pair<int, std::string> run_with_stray_role(const char* role, const std::string& fd3) {
  std::string self = std::filesystem::read_symlink("/proc/self/exe");
  std::string err_file =
      std::filesystem::temp_directory_path() / ("kettle_role_" + std::to_string(::getpid()));
  std::string cmd = "KETTLE_PROCESS_ROLE=" + std::string(role) + " KETTLE_PARENT_PID=$$ '" + self +
                    "' --gtest_list_tests " + fd3 + " >/dev/null 2>" + err_file + "; exit $?";
  int st = std::system(cmd.c_str());
  std::ifstream in(err_file);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(err_file);
  return {st, err};
}
}  // namespace

// KETTLE_PROCESS_ROLE in the environment of a program nobody started as a worker: a clear
// error, not a silently skipped main (nor, with fd 3 an attacker's socket, a call to an
// offset the attacker picks).
TEST(ProcessPoolFaults, test_stray_process_role_is_refused) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);  // made here, not by the shell
  for (std::string fd3 :
       {std::string("3<&-"), std::string("3</dev/null"), "3<&" + std::to_string(sv[0])}) {
    auto [st, err] = run_with_stray_role("worker", fd3);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << fd3 << ": status " << st << " " << err;
    EXPECT_NE(err.find("KETTLE_PROCESS_ROLE=worker is set"), std::string::npos) << err;
  }
  ::close(sv[0]);
  ::close(sv[1]);
  auto [st, err] = run_with_stray_role("forkserver", "3<&-");
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
  EXPECT_NE(err.find("unset KETTLE_PROCESS_ROLE"), std::string::npos) << err;
}

// The fork method ignores kettle's own manager thread (a second fork pool used to be
// refused while the first existed), and a thread just joined (back-to-back fork pools were
// refused about once in a thousand).
TEST(ProcessPoolStartMethods, test_fork_pools_one_after_another) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer starts a thread of its own with the first one we start";
#endif
  if (thread_count() != 1)
    GTEST_SKIP() << "this process already has " << thread_count()
                 << " threads (the sanitizer runtime's), and fork needs one";
  {
    ProcessPoolExecutor a(ProcessPoolOptions{.max_workers = 1, .start_method = StartMethod::fork});
    ProcessPoolExecutor b(ProcessPoolOptions{.max_workers = 1, .start_method = StartMethod::fork});
    EXPECT_EQ(a.submit(square, 2).result() + b.submit(square, 3).result(), 13);
  }
  for (int i = 0; i < 200; ++i) {
    ProcessPoolExecutor p(ProcessPoolOptions{.max_workers = 1, .start_method = StartMethod::fork});
    ASSERT_EQ(p.submit(square, i).result(), i * i) << "round " << i;
  }
}

namespace {
// An initializer that writes garbage to the parent at once: with the fork server, that can
// arrive before the server has told the parent the worker's pid.
void garbage_initializer() {
  write_all(std::string("\x05\x00\x00\x00\x63garbage", 12));
  ::pause();
}
}  // namespace

// The parent used to kill(w->pid = 0, SIGKILL) then: its own process group. Now it kills
// that worker through its pidfd once known; workers that keep doing it break the pool.
TEST(ProcessPoolFaults, test_malformed_frame_before_pid_known) {
  for (int round = 0; round < 3; ++round) {
    ProcessPoolExecutor pool(ProcessPoolOptions{.max_workers = 2}, garbage_initializer);
    try {
      pool.submit(square, 2).result(60s);
      FAIL() << "no exception";
    } catch (const kettle::BrokenProcessPool& e) {
      EXPECT_NE(std::string(e.what()).find("was killed for sending"), std::string::npos)
          << e.what();
    }
  }
}
