// The seed's CPU-bound multiprocessing example: one process per CPU, each squaring numbers,
// timed against running the same work one after another in this process:
//
//   def square_numbers():
//       for i in range(1_000_000):
//           i * i
//
//   if __name__ == "__main__":
//       processes = []
//       for _ in range(multiprocessing.cpu_count()):
//           p = multiprocessing.Process(target=square_numbers)
//           processes.append(p)
//           p.start()
//       for p in processes:
//           p.join()
//       print("Completed multiprocessing example.")
//
// A million squares take about a millisecond in C++, so each process squares a billion
// here to make the parallel speed-up visible.
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <memory>
#include <vector>

#include <kettle/kettle.hpp>

void square_numbers() {
  for (std::uint64_t i = 0; i < 1'000'000'000; ++i) {
    std::uint64_t square = i * i;
    asm volatile("" : : "r"(square));  // so that the compiler keeps the work
  }
}

int main() {
  using Clock = std::chrono::steady_clock;
  std::size_t cpus = kettle::cpu_count();

  auto t0 = Clock::now();
  for (std::size_t i = 0; i < cpus; ++i)
    square_numbers();
  double sequential = std::chrono::duration<double>(Clock::now() - t0).count();

  t0 = Clock::now();
  std::vector<std::unique_ptr<kettle::Process>> processes;
  for (std::size_t i = 0; i < cpus; ++i) {
    processes.push_back(std::make_unique<kettle::Process>(square_numbers));
    processes.back()->start();
  }
  for (auto& p : processes)
    p->join();
  double parallel = std::chrono::duration<double>(Clock::now() - t0).count();

  std::cout << "Completed multiprocessing example." << std::endl;
  std::cout << std::fixed << std::setprecision(2) << cpus << " processes: " << parallel
            << " s; one after another: " << sequential << " s; speed-up " << sequential / parallel
            << "x" << std::endl;
}
