// A worker rank dies in the middle of a task. Under standard MPI the job goes down with it:
// mpiexec kills every rank and reports the dead one. If this root survives instead (an MPI
// that keeps going), its wait times out and it says so: either way, no hang.
#include <cstdio>
#include <cstdlib>

#include "kettle/kettle.hpp"
#include "kettle/mpi.hpp"

int die(int) {
  std::abort();
}

int main() {
  kettle::mpi::MPIPoolExecutor pool;
  auto f = pool.submit(die, 1);
  try {
    f.result(std::chrono::seconds(30));
    std::puts("root: the task returned");
  } catch (const kettle::TimeoutError&) {
    std::puts("root: TimeoutError: the worker never answered");
    std::fflush(stdout);
    std::_Exit(3);
  }
  return 0;
}
