// The bench/compare workloads in kettle. Usage: kettle_workloads [workload ...]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

#include "workload_report.hpp"

using namespace std::chrono_literals;
using kettle::Coro;

namespace {

int trivial(int i);

Coro<int> child(int i) {
  co_await kettle::sleep(0);
  co_return i;
}

// 1. spawn + gather of 100 000 tasks that each sleep(0) once and return their index.
Coro<> gather_100k() {
  constexpr int n = 100'000;
  std::vector<double> times;
  for (int round = 0; round < bench::kRounds + 1; ++round) {  // round 0 warms up
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Coro<int>> coros;
    coros.reserve(n);
    for (int i = 0; i < n; ++i)
      coros.push_back(child(i));
    std::vector<int> r = co_await kettle::gather(coros);
    double s = bench::seconds_since(t0);
    if (r.size() != n || r[n - 1] != n - 1) std::abort();
    if (round > 0) times.push_back(s);
  }
  bench::report("gather_100k", "ns_per_task", bench::median(times) * 1e9 / n);
  // The other form: create_task for each, then gather(tasks).
  times.clear();
  for (int round = 0; round < bench::kRounds + 1; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<kettle::Task<int>> tasks;
    tasks.reserve(n);
    for (int i = 0; i < n; ++i)
      tasks.push_back(kettle::create_task(child(i)));
    std::vector<int> r = co_await kettle::gather(tasks);
    double s = bench::seconds_since(t0);
    if (r.size() != n || r[n - 1] != n - 1) std::abort();
    if (round > 0) times.push_back(s);
  }
  bench::report("gather_100k", "ns_per_task_create_task", bench::median(times) * 1e9 / n);
}

// 2. one task doing 1 000 000 sleep(0).
Coro<> sleep0_1m() {
  constexpr int n = 1'000'000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    co_await kettle::sleep(0);
  bench::report("sleep0_1m", "ns_per_op", bench::seconds_since(t0) * 1e9 / n);
}

// 2b. two tasks each doing 500 000 sleep(0): every sleep(0) really switches tasks.
Coro<> yielder(int n) {
  for (int i = 0; i < n; ++i)
    co_await kettle::sleep(0);
}
Coro<> switch_1m() {
  constexpr int n = 1'000'000;
  auto t0 = std::chrono::steady_clock::now();
  co_await kettle::gather(yielder(n / 2), yielder(n / 2));
  bench::report("switch_1m", "ns_per_op", bench::seconds_since(t0) * 1e9 / n);
}

Coro<> sleeper() {
  co_await kettle::sleep(50ms);
}

// 3. 100 000 concurrent sleep(50 ms): overhead per timer beyond the 50 ms, and memory.
Coro<> sleep_100k() {
  constexpr int n = 100'000;
  long rss0 = bench::rss_bytes();
  long peak = 0;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Coro<>> coros;
  coros.reserve(n);
  for (int i = 0; i < n; ++i)
    coros.push_back(sleeper());
  auto g = kettle::gather(coros);
  co_await kettle::sleep(25ms);  // every sleeper is asleep now
  peak = bench::rss_bytes();
  co_await g;
  double s = bench::seconds_since(t0);
  bench::report("sleep_100k", "ns_overhead_per_timer", (s - 0.050) * 1e9 / n);
  bench::report("sleep_100k", "bytes_per_task", double(peak - rss0) / n);
}

Coro<> long_sleeper() {
  co_await kettle::sleep(3600s);
}

// 4. cancel 100 000 sleeping tasks and wait for them all to finish.
Coro<> cancel_100k() {
  constexpr int n = 100'000;
  std::vector<kettle::Task<>> tasks;
  tasks.reserve(n);
  for (int i = 0; i < n; ++i)
    tasks.push_back(kettle::create_task(long_sleeper()));
  co_await kettle::sleep(0);  // every task is asleep now
  auto t0 = std::chrono::steady_clock::now();
  for (auto& t : tasks)
    t.cancel();
  co_await kettle::gather(kettle::return_exceptions, tasks);
  bench::report("cancel_100k", "ns_per_task", bench::seconds_since(t0) * 1e9 / n);
}

// 4b. What cancelling costs against one bare C++ throw + catch, in the same process: a task
// cancelled while asleep in its own body, and one asleep four Coro levels down (each level
// adds one rethrow, and nothing more).
[[gnu::noinline]] void throw_cancelled(int i) {
  throw kettle::CancelledError(i < 0 ? "never" : "");
}

Coro<> sleep_at_depth(int depth) {
  if (depth > 1)
    co_await sleep_at_depth(depth - 1);
  else
    co_await kettle::sleep(3600s);
}

Coro<double> cancel_ns(int depth) {
  constexpr int n = 20'000;
  std::vector<kettle::Task<>> tasks;
  tasks.reserve(n);
  for (int i = 0; i < n; ++i)
    tasks.push_back(kettle::create_task(sleep_at_depth(depth)));
  co_await kettle::sleep(0);  // every task is asleep now
  auto t0 = std::chrono::steady_clock::now();
  for (auto& t : tasks)
    t.cancel();
  co_await kettle::gather(kettle::return_exceptions, tasks);
  double s = bench::seconds_since(t0);
  for (auto& t : tasks)
    if (!t.cancelled()) std::abort();
  co_return s * 1e9 / n;
}

Coro<> cancel_cost() {
  constexpr int n = 20'000;
  std::vector<double> thrown, depth1, depth4;
  for (int round = 0; round < bench::kRounds; ++round) {
    int caught = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      try {
        throw_cancelled(i);
      } catch (const kettle::CancelledError&) {
        ++caught;
      }
    }
    thrown.push_back(bench::seconds_since(t0) * 1e9 / n);
    if (caught != n) std::abort();
    depth1.push_back(co_await cancel_ns(1));
    depth4.push_back(co_await cancel_ns(4));
  }
  double d1 = bench::median(depth1), d4 = bench::median(depth4);
  bench::report("cancel_cost", "ns_throw_catch", bench::median(thrown));
  bench::report("cancel_cost", "ns_cancel", d1);
  bench::report("cancel_cost", "ns_cancel_per_level", (d4 - d1) / 3);
}

