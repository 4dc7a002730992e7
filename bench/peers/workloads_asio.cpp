// The bench/compare workloads in raw Asio 1.22 coroutines (co_spawn + use_awaitable),
// the way an Asio user would write them. Usage: asio_workloads [workload ...]
#include <cstring>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <netinet/tcp.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <thread>

#include "../workload_report.hpp"

extern char** environ;

using namespace std::chrono_literals;

namespace {

asio::awaitable<int> child(int i) {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  co_return i;
}

// 1. co_spawn 100 000 coroutines that each yield once (post) and return their index;
// results are collected by completion handlers, as a gather would.
void gather_100k() {
  constexpr int n = 100'000;
  std::vector<double> times;
  for (int round = 0; round < bench::kRounds + 1; ++round) {  // round 0 warms up
    asio::io_context io(1);
    std::vector<int> results(n);
    int done = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i)
      asio::co_spawn(io, child(i), [&, i](std::exception_ptr e, int v) {
        if (e) std::abort();
        results[i] = v;
        ++done;
      });
    io.run();
    double s = bench::seconds_since(t0);
    if (done != n || results[n - 1] != n - 1) std::abort();
    if (round > 0) times.push_back(s);
  }
  bench::report("gather_100k", "ns_per_task", bench::median(times) * 1e9 / n);
}

// A program that runs small io_contexts one after another, each running one coroutine that
// returns at once: what starting and finishing a loop costs.
asio::awaitable<void> nothing() {
  co_return;
}

void run_startup() {
  constexpr int n = 2000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    asio::io_context io(1);
    asio::co_spawn(io, nothing(), asio::detached);
    io.run();
  }
  bench::report("run_startup", "us_per_run", bench::seconds_since(t0) * 1e6 / n);
}

// 2. one coroutine doing 1 000 000 co_await asio::post(ex, use_awaitable).
void sleep0_1m() {
  constexpr int n = 1'000'000;
  asio::io_context io(1);
  auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(
      io,
      []() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (int i = 0; i < n; ++i)
          co_await asio::post(ex, asio::use_awaitable);
      },
      asio::detached);
  io.run();
  bench::report("sleep0_1m", "ns_per_op", bench::seconds_since(t0) * 1e9 / n);
}

// 2b. two coroutines each doing 500 000 posts.
void switch_1m() {
  constexpr int n = 1'000'000;
  asio::io_context io(1);
  auto yielder = []() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < n / 2; ++i)
      co_await asio::post(ex, asio::use_awaitable);
  };
  auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(io, yielder(), asio::detached);
  asio::co_spawn(io, yielder(), asio::detached);
  io.run();
  bench::report("switch_1m", "ns_per_op", bench::seconds_since(t0) * 1e9 / n);
}

asio::awaitable<void> sleeper() {
  asio::steady_timer t(co_await asio::this_coro::executor, 50ms);
  co_await t.async_wait(asio::use_awaitable);
}

// 3. 100 000 concurrent 50 ms steady_timer waits.
void sleep_100k() {
  constexpr int n = 100'000;
  asio::io_context io(1);
  long rss0 = bench::rss_bytes();
  long peak = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    asio::co_spawn(io, sleeper(), asio::detached);
  asio::steady_timer probe(io, 25ms);
  probe.async_wait([&](std::error_code) { peak = bench::rss_bytes(); });
  io.run();
  double s = bench::seconds_since(t0);
  bench::report("sleep_100k", "ns_overhead_per_timer", (s - 0.050) * 1e9 / n);
  bench::report("sleep_100k", "bytes_per_task", double(peak - rss0) / n);
}

// Streams over loopback, client and server on one io_context (one thread), as Asio users
// write them: async_read into a fixed buffer, async_write, TCP_NODELAY on.
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

