// asyncio.subprocess, mirroring CPython's Lib/test/test_asyncio/test_subprocess.py, and the
// fixes asyncio's users asked for (gh-119710, gh-139373, reaping of dropped processes).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <kettle/kettle.hpp>

#include "helpers.hpp"

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::create_subprocess_exec;
using kettle::create_subprocess_shell;
using kettle::subprocess::DEVNULL;
using kettle::subprocess::Options;
using kettle::subprocess::PIPE;
using kettle::subprocess::Process;
using kettle::subprocess::STDOUT;

namespace {

template <class F>
void run_test(F body) {
  kettle::run(body());
}

// Our children, zombies included (from /proc/*/stat's ppid field), other than those that
// were there when the test began (earlier tests in this process may leave a fork server).
std::vector<int> all_children() {
  std::vector<int> out;
  int me = ::getpid();
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == me)
      out.push_back(std::stoi(name));
  }
  return out;
}

struct Baseline {
  std::vector<int> before = all_children();
  std::vector<int> children() const {
    std::vector<int> now = all_children(), out;
    for (int p : now)
      if (std::find(before.begin(), before.end(), p) == before.end()) out.push_back(p);
    return out;
  }
  // Waits (up to 10 s) until no new child is left.
  bool none_soon() const {
    for (int i = 0; i < 1000; ++i) {
      if (children().empty()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
};

}  // namespace

TEST(Subprocess, test_stdin_stdout) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("cat", Options{.stdin_ = PIPE, .stdout_ = PIPE});
    p.stdin_->write("Python The Winner");
    co_await p.stdin_->drain();
    p.stdin_->close();
    std::string got = co_await p.stdout_->read();
    EXPECT_EQ(got, "Python The Winner");
    EXPECT_EQ(co_await p.wait(), 0);
    EXPECT_EQ(p.returncode(), 0);
  });
}

TEST(Subprocess, test_communicate) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("cat", Options{.stdin_ = PIPE, .stdout_ = PIPE});
    auto [out, err] = co_await p.communicate("Python The Winner");
    EXPECT_EQ(out, "Python The Winner");
    EXPECT_EQ(err, "");
    EXPECT_EQ(p.returncode(), 0);
  });
}

TEST(Subprocess, test_communicate_none_input) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("echo", "hi", Options{.stdout_ = PIPE});
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "hi\n");
    EXPECT_EQ(p.returncode(), 0);
  });
}

TEST(Subprocess, test_shell) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_shell("exit 7");
    EXPECT_EQ(co_await p.wait(), 7);
  });
}

TEST(Subprocess, stderr_to_stdout_and_separate_stderr) {
  run_test([]() -> Coro<> {
    Process merged = co_await create_subprocess_shell("echo out; echo err >&2",
                                                      {.stdout_ = PIPE, .stderr_ = STDOUT});
    auto [out, err] = co_await merged.communicate();
    EXPECT_EQ(out, "out\nerr\n");
    EXPECT_FALSE(merged.stderr_.has_value());
    Process apart = co_await create_subprocess_shell("echo out; echo err >&2",
                                                     {.stdout_ = PIPE, .stderr_ = PIPE});
    auto [out2, err2] = co_await apart.communicate();
    EXPECT_EQ(out2, "out\n");
    EXPECT_EQ(err2, "err\n");
  });
}

TEST(Subprocess, test_devnull_input_output_error) {
  run_test([]() -> Coro<> {
    Process in =
        co_await create_subprocess_exec("cat", Options{.stdin_ = DEVNULL, .stdout_ = PIPE});
    auto [out, err] = co_await in.communicate();
    EXPECT_EQ(out, "");
    EXPECT_EQ(in.returncode(), 0);
    Process outp = co_await create_subprocess_shell("echo lost; echo lost too >&2",
                                                    {.stdout_ = DEVNULL, .stderr_ = DEVNULL});
    EXPECT_EQ(co_await outp.wait(), 0);
  });
}