// Memory per concept: RSS per pending Task (waiting on an Event), per task waiting in
// Queue.get(), per pending ThreadPoolExecutor future (its worker busy). Sleeping tasks: see
// sleep_100k. One concept per process, so that each starts from fresh memory.
Coro<> mem_task() {
  constexpr int n = 100'000;
  kettle::Event ev;
  auto waiter = [](kettle::Event& e) -> Coro<> { co_await e.wait(); };
  long rss0 = bench::rss_bytes();
  std::vector<kettle::Task<>> tasks;
  tasks.reserve(n);
  for (int i = 0; i < n; ++i)
    tasks.push_back(kettle::create_task(waiter(ev)));
  co_await kettle::sleep(0);  // every task waits now
  bench::report("mem_task", "bytes_per_task", double(bench::rss_bytes() - rss0) / n);
  ev.set();
  co_await kettle::gather(tasks);
}

Coro<> mem_getter() {
  constexpr int n = 100'000;
  kettle::Queue<int> q;
  auto getter = [](kettle::Queue<int>& q) -> Coro<int> { co_return co_await q.get(); };
  long rss0 = bench::rss_bytes();
  std::vector<kettle::Task<int>> tasks;
  tasks.reserve(n);
  for (int i = 0; i < n; ++i)
    tasks.push_back(kettle::create_task(getter(q)));
  co_await kettle::sleep(0);
  bench::report("mem_getter", "bytes_per_getter", double(bench::rss_bytes() - rss0) / n);
  for (int i = 0; i < n; ++i)
    q.put_nowait(i);
  co_await kettle::gather(tasks);
}

