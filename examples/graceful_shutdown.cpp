// A server-like program that stops cleanly on SIGINT (Ctrl-C) or SIGTERM (what `docker
// stop` and systemd send): it stops taking new jobs, finishes the ones in flight, and exits
// with status 0. The signal handlers run as loop callbacks (loop.add_signal_handler), so
// they may touch anything the tasks touch.
//
// Python: loop.add_signal_handler(signal.SIGTERM, stop.set), then the same structure.
#include <signal.h>

#include <chrono>
#include <iostream>
#include <string>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;

kettle::Coro<> worker(int id, kettle::Queue<int>& jobs) {
  for (;;) {
    int job = co_await jobs.get();
    std::cout << "worker " << id << " started job " << job << std::endl;
    co_await kettle::sleep(300ms);  // the job: it is never cut short
    std::cout << "worker " << id << " finished job " << job << std::endl;
    jobs.task_done();
  }
}

kettle::Coro<> amain() {
  kettle::EventLoop& loop = kettle::get_running_loop();
  kettle::Event stop;
  std::string why;
  for (int sig : {SIGINT, SIGTERM})
    loop.add_signal_handler(sig, [&stop, &why, sig] {
      why = sig == SIGINT ? "SIGINT" : "SIGTERM";
      stop.set();
    });
  std::cout << "serving; stop me with Ctrl-C or kill -TERM" << std::endl;

  kettle::Queue<int> jobs(3);
  std::vector<kettle::Task<>> workers;
  for (int id = 1; id <= 3; ++id)
    workers.push_back(kettle::create_task(worker(id, jobs)));
  // New work keeps coming until the signal.
  auto accept = [&]() -> kettle::Coro<> {
    for (int job = 1;; ++job) {
      co_await jobs.put(job);
      co_await kettle::sleep(100ms);
    }
  };
  kettle::Task<> acceptor = kettle::create_task(accept());

  co_await stop.wait();
  std::cout << "received " << why << ": no new jobs; finishing the ones in flight" << std::endl;
  acceptor.cancel();
  co_await kettle::gather(kettle::return_exceptions, acceptor);
  co_await jobs.join();  // every job taken is finished
  for (auto& w : workers)
    w.cancel();
  co_await kettle::gather(kettle::return_exceptions, workers);
  std::cout << "all jobs finished; clean exit" << std::endl;
}

int main() {
  kettle::run(amain());
  return 0;
}