TEST(Subprocess, descriptors_as_stdin_and_stdout) {
  // Our own descriptors as the child's stdin and stdout (here: the ends of two pipes).
  int in[2], out[2];
  ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(::write(in[1], "through fds\n", 12), 12);
  ::close(in[1]);
  run_test([&]() -> Coro<> {
    Process p = co_await create_subprocess_exec("cat", Options{.stdin_ = in[0], .stdout_ = out[1]});
    EXPECT_FALSE(p.stdin_.has_value());
    EXPECT_FALSE(p.stdout_.has_value());
    EXPECT_EQ(co_await p.wait(), 0);
  });
  ::close(out[1]);
  char buf[64] = {};
  EXPECT_EQ(::read(out[0], buf, sizeof buf), 12);
  EXPECT_EQ(std::string(buf), "through fds\n");
  ::close(in[0]);
  ::close(out[0]);
}

TEST(Subprocess, test_kill) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("sleep", "30");
    p.kill();
    EXPECT_EQ(co_await p.wait(), -SIGKILL);
  });
}

TEST(Subprocess, test_terminate) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("sleep", "30");
    p.terminate();
    EXPECT_EQ(co_await p.wait(), -SIGTERM);
  });
}

TEST(Subprocess, test_send_signal) {
  run_test([]() -> Coro<> {
    // The child says when its handler is in place, then exits through it.
    Process p = co_await create_subprocess_shell(
        "trap 'exit 3' HUP; echo ready; "
        "while :; do sleep 0.05; done",
        {.stdout_ = PIPE});
    EXPECT_EQ(co_await p.stdout_->readline(), "ready\n");
    p.send_signal(SIGHUP);
    EXPECT_EQ(co_await p.wait(), 3);
    // Exited and reaped: there is no process to signal any more.
    CO_EXPECT_THROW(p.send_signal(SIGTERM), kettle::ProcessLookupError);
    CO_EXPECT_THROW(p.kill(), kettle::ProcessLookupError);
  });
}

TEST(Subprocess, invalid_signal_is_value_error) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("sleep", "30");
    CO_EXPECT_THROW(p.send_signal(-5), kettle::ValueError);
    CO_EXPECT_THROW(p.send_signal(100000), kettle::ValueError);
    p.kill();
    co_await p.wait();
  });
}

TEST(Subprocess, test_popen_error) {
  Baseline kids;
  run_test([]() -> Coro<> {
    CO_EXPECT_THROW(co_await create_subprocess_exec("kettle-no-such-program"),
                    kettle::FileNotFoundError);
    CO_EXPECT_THROW(co_await create_subprocess_exec("/nonexistent/prog"),
                    kettle::FileNotFoundError);
    // Not executable.
    std::string path =
        std::filesystem::temp_directory_path() / ("kettle-noexec-" + std::to_string(::getpid()));
    { std::ofstream(path) << "#!/bin/sh\n"; }
    CO_EXPECT_THROW(co_await create_subprocess_exec(path), kettle::PermissionError);
    std::filesystem::remove(path);
    // A working directory that does not exist.
    CO_EXPECT_THROW(co_await create_subprocess_exec("true", Options{.cwd = "/nonexistent/dir"}),
                    kettle::FileNotFoundError);
    try {
      co_await create_subprocess_exec("kettle-no-such-program");
    } catch (const kettle::FileNotFoundError& e) {
      EXPECT_NE(std::string(e.what()).find("kettle-no-such-program"), std::string::npos)
          << e.what();
      EXPECT_EQ(e.code().value(), ENOENT);
    }
  });
  EXPECT_TRUE(kids.children().empty());
}