Coro<> mem_future() {
  constexpr int n = 100'000;
  kettle::ThreadPoolExecutor pool(1);
  std::atomic<bool> go{false};
  auto blocker = [](std::atomic<bool>* go) {
    while (!go->load())
      std::this_thread::sleep_for(1ms);
    return 0;
  };
  std::vector<kettle::Future<int>> fs;
  fs.reserve(n + 1);
  fs.push_back(pool.submit(blocker, &go));
  long rss0 = bench::rss_bytes();
  for (int i = 0; i < n; ++i)
    fs.push_back(pool.submit(trivial, i));
  bench::report("mem_future", "bytes_per_future", double(bench::rss_bytes() - rss0) / n);
  go = true;
  co_await kettle::gather(fs);
}

Coro<int> ready_value(int i) {
  co_return i;
}

// 5. wait_for around a coroutine that completes at once, against a plain await of it.
Coro<> wait_for_ready() {
  constexpr int n = 1'000'000;
  long sum = 0;
  std::vector<double> plain, timed;
  for (int round = 0; round < bench::kRounds; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i)
      sum += co_await ready_value(i);
    plain.push_back(bench::seconds_since(t0));
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i)
      sum += co_await kettle::wait_for(ready_value(i), 1s);
    timed.push_back(bench::seconds_since(t0));
  }
  if (sum == 42) std::puts("");
  bench::report("wait_for_ready", "ns_plain_await", bench::median(plain) * 1e9 / n);
  bench::report("wait_for_ready", "ns_wait_for", bench::median(timed) * 1e9 / n);
}

// 6. 1 000 000 items through a bounded queue (maxsize 1000) between two tasks.
Coro<> producer(kettle::Queue<int>& q, int n) {
  for (int i = 0; i < n; ++i)
    co_await q.put(i);
}
Coro<long> consumer(kettle::Queue<int>& q, int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i)
    sum += co_await q.get();
  co_return sum;
}
Coro<> queue_1m() {
  constexpr int n = 1'000'000;
  kettle::Queue<int> q(1000);
  auto t0 = std::chrono::steady_clock::now();
  auto [done, sum] = co_await kettle::gather(producer(q, n), consumer(q, n));
  double s = bench::seconds_since(t0);
  if (sum != long(n) * (n - 1) / 2) std::abort();
  bench::report("queue_1m", "ns_per_item", s * 1e9 / n);
}

// 7. two tasks taking a lock in turns: each holds it across a yield, so every acquire
// waits for the other task's release (a hand-off).
Coro<> lock_user(kettle::Lock& lock, int n) {
  for (int i = 0; i < n; ++i) {
    co_await lock.acquire();
    co_await kettle::sleep(0);
    lock.release();
  }
}
Coro<> lock_handoff() {
  constexpr int n = 200'000;
  kettle::Lock lock;
  auto t0 = std::chrono::steady_clock::now();
  co_await kettle::gather(lock_user(lock, n), lock_user(lock, n));
  bench::report("lock_handoff", "ns_per_acquire", bench::seconds_since(t0) * 1e9 / (2 * n));
}

// 8. Event ping-pong: two tasks wake each other through two events.
Coro<> pinger(kettle::Event& mine, kettle::Event& theirs, int n) {
  for (int i = 0; i < n; ++i) {
    co_await mine.wait();
    mine.clear();
    theirs.set();
  }
}
Coro<> event_pingpong() {
  constexpr int n = 200'000;
  kettle::Event a, b;
  a.set();
  auto t0 = std::chrono::steady_clock::now();
  co_await kettle::gather(pinger(a, b, n), pinger(b, a, n));
  bench::report("event_pingpong", "ns_per_round_trip", bench::seconds_since(t0) * 1e9 / n);
}

int trivial(int i) {
  return i;
}