awaitable<void> echo_exact(tcp::socket s) {
  char buf[64];
  try {
    for (;;) {
      co_await asio::async_read(s, asio::buffer(buf), use_awaitable);
      co_await asio::async_write(s, asio::buffer(buf), use_awaitable);
    }
  } catch (const std::system_error&) {
  }
}

awaitable<void> accept_all(tcp::acceptor& acc, int n, awaitable<void> (*fn)(tcp::socket)) {
  for (int i = 0; i < n; ++i) {
    tcp::socket s = co_await acc.async_accept(use_awaitable);
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acc.get_executor(), fn(std::move(s)), asio::detached);
  }
}

void tcp_pingpong() {
  constexpr int n = 100'000;
  asio::io_context io(1);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(io, accept_all(acc, 1, echo_exact), asio::detached);
  auto client = [&]() -> awaitable<void> {
    tcp::socket s(io);
    co_await s.async_connect(acc.local_endpoint(), use_awaitable);
    s.set_option(tcp::no_delay(true));
    char msg[64] = {};
    for (int i = 0; i < 1000; ++i) {
      co_await asio::async_write(s, asio::buffer(msg), use_awaitable);
      co_await asio::async_read(s, asio::buffer(msg), use_awaitable);
    }
    std::vector<double> lat;
    lat.reserve(n);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto t = std::chrono::steady_clock::now();
      co_await asio::async_write(s, asio::buffer(msg), use_awaitable);
      co_await asio::async_read(s, asio::buffer(msg), use_awaitable);
      lat.push_back(bench::seconds_since(t));
    }
    double total = bench::seconds_since(t0);
    std::sort(lat.begin(), lat.end());
    bench::report("tcp_pingpong", "ns_per_round_trip", total * 1e9 / n);
    bench::report("tcp_pingpong", "us_p50", lat[n / 2] * 1e6);
    bench::report("tcp_pingpong", "us_p99", lat[n * 99 / 100] * 1e6);
  };
  asio::co_spawn(io, client(), asio::detached);
  io.run();

  // The floor: blocking send/recv between two threads, no event loop at all.
  tcp::acceptor acc2(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket a(io), b(io);
  a.connect(acc2.local_endpoint());
  acc2.accept(b);
  a.set_option(tcp::no_delay(true));
  b.set_option(tcp::no_delay(true));
  int fa = a.native_handle(), fb = b.native_handle();
  std::thread echo([fb] {
    char m[64];
    for (;;) {
      ssize_t k = ::recv(fb, m, 64, MSG_WAITALL);
      if (k <= 0) return;
      ::send(fb, m, std::size_t(k), 0);
    }
  });
  char m[64] = {};
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    ::send(fa, m, 64, 0);
    ::recv(fa, m, 64, MSG_WAITALL);
  }
  bench::report("tcp_pingpong", "ns_raw_c", bench::seconds_since(t0) * 1e9 / n);
  ::shutdown(fa, SHUT_WR);
  echo.join();
}

void tcp_pingpong_100() {
  constexpr int conns = 100, rounds = 2000;
  asio::io_context io(1);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(io, accept_all(acc, conns, echo_exact), asio::detached);
  auto client = [&]() -> awaitable<void> {
    tcp::socket s(io);
    co_await s.async_connect(acc.local_endpoint(), use_awaitable);
    s.set_option(tcp::no_delay(true));
    char msg[64] = {};
    for (int i = 0; i < rounds; ++i) {
      co_await asio::async_write(s, asio::buffer(msg), use_awaitable);
      co_await asio::async_read(s, asio::buffer(msg), use_awaitable);
    }
  };
  for (int i = 0; i < conns; ++i)
    asio::co_spawn(io, client(), asio::detached);
  double cpu0 = bench::cpu_seconds();
  io.run();
  bench::report("tcp_pingpong_100", "ns_cpu_per_msg",
                (bench::cpu_seconds() - cpu0) * 1e9 / (conns * rounds));
}

