// Coroutines pass a token around the MPI ranks with awaitable send/recv, while a heartbeat
// keeps ticking on each rank's loop: communication overlaps the rank's other work.
//
//   mpiexec -n 4 ./mpi_ring
//
// mpi4py's equivalent would block in comm.recv(); here the receive is a co_await, tested on
// the loop (MPI_Testsome with backoff), so the heartbeat never stalls. Every rank runs
// main (an SPMD program: KETTLE_MPI_SPMD below).
#include <chrono>
#include <iostream>
#include <sstream>

#include <kettle/kettle.hpp>
#include <kettle/mpi.hpp>

KETTLE_MPI_SPMD;

using namespace std::chrono_literals;
namespace mpi = kettle::mpi;

constexpr int laps = 3;

kettle::Coro<> heartbeat(int& beats) {
  for (;;) {
    co_await kettle::sleep(10ms);
    ++beats;
  }
}

kettle::Coro<> ring() {
  const int me = mpi::rank(), n = mpi::size();
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  int beats = 0;
  auto beat = kettle::create_task(heartbeat(beats));
  std::ostringstream log;
  for (int lap = 1; lap <= laps; ++lap) {
    int token;
    if (me == 0) {
      co_await kettle::sleep(50ms);  // some work before the token goes round
      co_await mpi::send(lap * 100, next);
      token = co_await mpi::recv<int>(prev);
      log << "lap " << lap << ": the token came back as " << token << "\n";
    } else {
      token = co_await mpi::recv<int>(prev);
      co_await mpi::send(token + 1, next);
    }
  }
  beat.cancel();
  // Every rank's heartbeat kept ticking while it waited for the token.
  int least = co_await mpi::allreduce(beats, MPI_MIN);
  if (me == 0) {
    std::cout << log.str();
    std::cout << "the token passed " << n << " ranks per lap; every heartbeat ticked "
              << (least >= 3 ? "all along" : "too little") << std::endl;
  }
}

int main() {
  mpi::init();
  kettle::run(ring());
}
