// The seed's lock example, with coroutines instead of threads:
//
//   counter = 0
//   lock = threading.Lock()
//   def increment():
//       global counter
//       for _ in range(10000):
//           with lock:
//               counter += 1
//
// Five workers add 1 to a shared counter 10 000 times each. Inside the critical section
// each one reads the counter, yields (sleep(0): another task may run), then writes it back.
// With the lock no update is lost; without it most are.
#include <iostream>

#include <kettle/kettle.hpp>

using kettle::Coro;

int counter = 0;

Coro<> increment(kettle::Lock& lock) {
  for (int i = 0; i < 10000; ++i) {
    auto held = co_await lock.scoped();  // with lock:
    int value = counter;
    co_await kettle::sleep(0);
    counter = value + 1;
  }
}

Coro<> increment_unlocked() {
  for (int i = 0; i < 10000; ++i) {
    int value = counter;
    co_await kettle::sleep(0);  // the other workers read the same value meanwhile
    counter = value + 1;
  }
}

Coro<> amain() {
  kettle::Lock lock;
  co_await kettle::gather(increment(lock), increment(lock), increment(lock), increment(lock),
                          increment(lock));
  std::cout << "Final counter value: " << counter << std::endl;

  counter = 0;
  co_await kettle::gather(increment_unlocked(), increment_unlocked(), increment_unlocked(),
                          increment_unlocked(), increment_unlocked());
  std::cout << "Without the lock: " << counter << " (" << 50000 - counter << " updates lost)"
            << std::endl;
}

int main() {
  kettle::run(amain());
}