awaitable<void> sink(tcp::socket s) {
  std::vector<char> buf(65536);
  std::size_t got = 0;
  for (;;) {
    auto [ec, k] =
        co_await s.async_read_some(asio::buffer(buf), asio::experimental::as_tuple(use_awaitable));
    if (ec) break;
    got += k;
  }
  std::string reply = std::to_string(got);
  co_await asio::async_write(s, asio::buffer(reply), use_awaitable);
}

void tcp_bulk() {
  constexpr std::size_t total = 256u << 20;
  asio::io_context io(1);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(io, accept_all(acc, 1, sink), asio::detached);
  auto client = [&]() -> awaitable<void> {
    tcp::socket s(io);
    co_await s.async_connect(acc.local_endpoint(), use_awaitable);
    s.set_option(tcp::no_delay(true));
    std::vector<char> block(65536, 'b');
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t sent = 0; sent < total; sent += block.size())
      co_await asio::async_write(s, asio::buffer(block), use_awaitable);
    s.shutdown(tcp::socket::shutdown_send);
    std::string reply;
    auto [ec, k] = co_await asio::async_read(s, asio::dynamic_buffer(reply),
                                             asio::experimental::as_tuple(use_awaitable));
    if (reply != std::to_string(total)) std::abort();
    bench::report("tcp_bulk", "ms_per_gib",
                  bench::seconds_since(t0) * 1e3 * double(1u << 30) / total);
  };
  asio::co_spawn(io, client(), asio::detached);
  io.run();
}

awaitable<void> liner(tcp::socket s) {
  std::string chunk;
  for (int i = 0; i < 1000; ++i)
    chunk += "line " + std::to_string(i % 10) + " of the test\n";
  for (int i = 0; i < 1000; ++i)
    co_await asio::async_write(s, asio::buffer(chunk), use_awaitable);
}

void readline_1m() {
  asio::io_context io(1);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(io, accept_all(acc, 1, liner), asio::detached);
  auto client = [&]() -> awaitable<void> {
    tcp::socket s(io);
    co_await s.async_connect(acc.local_endpoint(), use_awaitable);
    std::string buf;
    int n = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      auto [ec, k] = co_await asio::async_read_until(s, asio::dynamic_buffer(buf), '\n',
                                                     asio::experimental::as_tuple(use_awaitable));
      if (ec) break;
      std::string line = buf.substr(0, k);
      buf.erase(0, k);
      ++n;
    }
    if (n != 1'000'000) std::abort();
    bench::report("readline_1m", "ns_per_line", bench::seconds_since(t0) * 1e9 / n);
  };
  asio::co_spawn(io, client(), asio::detached);
  io.run();
}

// The floor for spawn_1k: posix_spawn + waitpid, no event loop at all.
void spawn_1k() {
  constexpr int n = 1000;
  char prog[] = "/bin/true";
  char* argv[] = {prog, nullptr};
  auto once = [&] {
    pid_t pid;
    if (::posix_spawn(&pid, prog, nullptr, nullptr, argv, environ) != 0) std::abort();
    int st;
    ::waitpid(pid, &st, 0);
    if (st != 0) std::abort();
  };
  for (int i = 0; i < 20; ++i)
    once();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    once();
  bench::report("spawn_1k", "us_per_spawn", bench::seconds_since(t0) * 1e6 / n);
}

}  // namespace

int main(int argc, char** argv) {
  using Workload = void (*)();
  const std::pair<const char*, Workload> workloads[] = {
      {"gather_100k", gather_100k},   {"sleep0_1m", sleep0_1m},
      {"switch_1m", switch_1m},       {"sleep_100k", sleep_100k},
      {"tcp_pingpong", tcp_pingpong}, {"tcp_pingpong_100", tcp_pingpong_100},
      {"tcp_bulk", tcp_bulk},         {"spawn_1k", spawn_1k},
      {"readline_1m", readline_1m},   {"run_startup", run_startup},
  };
  return bench::main(argc, argv, workloads, [](Workload w) { w(); });
}
