// The seed's threading example, rewritten with coroutines on one event loop:
//
//   def take_orders():                       def brew_tea():
//       for i in range(1, 4):                    for i in range(1, 4):
//           print(f"Taking order {i}")               print(f"Brewing tea {i}")
//           time.sleep(2)                            time.sleep(3)
//
// Two threads become two coroutines; time.sleep becomes co_await kettle::sleep, which
// lets the other coroutine run while this one waits. (examples/tea_threads.cpp keeps the
// blocking functions and runs them on threads with kettle::to_thread.)
#include <iostream>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;

kettle::Coro<> take_orders() {
  for (int i = 1; i <= 3; ++i) {
    std::cout << "Taking order " << i << std::endl;
    co_await kettle::sleep(2s);
  }
}

kettle::Coro<> brew_tea() {
  for (int i = 1; i <= 3; ++i) {
    std::cout << "Brewing tea " << i << std::endl;
    co_await kettle::sleep(3s);
  }
}

kettle::Coro<> amain() {
  co_await kettle::gather(take_orders(), brew_tea());
  std::cout << "All orders taken and tea brewed" << std::endl;
}

int main() {
  kettle::run(amain());
}
