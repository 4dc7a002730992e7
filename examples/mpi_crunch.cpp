// The flagship (fetch_and_crunch.cpp), its process pool swapped for an MPIPoolExecutor:
// the crunching runs on the other ranks of mpiexec, which may be other machines.
//
//   mpiexec -n 4 ./mpi_crunch        (rank 0 runs main; ranks 1-3 crunch)
//
// As `mpiexec -n 4 python -m mpi4py.futures crunch.py` with an MPIPoolExecutor in it. The
// fetches are coroutines on rank 0's loop; each co_awaits its crunching on a worker rank,
// while a heartbeat on the same loop ticks every 100 ms and records its longest gap.
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <kettle/kettle.hpp>
#include <kettle/mpi.hpp>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int datasets = 8;

// The CPU-bound part, run on a worker rank: primes in [lo, hi), and how long it took.
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

kettle::Coro<Report> fetch_and_crunch(kettle::mpi::MPIPoolExecutor& pool, int id) {
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
  kettle::mpi::MPIPoolExecutor pool;  // the other ranks of mpiexec
  bool stop = false;
  double longest_gap = 0;
  kettle::Task<> beat = kettle::create_task(heartbeat(stop, longest_gap));

  std::cout << "Fetching and crunching " << datasets << " datasets on " << pool.num_workers()
            << " MPI ranks..." << std::endl;
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
            << pool.num_workers() << " worker ranks" << std::endl;
  std::cout << "Speed-up over crunching them one after another: " << cpu / wall << "x" << std::endl;
  std::cout << "Longest heartbeat gap: " << std::setprecision(0) << longest_gap * 1000
            << " ms (the loop never blocked)" << std::endl;
}

int main() {
  try {
    kettle::run(amain());
  } catch (const kettle::RuntimeError& e) {  // not started by mpiexec: no worker rank
    std::cerr << e.what() << std::endl;
    return 1;
  }
}
