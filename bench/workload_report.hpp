// What every workload program prints, one line per figure, read by bench/compare:
//   <workload> <metric> <value>
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
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

}  // namespace bench
