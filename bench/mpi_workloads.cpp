// MPIPoolExecutor workloads for bench/compare_mpi, under `mpiexec -n 4`: rank 0 runs main,
// ranks 1-3 are the workers. Prints one line per workload: "<name> <value> <unit>".
//   submit_20k: 20 000 trivial submits, then every result (µs per task)
//   map_1m:     map over 1 000 000 ints, chunksize 256 (seconds)
//   idle_cpu:   the root's CPU seconds per wall second while one 2 s task runs
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>
#include <kettle/mpi.hpp>

using Clock = std::chrono::steady_clock;

int identity(int x) {
  return x;
}
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int main(int argc, char** argv) {
  kettle::mpi::MPIPoolExecutor pool;
  pool.bootup();
  pool.submit(identity, 0).result();  // warm
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "submit_20k")) {
      auto t0 = Clock::now();
      std::vector<kettle::Future<int>> fs;
      fs.reserve(20000);
      for (int k = 0; k < 20000; ++k)
        fs.push_back(pool.submit(identity, k));
      for (auto& f : fs)
        f.result();
      std::printf("submit_20k %.3f us_per_task\n", since(t0) / 20000 * 1e6);
    } else if (!std::strcmp(argv[i], "map_1m")) {
      std::vector<int> in(1000000);
      for (int k = 0; k < 1000000; ++k)
        in[static_cast<std::size_t>(k)] = k;
      auto t0 = Clock::now();
      auto out = pool.map(identity, in, 256).get();
      std::printf("map_1m %.4f seconds\n", since(t0));
    } else if (!std::strcmp(argv[i], "idle_cpu")) {
      double c0 = cpu_seconds();
      auto t0 = Clock::now();
      pool.submit(sleep_ms, 2000).result();
      std::printf("idle_cpu %.4f cpu_per_wall\n", (cpu_seconds() - c0) / since(t0));
    }
  }
}
