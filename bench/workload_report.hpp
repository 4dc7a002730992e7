// What every workload program prints, one line per figure, read by bench/compare:
//   <workload> <metric> <value>
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace bench {

// Workloads that are quick repeat this many times (after a warm-up) and report the median.
inline constexpr int kRounds = 5;

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline void report(const char* workload, const char* metric, double value) {
  std::printf("%s %s %.3f\n", workload, metric, value);
  std::fflush(stdout);
}

// CPU time (user + system) of this process so far, in seconds.
inline double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Resident set size in bytes, from /proc/self/status.
inline long rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string key;
  while (f >> key) {
    if (key == "VmRSS:") {
      long kb = 0;
      f >> kb;
      return kb * 1024;
    }
    std::getline(f, key);
  }
  return 0;
}

// Runs the workloads named on the command line (all by default). Exit status 3 for a
// workload this program does not have, so that bench/compare can tell it apart.
template <class Table, class Run>
int main(int argc, char** argv, const Table& table, Run run) {
  std::vector<std::string> names(argv + 1, argv + argc);
  if (names.empty())
    for (const auto& [name, fn] : table)
      names.emplace_back(name);
  for (const std::string& n : names) {
    bool found = false;
    for (const auto& [name, fn] : table)
      if (n == name) {
        run(fn);
        found = true;
      }
    if (!found) {
      std::fprintf(stderr, "no workload named %s here\n", n.c_str());
      return 3;
    }
  }
  return 0;
}

}  // namespace bench
