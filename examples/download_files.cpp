// The seed's download example: three blocking downloads (2 s each) on threads, so about
// 2 s in all.
//
//   def download_file(file_num):
//       print(f"Downloading file {file_num}...")
//       time.sleep(2)
//       print(f"File {file_num} downloaded.")
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;

void download_file(int file_num) {
  std::printf("Downloading file %d...\n", file_num);
  std::fflush(stdout);
  std::this_thread::sleep_for(2s);  // simulate a delay
  std::printf("File %d downloaded.\n", file_num);
  std::fflush(stdout);
}

kettle::Coro<> amain() {
  std::vector<kettle::Future<void>> downloads;
  for (int i = 0; i < 3; ++i)
    downloads.push_back(kettle::to_thread(download_file, i + 1));
  co_await kettle::gather(downloads);
  std::printf("All downloads completed.\n");
}

int main() {
  kettle::run(amain());
}
