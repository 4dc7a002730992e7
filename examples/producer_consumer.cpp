// Producers and consumers over a bounded queue: put() waits while the queue is full,
// task_done()/join() tell when every item has been processed, and shutdown() stops the
// consumers cleanly.
//
//   queue = asyncio.Queue(maxsize=4)
//   ... await queue.join(); queue.shutdown()
#include <iostream>
#include <string>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;

Coro<int> producer(kettle::Queue<std::string>& q, int id, int n) {
  for (int i = 0; i < n; ++i)
    co_await q.put("order " + std::to_string(id) + "." + std::to_string(i));
  co_return n;
}

Coro<int> consumer(kettle::Queue<std::string>& q, int id) {
  int processed = 0;
  try {
    for (;;) {
      std::string order = co_await q.get();
      co_await kettle::sleep(5ms);  // process it
      ++processed;
      q.task_done();
    }
  } catch (const kettle::QueueShutDown&) {
    // shutdown(): nothing more will come; stop cleanly.
  }
  co_return processed;
}

Coro<> amain() {
  kettle::Queue<std::string> q(4);
  std::vector<kettle::Task<int>> consumers;
  for (int id = 1; id <= 2; ++id)
    consumers.push_back(kettle::create_task(consumer(q, id)));

  auto [a, b, c] = co_await kettle::gather(producer(q, 1, 5), producer(q, 2, 5), producer(q, 3, 5));
  std::cout << "producers put " << a + b + c << " orders (the queue holds at most " << q.maxsize()
            << ")" << std::endl;
  co_await q.join();  // every order put has been processed
  std::cout << "all orders processed; shutting the queue down" << std::endl;
  q.shutdown();

  std::vector<int> counts = co_await kettle::gather(consumers);
  std::cout << "consumers stopped after processing " << counts[0] + counts[1] << " orders"
            << std::endl;
}

int main() {
  kettle::run(amain());
}
