// Timeouts, step by step: wait_for, a timeout scope, and a shielded write that survives
// its caller's timeout.
//
//   try:
//       users = await asyncio.wait_for(slow_fetch("users", 0.3), timeout=0.1)
//   except TimeoutError: ...
//   async with asyncio.timeout(0.15) as cm: ...
//   await asyncio.wait_for(asyncio.shield(write_task), timeout=0.05)
#include <iostream>
#include <string>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;

Coro<std::string> slow_fetch(std::string what, std::chrono::milliseconds takes) {
  std::cout << "  fetching " << what << " (takes " << takes.count() << " ms)" << std::endl;
  co_await kettle::sleep(takes);
  co_return "data for " + what;
}

Coro<std::string> fetch_both() {
  std::string a = co_await slow_fetch("orders", 100ms);
  std::cout << "  got " << a << std::endl;
  std::string b = co_await slow_fetch("invoices", 100ms);  // the scope expires in here
  co_return a + " and " + b;
}

Coro<> save_record(std::string name) {
  std::cout << "  write of " << name << " started" << std::endl;
  co_await kettle::sleep(200ms);
  std::cout << "  write of " << name << " committed" << std::endl;
}

Coro<> amain() {
  std::cout << "1. wait_for with a 100 ms timeout around a 300 ms fetch" << std::endl;
  try {
    std::string users = co_await kettle::wait_for(slow_fetch("users", 300ms), 100ms);
    std::cout << "  got " << users << std::endl;
  } catch (const kettle::TimeoutError&) {
    std::cout << "  TimeoutError: gave up on users (the fetch was cancelled)" << std::endl;
  }

  std::cout << "2. wait_for with a 200 ms timeout around a 50 ms fetch" << std::endl;
  std::string config = co_await kettle::wait_for(slow_fetch("config", 50ms), 200ms);
  std::cout << "  got " << config << std::endl;

  std::cout << "3. a 150 ms timeout scope around two 100 ms fetches" << std::endl;
  kettle::Timeout cm = kettle::timeout(150ms);
  try {
    std::string both = co_await cm.run(fetch_both());
    std::cout << "  got " << both << std::endl;
  } catch (const kettle::TimeoutError&) {
    std::cout << "  TimeoutError: the scope expired (expired() = " << std::boolalpha << cm.expired()
              << ")" << std::endl;
  }

  std::cout << "4. a shielded 200 ms write, awaited with a 50 ms timeout" << std::endl;
  kettle::Task<> write = kettle::create_task(save_record("invoice 42"));
  try {
    co_await kettle::wait_for(kettle::shield(write), 50ms);
  } catch (const kettle::TimeoutError&) {
    std::cout << "  TimeoutError: the caller stopped waiting; the write goes on" << std::endl;
  }
  co_await write;
  std::cout << "  the write was not cancelled: " << std::boolalpha << !write.cancelled()
            << std::endl;
}

int main() {
  kettle::run(amain());
}
