#include "kettle/runners.hpp"

#include <signal.h>
#include <unistd.h>

#include <iostream>

#include "interrupts.hpp"
#include "unix_events.hpp"

namespace kettle::detail {

namespace {

// A Ctrl-C must end a program whose loop does not run (a task that never suspends, a
// blocking call on the loop thread): before Asio's handler, which only writes to a pipe the
// loop would read, this one counts what the loop has not seen, and at the second such
// signal gives it its default action. Async-signal-safe: an atomic, signal(), raise().
void (*asio_handlers[NSIG])(int) = {};

extern "C" void escalating_handler(int sig) {
  if (unseen_interrupts.fetch_add(1) >= 1 || !asio_handlers[sig]) {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  asio_handlers[sig](sig);
}

// Puts escalating_handler in front of the handler Asio just installed for sig.
void chain_escalation(int sig) {
  struct sigaction sa {};
  if (::sigaction(sig, nullptr, &sa) != 0 || (sa.sa_flags & SA_SIGINFO) ||
      sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN || sa.sa_handler == escalating_handler)
    return;
  asio_handlers[sig] = sa.sa_handler;
  sa.sa_handler = escalating_handler;
  ::sigaction(sig, &sa, nullptr);
}

}  // namespace

void check_can_start_run() {
  if (tls_loop) throw RuntimeError("kettle::run() cannot be called from a running event loop");
}

void prepare_run(EventLoop& loop, RunOptions& options) {
  if (options.debug) loop.set_debug(*options.debug);
  if (options.exception_handler) loop.set_exception_handler(std::move(options.exception_handler));
  int dump_on = options.dump_tasks_on.value_or(0);
  if (!options.dump_tasks_on && loop.get_debug() && on_main_thread()) {
    struct sigaction sa {};
    if (::sigaction(SIGUSR1, nullptr, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL)
      dump_on = SIGUSR1;  // only where nobody else decided what SIGUSR1 does
  }
  if (dump_on) {
    loop.add_signal_handler(dump_on, [&loop, dump_on] {
      std::cerr << "kettle: the pending tasks (signal " << dump_on << "):\n";
      loop.dump_tasks(std::cerr);
    });
  }
}

namespace {
Coro<> cancel_all(std::vector<TaskRef> tasks) {
  for (TaskRef& t : tasks)
    t.cancel();
  co_await gather(return_exceptions, tasks);
}
}  // namespace

void finish_run(EventLoop& loop) noexcept {
  if (loop.is_closed()) return;
  try {
    std::vector<TaskRef> left;
    for (TaskBase* t = loop.core().tasks_head; t; t = t->next_task_) {
      t->add_ref();
      left.emplace_back(t);
    }
    if (!left.empty()) {
      loop.run_until_complete(cancel_all(left));
      for (TaskRef& t : left) {
        if (t.cancelled()) continue;
        if (std::exception_ptr e = t.exception())
          loop.call_exception_handler(
              {"unhandled exception during kettle::run() shutdown", e, t.get_name()});
      }
    }
  } catch (...) {
    loop.call_exception_handler(
        {"error while cancelling the remaining tasks", std::current_exception(), {}});
  }
  try {
    loop.run_until_complete(loop.shutdown_default_executor());
  } catch (...) {
    loop.call_exception_handler(
        {"error while shutting down the default executor", std::current_exception(), {}});
  }
  try {
    loop.close();
  } catch (...) {
  }
}

Interrupts::Interrupts(EventLoop& loop, TaskRef main, const RunOptions& options)
    : loop_(loop), main_(std::move(main)) {
  if (!on_main_thread()) return;  // not the main thread: left alone
  const int sigs[2] = {SIGINT, options.handle_sigterm ? SIGTERM : 0};
  for (int i = 0; i < 2; ++i) {
    struct sigaction sa {};
    // Only where nobody else decided what the signal does (as asyncio.Runner).
    if (!sigs[i] || ::sigaction(sigs[i], nullptr, &sa) != 0 || (sa.sa_flags & SA_SIGINFO) ||
        sa.sa_handler != SIG_DFL)
      continue;
    int sig = sigs[i];
    loop.add_signal_handler(sig, [this, sig] { on_signal(sig); });
    tags_[i] = loop.signal_handler_tag(sig);
    unseen_interrupts = 0;
    chain_escalation(sig);
    armed_ = true;
  }
}

Interrupts::~Interrupts() {
  disarm();
  run_interrupted = false;
}

void Interrupts::disarm(bool interrupted) noexcept {
  if (!interrupted) run_interrupted = false;  // the main task carried on: pools wait again
  if (!armed_) return;
  armed_ = false;
  if (loop_.is_closed()) return;  // close() removed every handler
  const int sigs[2] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; ++i) {
    try {
      if (tags_[i] && loop_.signal_handler_tag(sigs[i]) == tags_[i])  // still ours
        loop_.remove_signal_handler(sigs[i]);
    } catch (...) {  // (only a foreign thread could make it throw)
    }
  }
}

void Interrupts::on_signal(int sig) {
  if (!armed_) return;
  if (++count_ == 1) {
    signal_ = sig;
    run_interrupted = true;
  }
  if (count_ == 1 && !main_.done()) {
    main_.cancel();
    return;
  }
  loop_.stop();  // the second one: run_until_complete stops waiting for the main task
}

void Interrupts::raise_if_interrupted() {
  bool interrupted = false;
  if (count_ > 0) {
    try {
      throw;
    } catch (const CancelledError&) {
      interrupted = main_.uncancel() == 0;
    } catch (...) {
      interrupted = count_ > 1;  // "Event loop stopped before ...": the second signal
    }
  }
  disarm(interrupted);
  finish_run(loop_);
  if (interrupted) throw KeyboardInterrupt(signal_);
}

}  // namespace kettle::detail
