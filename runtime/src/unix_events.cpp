// EventLoop::add_signal_handler / remove_signal_handler, as asyncio's unix_events.
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>

#include "interrupts.hpp"
#include "kettle/event_loop.hpp"
#include "unix_events.hpp"

namespace kettle {

namespace {

std::atomic<std::uint64_t> next_tag{1};

thread_local signed char main_thread_cache = -1;  // -1: not asked yet on this thread

void check_signal(int sig) {
  if (sig < 1 || sig >= NSIG)
    throw ValueError("sig " + std::to_string(sig) + " out of range(1, " + std::to_string(NSIG) +
                     ")");
}

// Waits for the next signal of the set; each one runs its handler as a loop callback.
void arm(EventLoop& loop, detail::SignalHandlers& s) {
  if (s.waiting || s.handlers.empty()) return;
  s.waiting = true;
  // A completion queued before the loop closed may run after `s` is gone: it checks first.
  std::weak_ptr<bool> alive = s.alive;
  s.set.async_wait([&loop, &s, alive](const asio::error_code& ec, int sig) {
    if (ec || alive.expired()) return;  // the loop closed
    detail::unseen_interrupts = 0;      // this loop runs: it saw what came
    s.waiting = false;
    if (auto it = s.handlers.find(sig); it != s.handlers.end()) loop.call_soon(it->second.fn);
    arm(loop, s);
  });
}

}  // namespace

bool detail::on_main_thread() noexcept {
  // The thread that forks is the child's main thread: its answer is asked again there.
  static const bool registered =
      ::pthread_atfork(nullptr, nullptr, [] { main_thread_cache = -1; }) == 0;
  (void)registered;
  if (main_thread_cache < 0) main_thread_cache = ::syscall(SYS_gettid) == ::getpid() ? 1 : 0;
  return main_thread_cache == 1;
}

void EventLoop::add_signal_handler(int sig, std::function<void()> fn) {
  check_open();
  check_thread();
  check_signal(sig);
  if (!fn) throw ValueError("add_signal_handler(): the handler is empty");
  if (!detail::on_main_thread())
    throw RuntimeError("add_signal_handler() only works on the main thread's loop");
  if (sig == SIGKILL || sig == SIGSTOP)
    throw RuntimeError("sig " + std::to_string(sig) + " cannot be caught");
  if (!signals_) signals_ = std::make_unique<detail::SignalHandlers>(io_);
  auto it = signals_->handlers.find(sig);
  if (it == signals_->handlers.end()) {
    asio::error_code ec;
    signals_->set.add(sig, ec);
    if (ec) raise_os_error(ec, "add_signal_handler(" + std::to_string(sig) + ")");
    // Asio 1.22 installs its handler without SA_RESTART: every handled signal would make
    // blocking calls in other threads fail with EINTR (asyncio: siginterrupt(sig, False)).
    struct sigaction sa {};
    if (::sigaction(sig, nullptr, &sa) == 0 && !(sa.sa_flags & SA_RESTART)) {
      sa.sa_flags |= SA_RESTART;
      ::sigaction(sig, &sa, nullptr);
    }
    it = signals_->handlers.emplace(sig, detail::SignalHandlers::Entry{}).first;
  }
  it->second = {std::move(fn), next_tag++};
  arm(*this, *signals_);
}

bool EventLoop::remove_signal_handler(int sig) {
  check_thread();
  check_signal(sig);
  if (!detail::on_main_thread())
    throw RuntimeError("remove_signal_handler() only works on the main thread's loop");
  if (!signals_ || signals_->handlers.erase(sig) == 0) return false;
  // The pending wait stays: cancelling it could leave a delivery already queued and a new
  // wait both pending, and each later signal would then run its handler twice.
  asio::error_code ec;
  signals_->set.remove(sig, ec);  // the last set to hold it restores SIG_DFL
  return true;
}

std::uint64_t EventLoop::signal_handler_tag(int sig) const noexcept {
  if (!signals_) return 0;
  auto it = signals_->handlers.find(sig);
  return it == signals_->handlers.end() ? 0 : it->second.tag;
}

}  // namespace kettle
