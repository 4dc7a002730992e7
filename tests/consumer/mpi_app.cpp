// Built (not run) where kettle has kettle::kettle_mpi: its headers and MPI are found.
#include <kettle/mpi.hpp>

int twice(int x) {
  return 2 * x;
}

int main() {
  kettle::mpi::MPIPoolExecutor pool;  // under mpiexec -n 2 or more
  return pool.submit(twice, 21).result() == 42 ? 0 : 1;
}
