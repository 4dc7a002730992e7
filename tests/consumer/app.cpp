// A program that uses kettle the way a consumer does: a Coro, a Task, a ProcessPoolExecutor.
// It checks its own results and exits non-zero if anything is wrong.
#include <unistd.h>
#include <iostream>
#include <string>
#include <vector>

#include <kettle/kettle.hpp>

int square_in_worker(int n) {
  return n * n;
}
int worker_pid(int) {
  return static_cast<int>(::getpid());
}

kettle::Coro<int> add_later(int a, int b) {
  co_await kettle::sleep(0.01);
  co_return a + b;
}

kettle::Coro<int> amain() {
  kettle::Task<int> task = kettle::create_task(add_later(2, 3), "adder");
  kettle::ProcessPoolExecutor pool(kettle::ProcessPoolOptions{.max_workers = 2});
  int sum = 0;
  for (int n = 0; n < 10; ++n)
    sum += co_await pool.submit(square_in_worker, n);
  int pid = co_await pool.submit(worker_pid, 0);
  co_return co_await task + sum + (pid != ::getpid() ? 0 : 1000);
}

int main() {
  const std::string headers = std::to_string(KETTLE_VERSION_MAJOR) + "." +
                              std::to_string(KETTLE_VERSION_MINOR) + "." +
                              std::to_string(KETTLE_VERSION_PATCH);
  if (headers != kettle::version()) {
    std::cerr << "headers " << headers << " but library " << kettle::version() << "\n";
    return 1;
  }
  int result = kettle::run(amain());
  std::cout << "kettle " << kettle::version() << ": " << result << "\n";
  return result == 5 + 285 ? 0 : 1;  // 2 + 3, and the squares of 0..9 from other processes
}
