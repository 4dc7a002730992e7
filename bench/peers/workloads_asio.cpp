// The bench/compare workloads in raw Asio 1.22 coroutines (co_spawn + use_awaitable),
// the way an Asio user would write them. Usage: asio_workloads [workload ...]
#include <cstring>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "../workload_report.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  using Workload = void (*)();
  const std::pair<const char*, Workload> workloads[] = {
      {"gather_100k", gather_100k},
      {"sleep0_1m", sleep0_1m},
      {"switch_1m", switch_1m},
      {"sleep_100k", sleep_100k},
  };
  return bench::main(argc, argv, workloads, [](Workload w) { w(); });
}