TEST(Subprocess, invalid_options_are_value_errors) {
  run_test([]() -> Coro<> {
    CO_EXPECT_THROW(co_await create_subprocess_exec("true", Options{.stdout_ = STDOUT}),
                    kettle::ValueError);
    CO_EXPECT_THROW(co_await create_subprocess_exec("true", Options{.stdin_ = -17}),
                    kettle::ValueError);
    CO_EXPECT_THROW(co_await create_subprocess_exec(
                        "true", Options{.start_new_session = true, .process_group = 0}),
                    kettle::ValueError);
    int bad[] = {12345};
    CO_EXPECT_THROW(co_await create_subprocess_exec("true", Options{.pass_fds = bad}),
                    kettle::ValueError);
    CO_EXPECT_THROW(co_await create_subprocess_exec("true", Options{.limit = 0}),
                    kettle::ValueError);
    Process p = co_await create_subprocess_exec("true");
    CO_EXPECT_THROW(co_await p.communicate("", -1.0), kettle::ValueError);
    CO_EXPECT_THROW(co_await p.communicate("", std::nan("")), kettle::ValueError);
    co_await p.wait();
  });
}

TEST(Subprocess, test_create_subprocess_exec_with_path_and_args) {
  run_test([]() -> Coro<> {
    std::vector<std::string> args{"-c", "printf '%s|' \"$0\" \"$@\"", "zero", "a b", "", "c"};
    Process p = co_await create_subprocess_exec("/bin/sh", args, {.stdout_ = PIPE});
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "zero|a b||c|");
  });
}

TEST(Subprocess, test_create_subprocess_env_exec_and_shell) {
  run_test([]() -> Coro<> {
    std::map<std::string, std::string> env{{"FRUIT", "orange"}, {"PATH", "/usr/bin:/bin"}};
    Process p = co_await create_subprocess_shell("echo $FRUIT; env | wc -l",
                                                 {.stdout_ = PIPE, .env = &env});
    auto [out, err] = co_await p.communicate();
    // Only what was given (sh adds PWD and SHLVL, at most a few).
    EXPECT_EQ(out.substr(0, 7), "orange\n");
    EXPECT_LE(std::stoi(out.substr(7)), 5) << out;
    // PATH for the lookup is the child's: with an empty one, "true" is not found.
    std::map<std::string, std::string> nopath{{"PATH", "/nonexistent"}};
    CO_EXPECT_THROW(co_await create_subprocess_exec("true", Options{.env = &nopath}),
                    kettle::FileNotFoundError);
  });
}

TEST(Subprocess, cwd_is_where_it_runs) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("pwd", Options{.stdout_ = PIPE, .cwd = "/tmp"});
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "/tmp\n");
  });
}

TEST(Subprocess, test_close_fds_and_pass_fds) {
  // Only 0-2 and pass_fds reach the child, even descriptors that are not close-on-exec.
  // At high numbers, where nothing the child opens itself lands.
  int p1[2], p2[2];
  ASSERT_EQ(::pipe(p1), 0);
  ASSERT_EQ(::pipe(p2), 0);
  int leaky[2] = {::fcntl(p1[0], F_DUPFD, 200), ::fcntl(p1[1], F_DUPFD, 200)};  // inheritable
  int passed[2] = {::fcntl(p2[0], F_DUPFD_CLOEXEC, 200), ::fcntl(p2[1], F_DUPFD_CLOEXEC, 200)};
  for (int fd : {p1[0], p1[1], p2[0], p2[1]})
    ::close(fd);
  run_test([&]() -> Coro<> {
    int pass[] = {passed[1]};
    std::string cmd =
        "ls /proc/self/fd; echo via-passed > /proc/self/fd/" + std::to_string(passed[1]);
    Process p = co_await create_subprocess_shell(cmd, {.stdout_ = PIPE, .pass_fds = pass});
    auto [out, err] = co_await p.communicate();
    std::vector<int> fds;
    std::size_t i = 0;
    while (i < out.size()) {
      std::size_t j = out.find('\n', i);
      fds.push_back(std::stoi(out.substr(i, j - i)));
      i = j + 1;
    }
    // 0-2, the passed one, and the descriptor ls opens for /proc/self/fd.
    EXPECT_EQ(std::count(fds.begin(), fds.end(), leaky[0]), 0);
    EXPECT_EQ(std::count(fds.begin(), fds.end(), leaky[1]), 0);
    EXPECT_EQ(std::count(fds.begin(), fds.end(), passed[1]), 1);
    EXPECT_LE(fds.size(), 5u) << out;
  });
  char buf[32] = {};
  ASSERT_GT(::read(passed[0], buf, sizeof buf), 0);
  EXPECT_EQ(std::string(buf), "via-passed\n");
  for (int fd : {leaky[0], leaky[1], passed[0], passed[1]})
    ::close(fd);
}

