// kettle::run. Names follow CPython's test_runners.py.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

#include "helpers.hpp"

using namespace std::chrono_literals;
using kettle::Coro;

TEST(Runners, test_asyncio_run_return) {
  auto main_ = []() -> Coro<int> {
    co_await kettle::sleep(0);
    co_return 42;
  };
  EXPECT_EQ(kettle::run(main_()), 42);
}

TEST(Runners, test_asyncio_run_raises) {
  auto main_ = []() -> Coro<> {
    co_await kettle::sleep(0);
    throw std::invalid_argument("spam");
  };
  try {
    kettle::run(main_());
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "spam");
  }
}

TEST(Runners, test_asyncio_run_only_coro) {
  // Only a Coro can be run: kettle::run(42) does not compile (checked by the type system).
  static_assert(!std::is_invocable_v<decltype([](auto x) -> decltype(kettle::run(x)) {}), int>);
}

TEST(Runners, test_asyncio_run_debug) {
  auto main_ = []() -> Coro<bool> { co_return kettle::get_running_loop().get_debug(); };
  EXPECT_FALSE(kettle::run(main_()));
  kettle::RunOptions o;
  o.debug = true;
  EXPECT_TRUE(kettle::run(main_(), o));
}

TEST(Runners, test_asyncio_run_from_running_loop) {
  auto leaf = []() -> Coro<int> { co_return 1; };
  auto main_ = [&]() -> Coro<> {
    EXPECT_THROW(kettle::run(leaf()), kettle::RuntimeError);
    co_return;
  };
  kettle::run(main_());
}

TEST(Runners, test_asyncio_run_cancels_hanging_tasks) {
  std::vector<kettle::TaskRef> kept;
  bool cancelled_cleanly = false;
  auto hang = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(3600s);
    } catch (const kettle::CancelledError&) {
      cancelled_cleanly = true;
      throw;
    }
  };
  auto main_ = [&]() -> Coro<> {
    kept.push_back(kettle::create_task(hang()));
    co_await kettle::sleep(1ms);
  };
  auto t0 = std::chrono::steady_clock::now();
  kettle::run(main_());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_TRUE(cancelled_cleanly);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_TRUE(kept[0].done());
  EXPECT_TRUE(kept[0].cancelled());
}

TEST(Runners, test_asyncio_run_reports_hanging_tasks_errors) {
  std::vector<kettle::ExceptionContext> seen;
  kettle::RunOptions opts;
  opts.exception_handler = [&](kettle::EventLoop&, const kettle::ExceptionContext& c) {
    seen.push_back(c);
  };
  auto leftover = []() -> Coro<> {
    try {
      co_await kettle::sleep(3600s);
    } catch (const kettle::CancelledError&) {
    }
    throw std::runtime_error("boom during cancel");
  };
  auto main_ = [&]() -> Coro<> {
    (void)kettle::create_task(leftover(), "leftover");
    co_await kettle::sleep(1ms);
  };
  kettle::run(main_(), opts);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].message, "unhandled exception during kettle::run() shutdown");
  EXPECT_EQ(seen[0].task_name, "leftover");
  EXPECT_EQ(kettle::describe(seen[0].exception), "std::runtime_error: boom during cancel");
}

TEST(Runners, test_asyncio_run_closes_loop) {
  kettle::EventLoop* seen = nullptr;
  auto main_ = [&]() -> Coro<> {
    seen = &kettle::get_running_loop();
    co_return;
  };
  kettle::run(main_());
  EXPECT_NE(seen, nullptr);
  EXPECT_THROW(kettle::get_running_loop(), kettle::RuntimeError);
  // Runs again on a new loop.
  kettle::run(main_());
}

// A small run starts no thread (the default executor is made on first use) and leaves no
// descriptor open.
TEST(Runners, RunStartsNoThreadItDoesNotUse) {
  auto threads = [] {
    std::size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
      (void)e;
      ++n;
    }
    return n;
  };
  // A runtime's own helper thread (ThreadSanitizer starts one at the first pthread_create)
  // exists before counting.
  std::thread([] {}).join();
  std::size_t threads_before = threads(), fds_before = open_fds();
  std::size_t threads_inside = 0;
  kettle::run([](std::size_t& inside, auto count) -> Coro<> {
    co_await kettle::sleep(0.001);
    inside = count();
  }(threads_inside, threads));
  EXPECT_EQ(threads_inside, threads_before);
  EXPECT_EQ(threads(), threads_before);
  EXPECT_EQ(open_fds(), fds_before);
  // The first to_thread makes the pool, and run() joins it.
  int r =
      kettle::run([]() -> Coro<int> { co_return co_await kettle::to_thread([] { return 7; }); }());
  EXPECT_EQ(r, 7);
  EXPECT_EQ(threads(), threads_before);
}

TEST(Runners, test_asyncio_run_main_exception_still_cleans_up) {
  bool child_cancelled = false;
  auto child = [&]() -> Coro<> {
    try {
      co_await kettle::sleep(3600s);
    } catch (const kettle::CancelledError&) {
      child_cancelled = true;
      throw;
    }
  };
  auto main_ = [&]() -> Coro<> {
    (void)kettle::create_task(child());
    co_await kettle::sleep(1ms);
    throw std::logic_error("main failed");
  };
  EXPECT_THROW(kettle::run(main_()), std::logic_error);
  EXPECT_TRUE(child_cancelled);
}
