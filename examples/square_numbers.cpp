// The seed's "multiprocessing example": one process per CPU, each squaring a million
// numbers:
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
#include <cstdint>
#include <iostream>
#include <memory>
#include <vector>

#include <kettle/kettle.hpp>

void square_numbers() {
  for (std::uint64_t i = 0; i < 1'000'000; ++i) {
    std::uint64_t square = i * i;
    asm volatile("" : : "r"(square));  // so that the compiler keeps the work
  }
}

int main() {
  std::vector<std::unique_ptr<kettle::Process>> processes;
  for (std::size_t i = 0; i < kettle::cpu_count(); ++i) {
    processes.push_back(std::make_unique<kettle::Process>(square_numbers));
    processes.back()->start();
  }
  for (auto& p : processes)
    p->join();
  std::cout << "Completed multiprocessing example." << std::endl;
}