TEST(Subprocess, test_stdin_broken_pipe_and_communicate_ignore_broken_pipe) {
  run_test([]() -> Coro<> {
    // The child exits without reading: writing to it is a BrokenPipeError (not SIGPIPE,
    // which would kill the test), and communicate() ignores it, as asyncio's does.
    std::string big(4 << 20, 'x');
    Process p = co_await create_subprocess_exec("true", Options{.stdin_ = PIPE});
    co_await p.wait();
    p.stdin_->write(big);
    CO_EXPECT_THROW(co_await p.stdin_->drain(), kettle::BrokenPipeError);
    Process q = co_await create_subprocess_exec("true", Options{.stdin_ = PIPE, .stdout_ = PIPE});
    auto [out, err] = co_await q.communicate(big);
    EXPECT_EQ(out, "");
    EXPECT_EQ(q.returncode(), 0);
  });
}

TEST(Subprocess, ten_mib_each_way_through_cat_with_communicate_and_with_wait) {
  run_test([]() -> Coro<> {
    std::string data(10 << 20, '\0');
    for (std::size_t i = 0; i < data.size(); ++i)
      data[i] = char(i * 31 + i / 977);
    Process p = co_await create_subprocess_exec("cat", Options{.stdin_ = PIPE, .stdout_ = PIPE});
    auto [out, err] = co_await p.communicate(data);
    EXPECT_TRUE(out == data) << out.size();
    // wait() while cat's output is not read by us: the pipe is read into the reader anyway,
    // so cat never blocks and wait() returns; then everything is there to read.
    Process q = co_await create_subprocess_exec("cat", Options{.stdin_ = PIPE, .stdout_ = PIPE});
    auto feed = [&]() -> Coro<> {
      q.stdin_->write(data);
      co_await q.stdin_->drain();
      q.stdin_->close();
    };
    auto [nothing, rc] = co_await kettle::gather(feed(), q.wait());
    (void)nothing;
    EXPECT_EQ(rc, 0);
    EXPECT_TRUE(co_await q.stdout_->read() == data);
  });
}

TEST(Subprocess, wait_returns_when_a_grandchild_still_holds_the_pipes) {
  run_test([]() -> Coro<> {
    // gh-119710: asyncio's wait() waits for the pipes to close, i.e. for the grandchild.
    Process p = co_await create_subprocess_shell("sleep 30 & echo hi",
                                                 {.stdout_ = PIPE, .start_new_session = true});
    int rc = co_await kettle::wait_for(p.wait(), 10.0);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(co_await p.stdout_->readline(), "hi\n");
    p.kill_group();  // the sleep is in its session's group
  });
}

TEST(Subprocess, communicate_with_a_timeout_that_is_enough) {
  run_test([]() -> Coro<> {
    Process p =
        co_await create_subprocess_shell("read line; echo \"got $line\"; echo e >&2",
                                         {.stdin_ = PIPE, .stdout_ = PIPE, .stderr_ = PIPE});
    auto [out, err] = co_await p.communicate("hello\n", 30.0);
    EXPECT_EQ(out, "got hello\n");
    EXPECT_EQ(err, "e\n");
    EXPECT_EQ(p.returncode(), 0);
    // Once it is over, communicate() has nothing more to give.
    auto [out2, err2] = co_await p.communicate();
    EXPECT_EQ(out2, "");
    EXPECT_EQ(err2, "");
  });
}

