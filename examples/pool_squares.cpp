// The seed's multiprocessing.Pool example:
//
//   def compute_square(n):
//       print(f"Computing square of {n}")
//       return n * n
//
//   if __name__ == "__main__":
//       numbers = [1, 2, 3, 4]
//       with multiprocessing.Pool() as pool:
//           results = pool.map(compute_square, numbers)
//       print("Squares:", results)
//
// The squares are computed in worker processes (in any order); the results come back in
// input order.
#include <iostream>
#include <vector>

#include <kettle/kettle.hpp>

int compute_square(int n) {
  std::cout << "Computing square of " << n << std::endl;
  return n * n;
}

int main() {
  std::vector<int> numbers{1, 2, 3, 4};
  std::vector<int> results;
  {
    kettle::Pool pool;
    results = pool.map(compute_square, numbers);
  }
  std::cout << "Squares: [";
  for (std::size_t i = 0; i < results.size(); ++i)
    std::cout << (i ? ", " : "") << results[i];
  std::cout << "]" << std::endl;
}
