// kettle::to_thread, run_in_executor, run_coroutine_threadsafe. Names follow CPython's
// test_asyncio/test_threads.py and test_tasks.py (RunCoroutineThreadsafeTests).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::Future;

namespace {
int add(int a, int b) {
  return a + b;
}
}  // namespace

TEST(ToThread, test_to_thread) {
  auto body = []() -> Coro<int> { co_return co_await kettle::to_thread(add, 1, 2); };
  EXPECT_EQ(kettle::run(body()), 3);
}

TEST(ToThread, test_to_thread_once) {
  std::atomic<int> calls{0};
  auto func = [&] { ++calls; };
  auto body = [&]() -> Coro<> { co_await kettle::to_thread(func); };
  kettle::run(body());
  EXPECT_EQ(calls, 1);
}

TEST(ToThread, test_to_thread_concurrent) {
  // Five calls run at the same time: each waits until all five have started.
  std::atomic<int> calls{0}, started{0};
  auto func = [&] {
    ++started;
    auto give_up = std::chrono::steady_clock::now() + 10s;
    while (started < 5 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(1ms);
    if (started == 5) ++calls;
  };
  auto body = [&]() -> Coro<> {
    std::vector<Future<void>> fs;
    for (int i = 0; i < 5; ++i)
      fs.push_back(kettle::to_thread(func));
    co_await kettle::gather(fs);
  };
  kettle::run(body());
  EXPECT_EQ(calls, 5);
}

TEST(ToThread, test_to_thread_args_kwargs) {
  auto func = [](std::string a, std::string b) { return a + b; };
  auto body = [&]() -> Coro<std::string> {
    co_return co_await kettle::to_thread(func, std::string("x"), std::string("y"));
  };
  EXPECT_EQ(kettle::run(body()), "xy");
}

TEST(ToThread, test_to_thread_exception) {
  auto fail = [] { throw std::logic_error("in the thread"); };
  auto body = [&]() -> Coro<> { co_await kettle::to_thread(fail); };
  EXPECT_THROW(kettle::run(body()), std::logic_error);
}

TEST(ToThread, test_loop_keeps_serving_while_thread_blocks) {
  auto blocking = [] {
    std::this_thread::sleep_for(100ms);
    return 1;
  };
  auto body = [&]() -> Coro<int> {
    int ticks = 0;
    auto ticker = [&]() -> Coro<> {
      for (int i = 0; i < 5; ++i) {
        co_await kettle::sleep(10ms);
        ++ticks;
      }
    };
    auto [r, none] = co_await kettle::gather(kettle::to_thread(blocking), ticker());
    (void)none;
    EXPECT_EQ(ticks, 5);
    co_return r;
  };
  EXPECT_EQ(kettle::run(body()), 1);
}

TEST(ToThread, test_resumed_on_own_loop_thread) {
  auto body = []() -> Coro<> {
    std::thread::id loop_thread = std::this_thread::get_id();
    std::thread::id work_thread =
        co_await kettle::to_thread([] { return std::this_thread::get_id(); });
    EXPECT_NE(work_thread, loop_thread);
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);
  };
  kettle::run(body());
}

TEST(ToThread, test_cancel_awaiting_task_stops_running_work) {
  std::atomic<bool> running{false}, stopped{false};
  auto cooperative = [&](std::stop_token st) {
    running = true;
    while (!st.stop_requested())
      std::this_thread::sleep_for(1ms);
    stopped = true;
  };
  auto body = [&]() -> Coro<> {
    auto waiter = [&]() -> Coro<> { co_await kettle::to_thread(cooperative); };
    kettle::Task<> t = kettle::create_task(waiter());
    while (!running)  // cancelled once it runs (before, it would simply never run)
      co_await kettle::sleep(1ms);
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);
  };
  kettle::run(body());  // run() waits for the default executor's work on the way out
  EXPECT_TRUE(stopped);
}

TEST(ToThread, test_cancel_before_start_never_runs) {
  std::atomic<int> ran{0};
  auto body = [&]() -> Coro<> {
    kettle::ThreadPoolExecutor one(1);
    std::atomic<bool> release{false};
    Future<void> blocker = kettle::run_in_executor(&one, [&] {
      while (!release)
        std::this_thread::sleep_for(1ms);
    });
    auto waiter = [&]() -> Coro<> { co_await kettle::run_in_executor(&one, [&] { ++ran; }); };
    kettle::Task<> t = kettle::create_task(waiter());
    co_await kettle::sleep(5ms);
    t.cancel();  // its work is still queued behind the blocker: it is cancelled, never runs
    EXPECT_THROW(co_await t, kettle::CancelledError);
    release = true;
    co_await blocker;
  };
  kettle::run(body());
  EXPECT_EQ(ran, 0);
}

TEST(ToThread, test_run_in_executor_default_and_custom) {
  kettle::ThreadPoolExecutor pool(1, "custom");
  auto body = [&]() -> Coro<int> {
    int a = co_await kettle::run_in_executor(nullptr, add, 1, 2);
    int b = co_await kettle::run_in_executor(&pool, add, 3, 4);
    co_return a + b;
  };
  EXPECT_EQ(kettle::run(body()), 10);
}

