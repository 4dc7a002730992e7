// The seed's asyncio example:
//
//   async def fetch_data(task_id):
//       print(f"Fetching data for task {task_id}...")
//       await asyncio.sleep(2)
//       print(f"Data fetched for task {task_id}.")
//
//   async def main():
//       tasks = [fetch_data(i) for i in range(3)]
//       await asyncio.gather(*tasks)
//
//   asyncio.run(main())
//
// The three fetches wait concurrently on one thread: the program takes about 2 s, not 6.
#include <iostream>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;

kettle::Coro<> fetch_data(int task_id) {
  std::cout << "Fetching data for task " << task_id << "..." << std::endl;
  co_await kettle::sleep(2s);
  std::cout << "Data fetched for task " << task_id << "." << std::endl;
}

kettle::Coro<> amain() {
  std::vector<kettle::Coro<>> tasks;
  for (int i = 0; i < 3; ++i)
    tasks.push_back(fetch_data(i));
  co_await kettle::gather(tasks);
}

int main() {
  kettle::run(amain());
}
