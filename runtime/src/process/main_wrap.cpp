// The program's main, wrapped (the kettle target links with -Wl,--wrap=main): a process
// started as a kettle worker or fork server runs that role after static initialization
// instead of the program's main. With kettle::kettle_mpi linked in, a rank of mpiexec other
// than 0 serves MPIPoolExecutors instead (kettle_mpi_main_hook does not return there).
#include <cstdlib>

#include "launch.hpp"

extern "C" int __real_main(int argc, char** argv);
extern "C" [[gnu::weak]] void kettle_mpi_main_hook(int* argc, char*** argv);

extern "C" int __wrap_main(int argc, char** argv) {
  kettle::detail::proc::note_main_wrapped();
  if (const char* role = std::getenv("KETTLE_PROCESS_ROLE")) kettle::detail::proc::run_role(role);
  if (kettle_mpi_main_hook) kettle_mpi_main_hook(&argc, &argv);
  return __real_main(argc, argv);
}
