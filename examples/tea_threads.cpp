// The seed's threading example, kept as ordinary blocking functions and run on threads
// with kettle::to_thread from one coroutine:
//
//   order_thread = threading.Thread(target=take_orders)
//   brew_thread = threading.Thread(target=brew_tea)
//   ... start, join ...
//   print("All orders taken and tea brewed")
//
// (examples/tea_shop.cpp rewrites the two functions as coroutines instead.)
#include <chrono>
#include <cstdio>
#include <thread>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;

void say(const char* what, int i) {
  std::printf("%s %d\n", what, i);  // one call per line: the threads' lines never mix
  std::fflush(stdout);
}

void take_orders() {
  for (int i = 1; i <= 3; ++i) {
    say("Taking order", i);
    std::this_thread::sleep_for(2s);
  }
}

void brew_tea() {
  for (int i = 1; i <= 3; ++i) {
    say("Brewing tea", i);
    std::this_thread::sleep_for(3s);
  }
}

kettle::Coro<> amain() {
  co_await kettle::gather(kettle::to_thread(take_orders), kettle::to_thread(brew_tea));
  std::printf("All orders taken and tea brewed\n");
}

int main() {
  kettle::run(amain());
}
