// kettle's flagship: I/O-bound and CPU-bound work in one program, on one loop.
//
// Eight datasets are "fetched" concurrently (coroutines waiting on I/O; here a sleep
// stands in for the network), and each is crunched (counting primes: pure CPU) in a
// ProcessPoolExecutor, one worker per core. The coroutine that fetched a dataset simply
// co_awaits its crunching, while a heartbeat task on the same loop ticks every 100 ms and
// records its longest gap: the loop never blocks, whatever the CPU work does.
//
// The Python equivalent would be asyncio + loop.run_in_executor(ProcessPoolExecutor(), ...).
// Ctrl-C stops it cleanly: it prints that it was interrupted and exits with status 130.
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int datasets = 8;

// The CPU-bound part, run in a worker process: primes in [lo, hi), and how long it took.
std::pair<std::int64_t, double> count_primes(std::int64_t lo, std::int64_t hi) {
  auto t0 = Clock::now();
  std::int64_t n = 0;
  for (std::int64_t k = std::max<std::int64_t>(lo, 2); k < hi; ++k) {
    bool prime = true;
    for (std::int64_t d = 2; d * d <= k; ++d)
      if (k % d == 0) {
        prime = false;
        break;
      }
    n += prime;
  }
  return {n, std::chrono::duration<double>(Clock::now() - t0).count()};
}

struct Report {
  std::int64_t primes = 0;
  double cpu_seconds = 0;
};

// The I/O-bound part: a download that takes a while (a sleep stands in for the network).
kettle::Coro<std::pair<std::int64_t, std::int64_t>> fetch(int id) {
  co_await kettle::sleep(100ms + 50ms * (id % 3));
  std::int64_t lo = 10'000'000 + id * 400'000;
  co_return std::pair{lo, lo + 400'000};
}

kettle::Coro<Report> fetch_and_crunch(kettle::ProcessPoolExecutor& pool, int id) {
  auto [lo, hi] = co_await fetch(id);
  auto [primes, seconds] = co_await pool.submit(count_primes, lo, hi);
  co_return Report{primes, seconds};
}

kettle::Coro<> heartbeat(bool& stop, double& longest_gap) {
  auto last = Clock::now();
  while (!stop) {
    co_await kettle::sleep(100ms);
    auto now = Clock::now();
    longest_gap = std::max(longest_gap, std::chrono::duration<double>(now - last).count());
    last = now;
  }
}

kettle::Coro<> amain() {
  kettle::ProcessPoolExecutor pool;  // forkserver workers, one per usable core
  bool stop = false;
  double longest_gap = 0;
  kettle::Task<> beat = kettle::create_task(heartbeat(stop, longest_gap));

  std::cout << "Fetching and crunching " << datasets << " datasets..." << std::endl;
  auto t0 = Clock::now();
  std::vector<kettle::Coro<Report>> jobs;
  for (int id = 0; id < datasets; ++id)
    jobs.push_back(fetch_and_crunch(pool, id));
  std::vector<Report> reports = co_await kettle::gather(jobs);
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  co_await beat;

  double cpu = 0;
  for (int id = 0; id < datasets; ++id) {
    std::cout << "dataset " << id << ": " << reports[id].primes << " primes" << std::endl;
    cpu += reports[id].cpu_seconds;
  }
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "Fetched and crunched " << datasets << " datasets in " << wall << " s using "
            << pool.max_workers() << " worker processes" << std::endl;
  std::cout << "Speed-up over crunching them one after another: " << cpu / wall << "x" << std::endl;
  std::cout << "Longest heartbeat gap: " << std::setprecision(0) << longest_gap * 1000
            << " ms (the loop never blocked)" << std::endl;
}

int main() {
  try {
    kettle::run(amain());
  } catch (const kettle::KeyboardInterrupt& k) {
    // Ctrl-C: the fetches were cancelled, the pool's workers terminated; as Python, exit
    // with 128 + the signal's number.
    std::cout << "Interrupted: nothing more was fetched or crunched" << std::endl;
    return 128 + k.signal();
  }
}