// 9. 20 000 trivial to_thread calls, gathered.
Coro<> to_thread_20k() {
  constexpr int n = 20'000;
  std::vector<double> times;
  for (int round = 0; round < bench::kRounds + 1; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<kettle::Future<int>> fs;
    fs.reserve(n);
    for (int i = 0; i < n; ++i)
      fs.push_back(kettle::to_thread(trivial, i));
    std::vector<int> r = co_await kettle::gather(fs);
    if (r[n - 1] != n - 1) std::abort();
    if (round > 0) times.push_back(bench::seconds_since(t0));
  }
  bench::report("to_thread_20k", "ns_per_call", bench::median(times) * 1e9 / n);
}

// 10. one to_thread round trip at a time: loop -> worker thread -> loop.
Coro<> to_thread_latency() {
  constexpr int n = 10'000;
  std::vector<double> us;
  us.reserve(n);
  co_await kettle::to_thread(trivial, 0);  // start a worker
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    co_await kettle::to_thread(trivial, i);
    us.push_back(bench::seconds_since(t0) * 1e6);
  }
  std::sort(us.begin(), us.end());
  bench::report("to_thread_latency", "us_p50", us[n / 2]);
  bench::report("to_thread_latency", "us_p99", us[n * 99 / 100]);
}

// 11. submit() throughput from a plain thread (no loop): submit 100 000, wait for all.
Coro<> submit_100k() {
  constexpr int n = 100'000;
  std::thread t([] {
    kettle::ThreadPoolExecutor pool;
    std::vector<kettle::Future<int>> fs;
    fs.reserve(n);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i)
      fs.push_back(pool.submit(trivial, i));
    for (auto& f : fs)
      (void)f.result();
    bench::report("submit_100k", "ns_per_submit", bench::seconds_since(t0) * 1e9 / n);
  });
  t.join();
  co_return;
}

// 12. 20 000 trivial ProcessPoolExecutor submits from a task, each awaited (gathered).
Coro<> proc_submit_20k() {
  constexpr int n = 20'000;
  kettle::ProcessPoolExecutor pool;
  co_await pool.map(trivial, std::vector<int>(pool.max_workers() * 4, 1));  // start the workers
  std::vector<double> times;
  for (int round = 0; round < 3; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<kettle::Future<int>> fs;
    fs.reserve(n);
    for (int i = 0; i < n; ++i)
      fs.push_back(pool.submit(trivial, i));
    std::vector<int> r = co_await kettle::gather(fs);
    if (r[n - 1] != n - 1) std::abort();
    times.push_back(bench::seconds_since(t0));
  }
  bench::report("proc_submit_20k", "ns_per_task", bench::median(times) * 1e9 / n);
}

// 13. map over 1M items with chunksize 256: ProcessPoolExecutor.map and Pool.map.
Coro<> proc_map_1m() {
  constexpr int n = 1'000'000;
  std::vector<int> items(n);
  for (int i = 0; i < n; ++i)
    items[static_cast<std::size_t>(i)] = i;
  kettle::ProcessPoolExecutor pool;
  co_await pool.map(trivial, std::vector<int>(pool.max_workers() * 4, 1));
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int> r = co_await pool.map(trivial, items, 256);
  if (r[n - 1] != n - 1) std::abort();
  bench::report("proc_map_1m", "ns_per_item", bench::seconds_since(t0) * 1e9 / n);
  kettle::Pool mp;
  co_await mp.map_async(trivial, std::vector<int>(mp.processes() * 4, 1));
  t0 = std::chrono::steady_clock::now();
  r = co_await mp.map_async(trivial, items, 256);
  if (r[n - 1] != n - 1) std::abort();
  bench::report("proc_map_1m", "ns_per_item_pool", bench::seconds_since(t0) * 1e9 / n);
}

// 14. A new ProcessPoolExecutor and its first result, in a fresh process: forkserver (the
// default), then fork (this process is single-threaded again once that pool is gone).
Coro<> proc_startup() {
  auto t0 = std::chrono::steady_clock::now();
  {
    kettle::ProcessPoolExecutor pool;
    if (co_await pool.submit(trivial, 1) != 1) std::abort();
    bench::report("proc_startup", "ms_first_result", bench::seconds_since(t0) * 1e3);
  }
  t0 = std::chrono::steady_clock::now();
  {
    kettle::ProcessPoolExecutor pool(
        kettle::ProcessPoolOptions{.start_method = kettle::StartMethod::fork});
    if (co_await pool.submit(trivial, 1) != 1) std::abort();
    bench::report("proc_startup", "ms_first_result_fork", bench::seconds_since(t0) * 1e3);
  }
}

