// kettle inside a shared library: needs a position-independent libkettle.
#include <kettle/kettle.hpp>

static kettle::Coro<int> twice(int x) {
  co_await kettle::sleep(0);
  co_return 2 * x;
}

static kettle::Coro<int> plugin_main() {
  auto [a, b] = co_await kettle::gather(twice(20), twice(1));
  co_return a + b;
}

extern "C" int kettle_plugin_run() {
  return kettle::run(plugin_main());
}
