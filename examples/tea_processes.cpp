// The seed's multiprocessing example:
//
//   def brew_tea(name):
//       print(f"Start brewing {name}")
//       time.sleep(3)
//       print(f"End brewing {name}")
//
//   if __name__ == "__main__":
//       processes = []
//       for i in range(3):
//           p = Process(target=brew_tea, args=(f"tea-{i+1}",))
//           processes.append(p)
//           p.start()
//       for p in processes:
//           p.join()
//       print("All tea served")
//
// Three processes brew at the same time: about 3 s, not 9.
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

void brew_tea(std::string name) {
  std::cout << "Start brewing " << name << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  std::cout << "End brewing " << name << std::endl;
}

int main() {
  std::vector<std::unique_ptr<kettle::Process>> processes;
  for (int i = 0; i < 3; ++i) {
    auto p = std::make_unique<kettle::Process>(brew_tea, "tea-" + std::to_string(i + 1));
    p->start();
    processes.push_back(std::move(p));
  }
  for (auto& p : processes)
    p->join();
  std::cout << "All tea served" << std::endl;
}
