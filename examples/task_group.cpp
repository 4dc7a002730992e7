// Structured concurrency: three fetches in a TaskGroup, one of which fails. The failure
// cancels the other two, the group waits for them, then raises an ExceptionGroup.
//
//   async with asyncio.TaskGroup() as tg:
//       tg.create_task(fetch("users", 0.3))
//       tg.create_task(fetch("orders", 0.3))
//       tg.create_task(fetch("inventory", 0.1, fail=True))
#include <iostream>
#include <stdexcept>
#include <string>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;

struct ConnectionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Coro<std::string> fetch(std::string name, std::chrono::milliseconds takes, bool fail = false) {
  std::cout << "start " << name << std::endl;
  try {
    co_await kettle::sleep(takes);
  } catch (const kettle::CancelledError&) {
    std::cout << name << " cancelled" << std::endl;
    throw;
  }
  if (fail) {
    std::cout << name << " failed" << std::endl;
    throw ConnectionError(name + ": connection reset");
  }
  std::cout << name << " done" << std::endl;
  co_return name;
}

Coro<> fetch_all(kettle::TaskGroup& tg) {
  tg.create_task(fetch("users", 300ms));
  tg.create_task(fetch("orders", 300ms));
  tg.create_task(fetch("inventory", 100ms, true));
  co_return;
}

Coro<> amain() {
  try {
    co_await kettle::task_group(fetch_all);
    std::cout << "all fetched" << std::endl;
  } catch (const kettle::ExceptionGroup& eg) {
    std::cout << "ExceptionGroup: " << eg.what() << std::endl;
    for (const auto& e : eg.exceptions())
      std::cout << "  - " << kettle::describe(e) << std::endl;
  }
}

int main() {
  kettle::run(amain());
}
