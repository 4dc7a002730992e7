// Micro-benchmarks of kettle's core (Google Benchmark). bench/compare puts kettle side by
// side with Asio, asyncio and uvloop; these isolate the cost of single operations.
#include <benchmark/benchmark.h>

#include <vector>

#include <kettle/kettle.hpp>

using kettle::Coro;

namespace {

Coro<int> ready_value(int i) {
  co_return i;
}

void BM_AwaitReadyCoro(benchmark::State& state) {
  auto body = [&]() -> Coro<> {
    for (auto _ : state)
      benchmark::DoNotOptimize(co_await ready_value(1));
  };
  kettle::run(body());
}
BENCHMARK(BM_AwaitReadyCoro);

void BM_SleepZero(benchmark::State& state) {
  auto body = [&]() -> Coro<> {
    for (auto _ : state)
      co_await kettle::sleep(0);
  };
  kettle::run(body());
}
BENCHMARK(BM_SleepZero);

Coro<int> yield_once(int i) {
  co_await kettle::sleep(0);
  co_return i;
}

void BM_CreateTaskAndAwait(benchmark::State& state) {
  auto body = [&]() -> Coro<> {
    for (auto _ : state) {
      kettle::Task<int> t = kettle::create_task(ready_value(1));
      benchmark::DoNotOptimize(co_await t);
    }
  };
  kettle::run(body());
}
BENCHMARK(BM_CreateTaskAndAwait);

void BM_GatherTasks(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto body = [&]() -> Coro<> {
    for (auto _ : state) {
      std::vector<Coro<int>> coros;
      coros.reserve(n);
      for (int i = 0; i < n; ++i)
        coros.push_back(yield_once(i));
      benchmark::DoNotOptimize(co_await kettle::gather(coros));
    }
  };
  kettle::run(body());
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_GatherTasks)->Arg(1000)->Arg(100000);

void BM_CallSoon(benchmark::State& state) {
  kettle::EventLoop loop;
  int count = 0;
  for (auto _ : state) {
    loop.call_soon([&] { ++count; });
    loop.stop();
    loop.run_forever();
  }
  benchmark::DoNotOptimize(count);
}
BENCHMARK(BM_CallSoon);

void BM_TimerScheduleAndCancel(benchmark::State& state) {
  kettle::EventLoop loop;
  std::vector<kettle::TimerHandle> keep;
  for (int i = 0; i < 10000; ++i)
    keep.push_back(loop.call_later(3600.0 + i, [] {}));
  for (auto _ : state) {
    kettle::TimerHandle h = loop.call_later(1800.0, [] {});
    h.cancel();
  }
}
BENCHMARK(BM_TimerScheduleAndCancel);

}  // namespace

BENCHMARK_MAIN();
