// Signal handlers on the loop (CPython's test_unix_events.py, SelectorEventLoopSignalTests)
// and Ctrl-C in kettle::run (test_runners.py's SIGINT cases).
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

#include "helpers.hpp"

using namespace std::chrono_literals;
using kettle::Coro;

namespace {

bool default_disposition(int sig) {
  struct sigaction sa {};
  ::sigaction(sig, nullptr, &sa);
  return !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL;
}

void interrupt_self(int sig = SIGINT) {
  ::kill(::getpid(), sig);
}

int sleep_and_return(int ms, int v) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return v;
}

}  // namespace

// --- loop.add_signal_handler ---

TEST(UnixEvents, test_add_signal_handler) {
  std::vector<std::string> events;
  kettle::run([&]() -> Coro<> {
    kettle::EventLoop& loop = kettle::get_running_loop();
    kettle::Event got;
    loop.add_signal_handler(SIGUSR1, [&] {
      // A loop callback: the loop is running here, tasks can be made.
      events.push_back(kettle::get_running_loop().is_running() ? "handler on the loop" : "?");
      got.set();
    });
    EXPECT_FALSE(default_disposition(SIGUSR1));
    struct sigaction sa {};
    ::sigaction(SIGUSR1, nullptr, &sa);
    EXPECT_TRUE(sa.sa_flags & SA_RESTART);  // no EINTR for blocking calls in other threads
    interrupt_self(SIGUSR1);
    events.push_back("sent");
    co_await got.wait();
    got.clear();
    interrupt_self(SIGUSR1);  // again: handlers stay until removed
    co_await got.wait();
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_TRUE(default_disposition(SIGUSR1));
  }());
  EXPECT_EQ(events,
            (std::vector<std::string>{"sent", "handler on the loop", "handler on the loop"}));
}

TEST(UnixEvents, test_add_signal_handler_replaces_the_previous_one) {
  std::vector<int> calls;
  kettle::run([&]() -> Coro<> {
    kettle::EventLoop& loop = kettle::get_running_loop();
    kettle::Event got;
    loop.add_signal_handler(SIGUSR2, [&] { calls.push_back(1); });
    loop.add_signal_handler(SIGUSR2, [&] {
      calls.push_back(2);
      got.set();
    });
    interrupt_self(SIGUSR2);
    co_await got.wait();
    loop.remove_signal_handler(SIGUSR2);
  }());
  EXPECT_EQ(calls, std::vector<int>{2});
}

TEST(UnixEvents, test_add_signal_handler_errors) {
  kettle::run([]() -> Coro<> {
    kettle::EventLoop& loop = kettle::get_running_loop();
    EXPECT_THROW(loop.add_signal_handler(0, [] {}), kettle::ValueError);
    EXPECT_THROW(loop.add_signal_handler(NSIG, [] {}), kettle::ValueError);
    EXPECT_THROW(loop.add_signal_handler(-3, [] {}), kettle::ValueError);
    EXPECT_THROW(loop.add_signal_handler(SIGKILL, [] {}), kettle::RuntimeError);
    EXPECT_THROW(loop.add_signal_handler(SIGSTOP, [] {}), kettle::RuntimeError);
    EXPECT_THROW(loop.add_signal_handler(SIGUSR1, nullptr), kettle::ValueError);
    EXPECT_THROW(loop.remove_signal_handler(NSIG), kettle::ValueError);
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
    co_return;
  }());
  // Not the main thread's loop: RuntimeError, and nothing installed.
  std::thread([] {
    kettle::run([]() -> Coro<> {
      EXPECT_THROW(kettle::get_running_loop().add_signal_handler(SIGUSR1, [] {}),
                   kettle::RuntimeError);
      co_return;
    }());
  }).join();
  EXPECT_TRUE(default_disposition(SIGUSR1));
}

TEST(UnixEvents, handler_exception_goes_to_the_exception_handler_and_close_removes_handlers) {
  std::vector<std::string> reported;
  kettle::RunOptions options;
  options.exception_handler = [&](kettle::EventLoop&, const kettle::ExceptionContext& c) {
    reported.push_back(kettle::describe(c.exception));
  };
  kettle::run(
      []() -> Coro<> {
        kettle::EventLoop& loop = kettle::get_running_loop();
        bool ran = false;
        loop.add_signal_handler(SIGUSR1, [&] {
          ran = true;
          throw kettle::ValueError("from the handler");
        });
        interrupt_self(SIGUSR1);
        while (!ran)
          co_await kettle::sleep(0.001);
        co_await kettle::sleep(0);  // the loop goes on
      }(),
      std::move(options));
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_NE(reported[0].find("from the handler"), std::string::npos);
  EXPECT_TRUE(default_disposition(SIGUSR1));  // the loop's close() removed it
}

// --- kettle::run and Ctrl-C (asyncio.Runner) ---