TEST(Subprocess, cancelled_communicate_keeps_what_was_read) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_shell(
        "echo part1; echo e1 >&2; sleep 30; echo never",
        {.stdout_ = PIPE, .stderr_ = PIPE, .start_new_session = true});
    bool timed_out = false;
    try {
      // Waits until both parts have surely come: then the timeout.
      co_await p.communicate("", 1.0);
    } catch (const kettle::subprocess::TimeoutExpired& e) {
      timed_out = true;
      EXPECT_EQ(e.output(), "part1\n");
      EXPECT_EQ(e.errors(), "e1\n");
      EXPECT_EQ(e.timeout(), 1.0);
    }
    EXPECT_TRUE(timed_out);
    EXPECT_FALSE(p.returncode().has_value());  // it runs on
    // A cancelled communicate() keeps its part too.
    auto t = kettle::create_task(p.communicate());
    co_await kettle::sleep(0.05);
    t.cancel();
    CO_EXPECT_THROW(co_await t, kettle::CancelledError);
    // Then kill it (and its sleep, which holds the pipes) and finish: everything read so
    // far comes back once.
    p.kill_group();
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "part1\n");
    EXPECT_EQ(err, "e1\n");
    EXPECT_EQ(p.returncode(), -SIGKILL);
  });
}

TEST(Subprocess, communicate_after_a_timeout_continues_the_input_once) {
  run_test([]() -> Coro<> {
    // cat reads nothing for a while: the pipe fills and the first call times out with part
    // of the input sent. The second call sends the rest (not the whole again).
    std::string data(4 << 20, '\0');
    for (std::size_t i = 0; i < data.size(); ++i)
      data[i] = char('a' + i % 23);
    Process p =
        co_await create_subprocess_shell("sleep 0.5; cat", {.stdin_ = PIPE, .stdout_ = PIPE});
    CO_EXPECT_THROW(co_await p.communicate(data, 0.1), kettle::subprocess::TimeoutExpired);
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out.size(), data.size());
    EXPECT_TRUE(out == data);
    EXPECT_EQ(p.returncode(), 0);
  });
}

TEST(Subprocess, test_cancel_process_wait) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_exec("sleep", "30");
    auto t = kettle::create_task(p.wait());
    co_await kettle::sleep(0.01);
    t.cancel();
    CO_EXPECT_THROW(co_await t, kettle::CancelledError);
    EXPECT_FALSE(p.returncode().has_value());
    p.kill();
    EXPECT_EQ(co_await p.wait(), -SIGKILL);
  });
}

TEST(Subprocess, test_subprocess_concurrent_wait) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_shell("sleep 0.1; exit 4");
    auto [a, b] = co_await kettle::gather(p.wait(), p.wait());
    EXPECT_EQ(a, 4);
    EXPECT_EQ(b, 4);
  });
}

TEST(Subprocess, test_read_stdout_after_process_exit) {
  run_test([]() -> Coro<> {
    Process p = co_await create_subprocess_shell("echo line1; echo line2", {.stdout_ = PIPE});
    co_await p.wait();
    EXPECT_EQ(co_await p.stdout_->readline(), "line1\n");
    EXPECT_EQ(co_await p.stdout_->readline(), "line2\n");
    EXPECT_EQ(co_await p.stdout_->readline(), "");
    EXPECT_TRUE(p.stdout_->at_eof());
  });
}

TEST(Subprocess, dropped_process_is_reaped_and_kill_on_drop_kills) {
  Baseline kids;
  std::size_t fds_before = open_fds();
  run_test([&]() -> Coro<> {
    {
      Process p = co_await create_subprocess_shell("sleep 0.2", {.stdin_ = PIPE, .stdout_ = PIPE});
    }  // runs on; reaped in the background
    pid_t killed = 0;
    {
      Process p = co_await create_subprocess_exec("sleep", "30", Options{.kill_on_drop = true});
      killed = p.pid();
    }
    // Let the loop see both exits.
    for (int i = 0; i < 200 && !kids.children().empty(); ++i)
      co_await kettle::sleep(0.02);
    EXPECT_TRUE(kids.children().empty());
    EXPECT_NE(::kill(killed, 0), 0);  // gone, not a zombie
  });
  EXPECT_EQ(open_fds(), fds_before);
}