// 15. A CPU-bound function on every core at once against the same calls one after another
// on one worker: speed-up per core (1.0 is perfect).
std::int64_t spin(std::int64_t n) {
  std::int64_t s = 0;
  for (std::int64_t i = 0; i < n; ++i)
    s += (i * i) ^ (s >> 3);
  return s;
}

Coro<> proc_cpu() {
  constexpr std::int64_t n = 400'000'000;
  const std::size_t cores = kettle::cpu_count();
  kettle::ProcessPoolExecutor one(kettle::ProcessPoolOptions{.max_workers = 1});
  co_await one.submit(spin, 1);
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < cores; ++i)
    co_await one.submit(spin, n);
  double sequential = bench::seconds_since(t0);
  kettle::ProcessPoolExecutor all;
  co_await all.map(spin, std::vector<std::int64_t>(cores * 2, 1));
  t0 = std::chrono::steady_clock::now();
  std::vector<kettle::Future<std::int64_t>> fs;
  for (std::size_t i = 0; i < cores; ++i)
    fs.push_back(all.submit(spin, n));
  co_await kettle::gather(fs);
  double parallel = bench::seconds_since(t0);
  bench::report("proc_cpu", "speedup_per_core", sequential / parallel / double(cores));
}

// Streams over loopback, client and server on this one loop.

// 64-byte ping-pong on one connection: round trips, with p50/p99 latency.
Coro<> echo_exact(kettle::StreamReader r, kettle::StreamWriter w) {
  try {
    for (;;) {
      std::string m = co_await r.readexactly(64);
      w.write(m);
    }
  } catch (const kettle::IncompleteReadError&) {
  }
  w.close();
}

Coro<> tcp_pingpong() {
  constexpr int n = 100'000;
  kettle::Server server = co_await kettle::start_server(echo_exact, "127.0.0.1", 0);
  auto [r, w] = co_await kettle::open_connection("127.0.0.1", server.sockets().at(0).port);
  std::string msg(64, 'p');
  std::vector<double> lat;
  lat.reserve(n);
  for (int i = 0; i < 1000; ++i) {  // warm-up
    w.write(msg);
    (void)co_await r.readexactly(64);
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    auto t = std::chrono::steady_clock::now();
    w.write(msg);
    (void)co_await r.readexactly(64);
    lat.push_back(bench::seconds_since(t));
  }
  double total = bench::seconds_since(t0);
  std::sort(lat.begin(), lat.end());
  bench::report("tcp_pingpong", "ns_per_round_trip", total * 1e9 / n);
  bench::report("tcp_pingpong", "us_p50", lat[n / 2] * 1e6);
  bench::report("tcp_pingpong", "us_p99", lat[n * 99 / 100] * 1e6);
  w.close();
}

// 100 connections ping-pong at once: CPU time of the process per message.
Coro<> tcp_pingpong_100() {
  constexpr int conns = 100, rounds = 2000;
  kettle::Server server = co_await kettle::start_server(echo_exact, "127.0.0.1", 0);
  std::uint16_t port = server.sockets().at(0).port;
  auto one = [port]() -> Coro<> {
    auto [r, w] = co_await kettle::open_connection("127.0.0.1", port);
    std::string msg(64, 'p');
    for (int i = 0; i < rounds; ++i) {
      w.write(msg);
      (void)co_await r.readexactly(64);
    }
    w.close();
  };
  std::vector<Coro<>> all;
  for (int i = 0; i < conns; ++i)
    all.push_back(one());
  double cpu0 = bench::cpu_seconds();
  co_await kettle::gather(all);
  bench::report("tcp_pingpong_100", "ns_cpu_per_msg",
                (bench::cpu_seconds() - cpu0) * 1e9 / (conns * rounds));
}