TEST(RunnerSigint, test_interrupt_call_soon) {
  bool raised = false;
  try {
    kettle::run([]() -> Coro<> {
      kettle::get_running_loop().call_soon([] { interrupt_self(); });
      co_await kettle::sleep(30);
    }());
  } catch (const kettle::KeyboardInterrupt& k) {
    raised = true;
    EXPECT_EQ(k.signal(), SIGINT);
  }
  EXPECT_TRUE(raised);
  EXPECT_TRUE(default_disposition(SIGINT));
}

TEST(RunnerSigint, test_interrupt_wait_runs_cleanup) {
  // Destructors, catch blocks and a TaskGroup's cleanup run before KeyboardInterrupt.
  std::vector<std::string> events;
  bool raised = false;
  try {
    kettle::run([&]() -> Coro<> {
      struct Marker {
        std::vector<std::string>& e;
        const char* name;
        ~Marker() { e.push_back(name); }
      };
      Marker m{events, "main's destructor"};
      auto child = [&]() -> Coro<> {
        Marker c{events, "child's destructor"};
        co_await kettle::sleep(30);
      };
      try {
        co_await kettle::task_group([&](kettle::TaskGroup& tg) -> Coro<> {
          tg.create_task(child());
          kettle::get_running_loop().call_later(0.05, [] { interrupt_self(); });
          co_await kettle::sleep(30);
        });
      } catch (const kettle::CancelledError&) {
        events.push_back("main's catch");
        throw;
      }
    }());
  } catch (const kettle::KeyboardInterrupt&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(events,
            (std::vector<std::string>{"child's destructor", "main's catch", "main's destructor"}));
}

TEST(RunnerSigint, test_interrupt_cancelled_task) {
  // Cancelled by someone else as well: uncancel() is not 0, so CancelledError stays.
  EXPECT_THROW(kettle::run([]() -> Coro<> {
                 kettle::TaskRef self = kettle::current_task();
                 auto sub = [self]() mutable -> Coro<> {
                   co_await kettle::sleep(0);
                   self.cancel();
                   interrupt_self();
                 };
                 auto t = kettle::create_task(sub());
                 co_await kettle::sleep(30);
               }()),
               kettle::CancelledError);
}

TEST(RunnerSigint, main_that_handles_the_cancellation_returns_normally) {
  // As asyncio: a main task that swallows the cancellation and returns ends run() normally.
  int v = kettle::run([]() -> Coro<int> {
    kettle::get_running_loop().call_soon([] { interrupt_self(); });
    try {
      co_await kettle::sleep(30);
    } catch (const kettle::CancelledError&) {
      kettle::current_task().uncancel();
      co_return 7;
    }
    co_return 0;
  }());
  EXPECT_EQ(v, 7);
}

TEST(RunnerSigint, second_sigint_raises_at_once) {
  std::vector<std::string> events;
  bool raised = false;
  try {
    kettle::run([&]() -> Coro<> {
      kettle::get_running_loop().call_soon([] { interrupt_self(); });
      try {
        co_await kettle::sleep(30);
      } catch (const kettle::CancelledError&) {
        events.push_back("first: ignored");
      }
      // Stubborn: goes on waiting. The second Ctrl-C stops waiting for it; it is then
      // cancelled again with the other tasks, and run() raises.
      kettle::get_running_loop().call_soon([] { interrupt_self(); });
      try {
        co_await kettle::sleep(30);
      } catch (const kettle::CancelledError&) {
        events.push_back("second: cancelled at shutdown");
        throw;
      }
    }());
  } catch (const kettle::KeyboardInterrupt&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(events, (std::vector<std::string>{"first: ignored", "second: cancelled at shutdown"}));
}

TEST(RunnerSigint, default_disposition_is_back_during_the_cleanup) {
  // Once the main task is over, a Ctrl-C no longer stops the loop under the cleanup (which
  // here waits for a thread): SIGINT has its default disposition again, as with asyncio.
  bool default_during_cleanup = false;
  kettle::run([&]() -> Coro<> {
    EXPECT_FALSE(default_disposition(SIGINT));
    auto late = [&] {
      std::this_thread::sleep_for(200ms);
      default_during_cleanup = default_disposition(SIGINT);
    };
    auto t = kettle::create_task(kettle::to_thread(late));
    co_await kettle::sleep(0.05);  // it has started: cancelling t cannot stop it
    // run() cancels t, then waits for the thread in shutdown_default_executor.
  }());
  EXPECT_TRUE(default_during_cleanup);
}

TEST(RunnerSigint, handle_sigterm) {
  kettle::RunOptions options;
  options.handle_sigterm = true;
  int sig = 0;
  try {
    kettle::run(
        []() -> Coro<> {
          kettle::get_running_loop().call_soon([] { interrupt_self(SIGTERM); });
          co_await kettle::sleep(30);
        }(),
        std::move(options));
  } catch (const kettle::KeyboardInterrupt& k) {
    sig = k.signal();
  }
  EXPECT_EQ(sig, SIGTERM);
  EXPECT_TRUE(default_disposition(SIGTERM));
}

namespace {
volatile sig_atomic_t custom_handler_ran = 0;
}

TEST(RunnerSigint, test_signal_install_not_supported_ok_and_custom_handler_left_alone) {
  // Someone else's SIGINT handler: run() installs nothing, and that handler gets the signal.
  struct sigaction mine {
  }, old{};
  mine.sa_handler = [](int) { custom_handler_ran = 1; };
  ::sigaction(SIGINT, &mine, &old);
  kettle::run([]() -> Coro<> {
    interrupt_self();
    while (!custom_handler_ran)
      co_await kettle::sleep(0.001);
  }());
  EXPECT_EQ(custom_handler_ran, 1);
  struct sigaction after {};
  ::sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, mine.sa_handler);  // still the user's
  ::sigaction(SIGINT, &old, nullptr);
  // Not on the main thread: nothing installed either.
  std::thread([] {
    kettle::run([]() -> Coro<> {
      EXPECT_TRUE(default_disposition(SIGINT));
      co_return;
    }());
  }).join();
}

// Run in a child (its own session) by ctrl_c_with_everything_busy: a terminal's Ctrl-C
// reaches the whole process group while tasks, a thread pool, a process pool and
// subprocesses are busy.
TEST(RunnerSigint, helper_ctrl_c_program) {
  const char* out = std::getenv("KETTLE_TEST_CTRL_C_FILE");
  if (!out) GTEST_SKIP() << "a helper for ctrl_c_with_everything_busy";
  std::string file = out;
  auto write = [&](const std::string& line) { std::ofstream(file, std::ios::app) << line << "\n"; };
  try {
    kettle::run([&]() -> Coro<> {
      struct Marker {
        std::function<void()> f;
        ~Marker() { f(); }
      } marker{[&] { write("marker"); }};
      kettle::ProcessPoolExecutor pool(kettle::ProcessPoolOptions{.max_workers = 2});
      auto busy = pool.submit(sleep_and_return, 60000, 1);
      co_await pool.submit(sleep_and_return, 0, 2);  // both workers are up
      // A child that ignores SIGINT, as a daemon might: killed by kill_on_drop.
      auto sub = co_await kettle::create_subprocess_exec(
          "sh", "-c", "trap '' INT; exec sleep 60",
          kettle::subprocess::Options{.kill_on_drop = true});
      auto thread_work = kettle::create_task(kettle::to_thread(sleep_and_return, 300, 3));
      for (int p : pool.worker_pids())
        write("pid " + std::to_string(p));
      write("pid " + std::to_string(sub.pid()));
      ::kill(0, SIGINT);  // as a terminal: the whole group
      co_await busy;
    }());
  } catch (const kettle::KeyboardInterrupt&) {
    write("KeyboardInterrupt");
    std::fflush(nullptr);
    ::_exit(130);
  }
  write("no KeyboardInterrupt");
  ::_exit(1);
}

TEST(RunnerSigint, ctrl_c_with_everything_busy) {
  std::string file =
      std::filesystem::temp_directory_path() / ("kettle_ctrl_c_" + std::to_string(::getpid()));
  std::filesystem::remove(file);
  // In a session of its own, as a terminal's job.
  pid_t child = spawn_helper_test("RunnerSigint.helper_ctrl_c_program",
                                  "KETTLE_TEST_CTRL_C_FILE=" + file, true);
  ASSERT_GT(child, 0);
  std::optional<int> st = wait_helper(child, 60s);  // (the pool task takes 60 s)
  if (!st) FAIL() << "the interrupted program did not exit";
  int status = *st;
  std::vector<std::string> lines;
  std::vector<int> pids;
  {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("pid ", 0) == 0)
        pids.push_back(std::stoi(line.substr(4)));
      else
        lines.push_back(line);
    }
  }
  std::filesystem::remove(file);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_EQ(lines, (std::vector<std::string>{"marker", "KeyboardInterrupt"}));
  EXPECT_EQ(pids.size(), 3u);
  for (int p : pids)
    EXPECT_TRUE(wait_gone({p}, 10s)) << "process " << p << " survived";  // (or lives a minute)
}

// Run in a child by ctrl_c_reaches_a_loop_that_does_not_run: the loop thread blocks, so
// no loop ever sees the first SIGINT; the second one ends the program.
TEST(RunnerSigint, helper_stuck_loop) {
  if (!std::getenv("KETTLE_TEST_STUCK_LOOP")) GTEST_SKIP() << "a helper";
  kettle::run([]() -> Coro<> {
    interrupt_self();
    interrupt_self();
    std::this_thread::sleep_for(30s);  // blocks the loop thread: the task never suspends
    co_return;
  }());
  ::_exit(1);
}

TEST(RunnerSigint, ctrl_c_reaches_a_loop_that_does_not_run) {
  pid_t child = spawn_helper_test("RunnerSigint.helper_stuck_loop", "KETTLE_TEST_STUCK_LOOP=1");
  ASSERT_GT(child, 0);
  std::optional<int> status = wait_helper(child, 20s);  // (it would block for 30)
  if (!status) FAIL() << "two SIGINTs did not end a program whose loop was blocked";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGINT) << *status;
}