TEST(Subprocess, dropping_a_process_closes_its_pipes) {
  Baseline kids;
  std::size_t fds_before = open_fds();
  run_test([&]() -> Coro<> {
    pid_t cat = 0, chatty = 0;
    {
      // cat exits only when its stdin closes; the other writes far more than the reader's
      // pause threshold and exits only when its stdout is gone (SIGPIPE).
      Process a = co_await create_subprocess_exec("cat", Options{.stdin_ = PIPE, .stdout_ = PIPE});
      Process b = co_await create_subprocess_exec("yes", Options{.stdout_ = PIPE});
      cat = a.pid();
      chatty = b.pid();
    }
    for (int i = 0; i < 500 && !kids.children().empty(); ++i)
      co_await kettle::sleep(0.02);
    EXPECT_TRUE(kids.children().empty()) << "cat " << cat << ", yes " << chatty;
  });
  EXPECT_EQ(open_fds(), fds_before);
}

TEST(Subprocess, loop_closing_under_a_running_child_leaves_no_zombie) {
  Baseline kids;
  std::size_t fds_before = open_fds();
  Process* leaked = nullptr;
  run_test([&]() -> Coro<> {
    // A Process kept past its loop: the loop's close hands the child to a reaper.
    Process p = co_await create_subprocess_shell("sleep 0.3", {.stdout_ = PIPE});
    leaked = new Process(std::move(p));
  });
  EXPECT_FALSE(leaked->returncode().has_value());
  delete leaked;
  EXPECT_TRUE(kids.none_soon());
  // The reaper thread closes the pidfd just after reaping.
  for (int i = 0; i < 500 && open_fds() != fds_before; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(open_fds(), fds_before);
}

TEST(Subprocess, process_group_and_new_session) {
  run_test([]() -> Coro<> {
    Process s =
        co_await create_subprocess_exec("sh", "-c", "cut -d' ' -f6 /proc/$$/stat",
                                        Options{.stdout_ = PIPE, .start_new_session = true});
    auto [sid, e1] = co_await s.communicate();
    EXPECT_EQ(std::stoi(sid), s.pid());
    Process g = co_await create_subprocess_exec("sh", "-c", "cut -d' ' -f5 /proc/$$/stat",
                                                Options{.stdout_ = PIPE, .process_group = 0});
    auto [pgid, e2] = co_await g.communicate();
    EXPECT_EQ(std::stoi(pgid), g.pid());
    Process plain = co_await create_subprocess_exec("sleep", "30");
    CO_EXPECT_THROW(plain.kill_group(), kettle::ValueError);
    plain.kill();
    co_await plain.wait();
  });
}

TEST(Subprocess, thousand_in_a_row_and_two_hundred_at_once_leak_nothing) {
  Baseline kids;
  std::size_t fds_before = open_fds();
  run_test([&]() -> Coro<> {
    for (int i = 0; i < 1000; ++i) {
      Process p = co_await create_subprocess_exec("true", Options{.stdout_ = PIPE});
      co_await p.wait();
    }
    std::vector<Coro<std::string>> all;
    auto one = [](int i) -> Coro<std::string> {
      Process p =
          co_await create_subprocess_exec("echo", std::to_string(i), Options{.stdout_ = PIPE});
      auto [out, err] = co_await p.communicate();
      co_return out;
    };
    for (int i = 0; i < 200; ++i)
      all.push_back(one(i));
    std::vector<std::string> outs = co_await kettle::gather(all);
    for (int i = 0; i < 200; ++i)
      EXPECT_EQ(outs[std::size_t(i)], std::to_string(i) + "\n");
  });
  EXPECT_TRUE(kids.children().empty());
  EXPECT_EQ(open_fds(), fds_before);
}
