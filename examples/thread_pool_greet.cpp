// The seed's concurrent.futures example:
//
//   with ThreadPoolExecutor(max_workers=3) as executor:
//       results = executor.map(greet, ["Alice", "Bob", "Charlie"])
//   for res in results:
//       print(res)
//
// No event loop here: a plain program using a thread pool. Results come in input order.
#include <iostream>
#include <string>
#include <vector>

#include <kettle/kettle.hpp>

std::string greet(const std::string& name) {
  return "Hello, " + name + "!";
}

int main() {
  std::vector<std::string> names{"Alice", "Bob", "Charlie"};
  kettle::ThreadPoolExecutor executor(3);
  for (const std::string& res : executor.map(greet, names))
    std::cout << res << std::endl;
}