// 256 MiB through one connection, 64 KiB writes with drain(), read(64 KiB) on the other end.
Coro<> sink(kettle::StreamReader r, kettle::StreamWriter w) {
  std::size_t got = 0;
  for (;;) {
    std::string b = co_await r.read(65536);
    if (b.empty()) break;
    got += b.size();
  }
  w.write(std::to_string(got));
  w.close();
}

Coro<> tcp_bulk() {
  constexpr std::size_t total = 256u << 20;
  kettle::Server server = co_await kettle::start_server(sink, "127.0.0.1", 0);
  auto [r, w] = co_await kettle::open_connection("127.0.0.1", server.sockets().at(0).port);
  std::string block(65536, 'b');
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t sent = 0; sent < total; sent += block.size()) {
    w.write(block);
    co_await w.drain();
  }
  w.write_eof();
  std::string got = co_await r.read();
  if (got != std::to_string(total)) std::abort();
  bench::report("tcp_bulk", "ms_per_gib",
                bench::seconds_since(t0) * 1e3 * double(1u << 30) / total);
  w.close();
}

// 1000 x spawn /bin/true and wait for it.
Coro<> spawn_1k() {
  constexpr int n = 1000;
  for (int i = 0; i < 20; ++i)  // warm-up
    co_await (co_await kettle::create_subprocess_exec("/bin/true")).wait();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    auto p = co_await kettle::create_subprocess_exec("/bin/true");
    if (co_await p.wait() != 0) std::abort();
  }
  bench::report("spawn_1k", "us_per_spawn", bench::seconds_since(t0) * 1e6 / n);
}

// 100 MiB through cat with communicate().
Coro<> communicate_100m() {
  constexpr std::size_t total = 100u << 20;
  std::string data(total, 'c');
  auto p = co_await kettle::create_subprocess_exec(
      "cat", kettle::subprocess::Options{.stdin_ = kettle::subprocess::PIPE,
                                         .stdout_ = kettle::subprocess::PIPE});
  auto t0 = std::chrono::steady_clock::now();
  auto [out, err] = co_await p.communicate(std::move(data));
  if (out.size() != total) std::abort();
  bench::report("communicate_100m", "ms_per_gib",
                bench::seconds_since(t0) * 1e3 * double(1u << 30) / total);
}

// 1 000 000 short lines from a socket, read with readline().
Coro<> liner(kettle::StreamReader r, kettle::StreamWriter w) {
  std::string chunk;
  for (int i = 0; i < 1000; ++i)
    chunk += "line " + std::to_string(i % 10) + " of the test\n";
  for (int i = 0; i < 1000; ++i) {
    w.write(chunk);
    co_await w.drain();
  }
  w.close();
}

Coro<> readline_1m() {
  kettle::Server server = co_await kettle::start_server(liner, "127.0.0.1", 0);
  auto [r, w] = co_await kettle::open_connection("127.0.0.1", server.sockets().at(0).port);
  auto t0 = std::chrono::steady_clock::now();
  int n = 0;
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    ++n;
  }
  if (n != 1'000'000) std::abort();
  bench::report("readline_1m", "ns_per_line", bench::seconds_since(t0) * 1e9 / n);
  w.close();
}