TEST(ToThread, test_default_executor_shut_down_by_run) {
  kettle::EventLoop* seen = nullptr;
  auto body = [&]() -> Coro<> {
    seen = &kettle::get_running_loop();
    co_await kettle::to_thread([] {});
  };
  kettle::run(body());  // joined its threads on the way out (TSan would see a leak otherwise)
  EXPECT_NE(seen, nullptr);
}

// run_coroutine_threadsafe -----------------------------------------------------------------

namespace {
struct ThreadsafeFixture {
  kettle::EventLoop loop;
  static Coro<int> add_later(int a, int b, bool fail = false, bool cancel = false,
                             std::chrono::milliseconds delay = 50ms) {
    co_await kettle::sleep(delay);
    if (fail) throw std::runtime_error("Fail!");
    if (cancel) {
      kettle::current_task().cancel();
      co_await kettle::sleep(0);
    }
    co_return a + b;
  }
  // What CPython's target() does on a thread of the default executor.
  static int target(kettle::EventLoop* loop, std::optional<double> timeout, bool cancel) {
    // A timeout or a cancel must come first, however late this thread runs.
    auto delay = timeout || cancel ? std::chrono::milliseconds(3600s) : 50ms;
    Future<int> future =
        kettle::run_coroutine_threadsafe(add_later(1, 2, false, false, delay), *loop);
    if (cancel) future.cancel();
    try {
      int r = timeout ? future.result(std::chrono::duration<double>(*timeout)) : future.result();
      return r;
    } catch (...) {
      if (!future.done()) future.cancel();
      throw;
    }
  }
};
}  // namespace

TEST(RunCoroutineThreadsafe, test_run_coroutine_threadsafe) {
  ThreadsafeFixture fx;
  auto body = [&]() -> Coro<int> {
    co_return co_await kettle::to_thread(ThreadsafeFixture::target, &fx.loop, std::nullopt, false);
  };
  EXPECT_EQ(fx.loop.run_until_complete(body()), 3);
}

TEST(RunCoroutineThreadsafe, test_run_coroutine_threadsafe_with_exception) {
  ThreadsafeFixture fx;
  auto target = [](kettle::EventLoop* loop) {
    return kettle::run_coroutine_threadsafe(ThreadsafeFixture::add_later(1, 2, true), *loop)
        .result();
  };
  auto body = [&]() -> Coro<int> { co_return co_await kettle::to_thread(target, &fx.loop); };
  try {
    fx.loop.run_until_complete(body());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Fail!");
  }
}

TEST(RunCoroutineThreadsafe, test_run_coroutine_threadsafe_with_timeout) {
  ThreadsafeFixture fx;
  auto body = [&]() -> Coro<int> {
    co_return co_await kettle::to_thread(ThreadsafeFixture::target, &fx.loop, 0.0, false);
  };
  EXPECT_THROW(fx.loop.run_until_complete(body()), kettle::TimeoutError);
  fx.loop.run_until_complete(kettle::sleep(10ms));
  // The timed-out future was cancelled, which cancelled the task: nothing is pending.
  auto check = []() -> Coro<> {
    EXPECT_EQ(kettle::all_tasks().size(), 1u);
    co_return;
  };
  fx.loop.run_until_complete(check());
}

TEST(RunCoroutineThreadsafe, test_run_coroutine_threadsafe_task_cancelled) {
  ThreadsafeFixture fx;
  auto body = [&]() -> Coro<int> {
    co_return co_await kettle::to_thread(ThreadsafeFixture::target, &fx.loop, std::nullopt, true);
  };
  EXPECT_THROW(fx.loop.run_until_complete(body()), kettle::CancelledError);
}

TEST(RunCoroutineThreadsafe, test_run_coroutine_threadsafe_task_factory_exception) {
  // The coroutine cancels its own task: the future reports cancellation.
  ThreadsafeFixture fx;
  auto target = [](kettle::EventLoop* loop) {
    return kettle::run_coroutine_threadsafe(ThreadsafeFixture::add_later(1, 2, false, true), *loop)
        .result();
  };
  auto body = [&]() -> Coro<int> { co_return co_await kettle::to_thread(target, &fx.loop); };
  EXPECT_THROW(fx.loop.run_until_complete(body()), kettle::CancelledError);
}

TEST(RunCoroutineThreadsafe, test_from_plain_thread_into_running_loop) {
  kettle::EventLoop loop;
  std::thread loop_thread([&] { loop.run_forever(); });
  while (!loop.is_running())
    std::this_thread::sleep_for(1ms);
  Future<int> f = kettle::run_coroutine_threadsafe(ThreadsafeFixture::add_later(20, 22), loop);
  EXPECT_EQ(f.result(5s), 42);
  loop.call_soon_threadsafe([&] { loop.stop(); });
  loop_thread.join();
}
