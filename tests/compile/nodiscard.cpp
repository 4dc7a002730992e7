// Compiled by tests/compile/CheckDiagnostics.cmake, not linked: every line marked
// "expect: nodiscard" must draw a warning that a kettle awaitable was dropped without being
// awaited, and no other line may draw one.
#include <kettle/kettle.hpp>

using namespace std::chrono_literals;

namespace {
kettle::Coro<int> c() {
  co_return 1;
}
int f(int x) {
  return x;
}

kettle::Coro<> body() {
  kettle::Event ev;
  kettle::Lock lock;
  kettle::Semaphore sem;
  kettle::Condition cond;
  kettle::Queue<int> q;
  kettle::Task<int> t = kettle::create_task(c());
  std::vector<kettle::Task<int>> ts{t};
  kettle::sleep(1s);               // expect: nodiscard
  kettle::sleep(0.5);              // expect: nodiscard
  kettle::gather(c(), c());        // expect: nodiscard
  kettle::to_thread(f, 1);         // expect: nodiscard
  kettle::wait_for(c(), 1s);       // expect: nodiscard
  kettle::timeout(1s, c());        // expect: nodiscard
  kettle::shield(t);               // expect: nodiscard
  kettle::wait(ts);                // expect: nodiscard
  kettle::as_completed(ts);        // expect: nodiscard
  ev.wait();                       // expect: nodiscard
  lock.acquire();                  // expect: nodiscard
  lock.scoped();                   // expect: nodiscard
  sem.acquire();                   // expect: nodiscard
  cond.wait();                     // expect: nodiscard
  q.get();                         // expect: nodiscard
  q.put(1);                        // expect: nodiscard
  q.join();                        // expect: nodiscard
  c();                             // expect: nodiscard
  (void)kettle::create_task(c());  // a task runs without being awaited: no warning
  co_await kettle::sleep(0);
}
}  // namespace

int main() {
  kettle::run(body());
}