// TLS echo: the 64-byte ping-pong over TLS 1.3 (a certificate made with openssl req).
Coro<> tls_pingpong() {
  constexpr int n = 50'000;
  std::string dir = "/tmp/kettle-bench-tls-" + std::to_string(::getpid());
  std::string cmd = "mkdir -p " + dir + " && cd " + dir +
                    " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                    "-nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) std::abort();
  kettle::ssl::SSLContext server_ctx(kettle::ssl::PROTOCOL_TLS_SERVER);
  server_ctx.load_cert_chain(dir + "/cert.pem", dir + "/key.pem");
  auto client_ctx =
      kettle::ssl::create_default_context(kettle::ssl::Purpose::SERVER_AUTH, dir + "/cert.pem");
  kettle::Server server =
      co_await kettle::start_server(echo_exact, "127.0.0.1", 0, {.ssl = &server_ctx});
  auto [r, w] =
      co_await kettle::open_connection("127.0.0.1", server.sockets().at(0).port,
                                       {.ssl = &client_ctx, .server_hostname = "localhost"});
  std::string msg(64, 'p');
  for (int i = 0; i < 1000; ++i) {
    w.write(msg);
    (void)co_await r.readexactly(64);
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    w.write(msg);
    (void)co_await r.readexactly(64);
  }
  bench::report("tls_pingpong", "ns_per_round_trip", bench::seconds_since(t0) * 1e9 / n);
  w.close();
  std::system(("rm -rf " + dir).c_str());
}

// 10 000 idle connections: RSS per connection (both ends are in this process: per pair).
Coro<> idle_10k() {
  constexpr int n = 5000;  // pairs: 10 000 sockets within the usual descriptor limits
  kettle::Event done;
  kettle::ClientConnected idle = [&](kettle::StreamReader r, kettle::StreamWriter w) -> Coro<> {
    co_await done.wait();
    w.close();
  };
  kettle::Server server = co_await kettle::start_server(idle, "127.0.0.1", 0, {.backlog = 1024});
  std::uint16_t port = server.sockets().at(0).port;
  std::vector<std::pair<kettle::StreamReader, kettle::StreamWriter>> conns;
  conns.reserve(n);
  long rss0 = bench::rss_bytes();
  for (int i = 0; i < n; ++i)
    conns.push_back(co_await kettle::open_connection("127.0.0.1", port));
  for (int i = 0; i < 10; ++i)
    co_await kettle::sleep(0.01);
  bench::report("idle_10k", "bytes_per_connection", double(bench::rss_bytes() - rss0) / n);
  done.set();
  for (auto& c : conns)
    c.second.close();
}

Coro<> nothing() {
  co_return;
}

// A program that runs small kettle::run calls one after another: what a loop's start and
// finish cost (no thread pool is made unless used).
void run_startup() {
  constexpr int n = 2000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    kettle::run(nothing());
  bench::report("run_startup", "us_per_run", bench::seconds_since(t0) * 1e6 / n);
}

}  // namespace

int main(int argc, char** argv) {
  using Workload = Coro<> (*)();
  const std::pair<const char*, Workload> workloads[] = {
      {"gather_100k", gather_100k},
      {"sleep0_1m", sleep0_1m},
      {"switch_1m", switch_1m},
      {"sleep_100k", sleep_100k},
      {"cancel_100k", cancel_100k},
      {"cancel_cost", cancel_cost},
      {"run_startup", nullptr},
      {"mem_task", mem_task},
      {"mem_getter", mem_getter},
      {"mem_future", mem_future},
      {"wait_for_ready", wait_for_ready},
      {"queue_1m", queue_1m},
      {"lock_handoff", lock_handoff},
      {"event_pingpong", event_pingpong},
      {"to_thread_20k", to_thread_20k},
      {"to_thread_latency", to_thread_latency},
      {"submit_100k", submit_100k},
      {"proc_submit_20k", proc_submit_20k},
      {"proc_map_1m", proc_map_1m},
      {"proc_startup", proc_startup},
      {"proc_cpu", proc_cpu},
      {"tcp_pingpong", tcp_pingpong},
      {"tcp_pingpong_100", tcp_pingpong_100},
      {"tcp_bulk", tcp_bulk},
      {"spawn_1k", spawn_1k},
      {"communicate_100m", communicate_100m},
      {"readline_1m", readline_1m},
      {"idle_10k", idle_10k},
      {"tls_pingpong", tls_pingpong},
  };
  return bench::main(argc, argv, workloads, [](Workload w) {
    if (w)
      kettle::run(w());
    else
      run_startup();
  });
}
