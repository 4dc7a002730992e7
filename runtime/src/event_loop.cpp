#include "kettle/event_loop.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <ostream>
#include <typeinfo>

#include "kettle/graph.hpp"

#include <cstdio>

#include <thread>

#include <asio/post.hpp>

#include "kettle/executors/thread_pool.hpp"
#include "kettle/futures.hpp"
#include "symbols.hpp"
#include "unix_events.hpp"

namespace kettle {

namespace {
constexpr std::size_t kSpinWaitsMax = 8;
}  // namespace

namespace detail {
namespace {
// Every loop that exists, with the thread that runs it, last ran it or made it: a lock or
// queue bound to a loop is plain data again for that thread while the loop does not run
// there, and for every thread once the loop is gone (LoopBound::check_thread).
struct LoopRegistry {
  std::mutex mutex;
  std::vector<std::pair<std::uint64_t, std::thread::id>> loops;
  auto find(std::uint64_t id) {
    return std::find_if(loops.begin(), loops.end(), [id](const auto& e) { return e.first == id; });
  }
};
LoopRegistry& loop_registry() {
  static LoopRegistry* r = [] {
    auto* p = new LoopRegistry;  // never destroyed: a loop may be made or run during exit
    // A fork()ed child must not inherit the mutex held by a thread it does not have.
    ::pthread_atfork([] { loop_registry().mutex.lock(); }, [] { loop_registry().mutex.unlock(); },
                     [] { loop_registry().mutex.unlock(); });
    return p;
  }();
  return *r;
}
void loop_owned_here(std::uint64_t id) {
  LoopRegistry& r = loop_registry();
  std::lock_guard lock(r.mutex);
  auto it = r.find(id);
  if (it == r.loops.end())
    r.loops.emplace_back(id, std::this_thread::get_id());
  else
    it->second = std::this_thread::get_id();
}
void loop_gone(std::uint64_t id) noexcept {
  LoopRegistry& r = loop_registry();
  std::lock_guard lock(r.mutex);
  if (auto it = r.find(id); it != r.loops.end()) r.loops.erase(it);
}
}  // namespace

bool loop_gone_or_owned_here(std::uint64_t id) noexcept {
  LoopRegistry& r = loop_registry();
  std::lock_guard lock(r.mutex);
  auto it = r.find(id);
  return it == r.loops.end() || it->second == std::this_thread::get_id();
}

bool LoopGate::post(Runnable* r) {
  // On the loop's own running thread the loop cannot be closing: no need to check in.
  LoopCore* here = tls_loop;
  if (here && loop_.load(std::memory_order_relaxed) == here) {
    here->schedule(r);
    return true;
  }
  // Check in before looking at the loop, so that shut() waits for this push to finish.
  posting_.fetch_add(1, std::memory_order_seq_cst);
  LoopCore* l = loop_.load(std::memory_order_seq_cst);
  bool ok = l != nullptr;
  if (ok) {
    try {
      l->inbox_push(r);
    } catch (...) {
      ok = false;
    }
  }
  posting_.fetch_sub(1, std::memory_order_release);
  return ok;
}

bool LoopGate::post_callback(std::function<void()> fn) {
  Handle::Node* node = make_callback_node(std::move(fn));
  if (post(node)) return true;
  node->release();
  return false;
}

void LoopGate::shut() noexcept {
  loop_.store(nullptr, std::memory_order_seq_cst);
  while (posting_.load(std::memory_order_seq_cst) != 0)
    std::this_thread::yield();
}

void LoopCore::inbox_push(Runnable* r) {
  InboxNode* head = inbox.load(std::memory_order_relaxed);
  auto* n = new InboxNode{r, head};
  // (Once the exchange succeeds the node is the loop's: only `head` may be read after.)
  while (
      !inbox.compare_exchange_weak(head, n, std::memory_order_release, std::memory_order_relaxed))
    n->next = head;
  // The first post since the loop last took its inbox wakes it, in case it is blocked in
  // the io_context (a no-op handler; the loop drains the inbox after every wait).
  if (!head) {
    try {
      asio::post(owner.io_context(), [] {});
    } catch (...) {  // out of memory: the loop finds the post at its next iteration
    }
  }
}
}  // namespace detail

EventLoop::EventLoop() {
  detail::loop_owned_here(core_.id);
  const char* env = std::getenv("KETTLE_DEBUG");  // as PYTHONASYNCIODEBUG: set and not empty
  if (env && *env) core_.debug = true;
}

void EventLoop::set_slow_callback_duration(double seconds) {
  if (!(seconds >= 0))
    throw ValueError("slow_callback_duration must be a number of seconds >= 0, got " +
                     std::to_string(seconds));
  slow_ns_ = seconds >= 1e9 ? std::numeric_limits<std::int64_t>::max()
                            : static_cast<std::int64_t>(seconds * 1e9);
}

void EventLoop::dump_tasks(std::ostream& out) const {
  dump_tasks(out, TaskListing::tree);
}

void EventLoop::dump_tasks(std::ostream& out, TaskListing how) const {
  out << format_tasks(const_cast<EventLoop&>(*this), how);
  out.flush();
}

EventLoop::~EventLoop() {
  if (running_) {
    std::fputs("kettle: an EventLoop was destroyed while running\n", stderr);
    std::abort();
  }
  close();
  default_executor_.reset();  // joins its threads
  detail::loop_gone(core_.id);
}

ThreadPoolExecutor& EventLoop::default_executor() {
  check_open();
  if (!default_executor_) default_executor_ = std::make_unique<ThreadPoolExecutor>();
  return *default_executor_;
}

void EventLoop::set_default_executor(std::unique_ptr<ThreadPoolExecutor> executor) {
  check_open();
  if (!executor) throw ValueError("set_default_executor() needs an executor");
  if (default_executor_) default_executor_->shutdown(false);
  default_executor_ = std::move(executor);
}

Coro<void> EventLoop::shutdown_default_executor() {
  if (!default_executor_) co_return;
  // Shut down from another thread so that the loop keeps running meanwhile: running work
  // may need the loop (run_coroutine_threadsafe) to finish.
  Future<> done;
  std::thread joiner(&EventLoop::join_default_executor, default_executor_.get(), done);
  std::exception_ptr err;
  try {
    co_await done;
  } catch (...) {
    err = std::current_exception();
  }
  joiner.join();
  default_executor_.reset();
  if (err) std::rethrow_exception(err);
}

void EventLoop::join_default_executor(ThreadPoolExecutor* executor, Future<> done) {
  executor->shutdown(true);
  done.set_result();
}

double EventLoop::time() const noexcept {
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

void EventLoop::check_open() const {
  if (core_.closed) throw RuntimeError("Event loop is closed");
}

void EventLoop::check_thread() const {
  if (core_.debug && running_ && std::this_thread::get_id() != thread_)
    throw RuntimeError(
        "Non-thread-safe operation invoked on an event loop other than the current one; "
        "use call_soon_threadsafe()");
}

void EventLoop::check_can_run() const {
  if (running_) throw RuntimeError("This event loop is already running");
  if (detail::tls_loop)
    throw RuntimeError("Cannot run the event loop while another loop is running");
}

void EventLoop::schedule_threadsafe(Handle::Node* node) {
  if (!core_.gate->post(node)) {
    node->release();  // the queue's reference; the caller still holds the handle's
    node->release();
    throw RuntimeError("Event loop is closed");
  }
}

void EventLoop::run_forever() {
  check_open();
  check_can_run();
  struct Running {
    EventLoop& loop;
    explicit Running(EventLoop& l) : loop(l) {
      detail::loop_owned_here(loop.core_.id);
      loop.running_ = true;
      loop.thread_ = std::this_thread::get_id();
      detail::tls_loop = &loop.core_;
      detail::frame_cache_loop_running(true);
    }
    ~Running() {
      detail::frame_cache_loop_running(false);
      detail::tls_loop = nullptr;
      loop.running_ = false;
      loop.core_.stopping = false;
      loop.thread_ = {};
    }
  } running(*this);
  for (;;) {
    run_once();
    if (core_.stopping) break;
  }
}

void EventLoop::run_once() {
  detail::ReadyQueue& ready = core_.ready;
  detail::TimerHeap& timers = core_.timers;
  auto to_ready = [&](detail::Runnable* r) { ready.push(r); };
  if (core_.inbox_pending()) core_.inbox_take(to_ready);
  if (ready.empty()) {
    // Nothing to run: wait for I/O until the next timer (not at all when stopping).
    std::int64_t timeout = core_.stopping ? 0 : -1;
    if (!core_.stopping && !timers.empty()) {
      timeout = timers.next_deadline() - detail::now_ns();
      if (timeout < 0) timeout = 0;
    }
    // Spin only for a few replies: with many outstanding they stream in anyway, and the
    // spinning would take a core from the workers producing them.
    if (timeout != 0 && core_.foreign_waits > 0 && core_.foreign_waits <= kSpinWaitsMax &&
        spin_io(timeout))
      timeout = 0;
    if (timeout != 0) {
      ready.trim();  // idle: give back what a burst of tasks made the queues grow to
      timers.trim();
      detail::trim_frame_cache();
      // One handler (what woke us). No poll after it: that would cost an epoll_wait per
      // wake-up; other completions run in the next iterations, each one without a syscall.
      wait_io(timeout);
    } else {
      poll_io();
    }
    core_.io_polled();
    if (core_.inbox_pending()) core_.inbox_take(to_ready);
  } else if (core_.io_poll_due()) {
    poll_io();
    core_.io_polled();
  }
  if (!timers.empty()) {
    timers.pop_due(detail::now_ns(), [&](detail::TimerNode* n) {
      if (n->fires_inline())
        n->target()->run();  // may disarm other timers; never resumes a coroutine
      else
        ready.push(n->target());
    });
  }
  // Run the batch that is ready now; what it schedules runs in the next iteration.
  if (core_.debug) [[unlikely]] {
    run_batch_debug(ready.size());
    return;
  }
  for (std::size_t n = ready.size(); n > 0; --n)
    ready.pop()->run();
}

// Debug mode: each step is timed, and one slower than slow_callback_duration is reported.
void EventLoop::run_batch_debug(std::size_t n) {
  for (; n > 0; --n) {
    detail::Runnable* r = core_.ready.pop();
    auto* task = dynamic_cast<detail::TaskBase*>(r);
    if (task) task->add_ref();  // the step may finish it: describe it afterwards all the same
    const std::type_info& type = typeid(*r);  // a callback may be gone after it ran
    std::int64_t t0 = detail::now_ns();
    r->run();
    std::int64_t dt = detail::now_ns() - t0;
    if (dt >= slow_ns_) {
      try {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.3f", dt / 1e9);
        std::string what =
            task ? task->describe() : "<Handle " + detail::demangle(type.name()) + ">";
        call_exception_handler({"Executing " + what + " took " + secs + " seconds", nullptr,
                                task ? task->get_name() : std::string(),
                                task ? task->source_traceback() : std::string()});
      } catch (...) {
      }
    }
    if (task) task->release();
  }
}

void EventLoop::poll_io() noexcept {
  for (;;) {
    try {
      io_.poll();
      return;
    } catch (...) {
      call_exception_handler({"Exception in an Asio handler", std::current_exception(), {}});
    }
  }
}

bool EventLoop::spin_io(std::int64_t timeout_ns) noexcept {
  // A worker thread's reply usually comes within microseconds; blocking in epoll and being
  // woken costs tens. Poll for a short while first (never past the next timer).
  constexpr std::int64_t kSpinNs = 50'000;
  std::int64_t limit = timeout_ns < 0 || timeout_ns > kSpinNs ? kSpinNs : timeout_ns;
  std::int64_t start = detail::now_ns();
  do {
    if (core_.inbox_pending()) return true;
    try {
      if (io_.poll() > 0) return true;
    } catch (...) {
      call_exception_handler({"Exception in an Asio handler", std::current_exception(), {}});
      return true;
    }
    for (int i = 0; i < 64; ++i)
      detail::cpu_relax();  // keep off the io_context's lock
  } while (detail::now_ns() - start < limit);
  return false;
}

void EventLoop::wait_io(std::int64_t timeout_ns) noexcept {
  try {
    if (timeout_ns < 0)
      io_.run_one();
    else
      io_.run_one_for(std::chrono::nanoseconds(timeout_ns));
  } catch (...) {
    call_exception_handler({"Exception in an Asio handler", std::current_exception(), {}});
  }
}

void EventLoop::close() {
  if (running_) throw RuntimeError("Cannot close a running event loop");
  if (core_.closed) return;
  core_.closed = true;
  // What the dropped tasks' destructors do runs as if on this loop (a `Held` lock guard
  // releasing its lock, say), although nothing can be scheduled on it any more.
  struct Current {
    detail::LoopCore* saved = detail::tls_loop;
    explicit Current(detail::LoopCore* l) noexcept { detail::tls_loop = l; }
    ~Current() { detail::tls_loop = saved; }
  } current(&core_);
  // No other thread gets anything in from now on; what they posted before is dropped.
  core_.gate->shut();
  core_.inbox_take([](detail::Runnable* r) { r->drop(); });
  // Timers first, so that destroying suspended coroutines finds no armed sleep.
  std::vector<detail::Runnable*> timer_targets;
  core_.timers.clear([&](detail::TimerNode* n) { timer_targets.push_back(n->target()); });
  for (detail::Runnable* r : timer_targets)
    r->drop();
  core_.ready.drain([](detail::Runnable* r) { r->drop(); });
  // Tasks that never finished: destroy their coroutines (running destructors of their
  // locals), as Python does when it collects a pending task.
  std::vector<detail::TaskBase*> pending;
  for (detail::TaskBase* t = core_.tasks_head; t; t = t->next_task_)
    pending.push_back(t);
  core_.tasks_head = nullptr;
  for (detail::TaskBase* t : pending) {
    t->prev_task_ = t->next_task_ = nullptr;
    call_exception_handler(
        {"Task was destroyed but it is pending!", nullptr, t->get_name(), t->source_traceback()});
    t->abandon_pending();  // its coroutine goes when the last reference does
  }
  for (detail::TaskBase* t : pending)
    t->release();
  // Sockets and servers still open close now, while their io_context exists.
  core_.close_resources();
  signals_.reset();  // Asio's signal_set goes while its io_context still exists
}

void EventLoop::call_exception_handler(const ExceptionContext& context) noexcept {
  if (!handler_) {
    default_exception_handler(context);
    return;
  }
  try {
    handler_(*this, context);
  } catch (...) {
    default_exception_handler(
        {"Unhandled error in exception handler", std::current_exception(), context.task_name});
    default_exception_handler(context);
  }
}

void EventLoop::default_exception_handler(const ExceptionContext& context) noexcept {
  try {
    std::string text = "kettle: " + context.message + "\n";
    if (!context.task_name.empty()) text += "  task: " + context.task_name + "\n";
    if (context.exception) text += "  exception: " + describe(context.exception) + "\n";
    text += context.source_traceback;
    std::fputs(text.c_str(), stderr);
  } catch (...) {
    std::fputs("kettle: (could not format an error report)\n", stderr);
  }
}

EventLoop& get_running_loop() {
  return detail::running_loop_core().owner;
}

// Handle

Handle::Handle(const Handle& o) noexcept : node_(o.node_) {
  if (node_) node_->add_ref();
}

Handle::~Handle() {
  if (node_) node_->release();
}

void Handle::cancel() noexcept {
  if (!node_) return;
  node_->cancelled.store(true, std::memory_order_relaxed);
  if (node_->timer.armed()) {
    node_->loop->timers.remove(&node_->timer);
    node_->release();  // the heap's reference
  }
}

bool Handle::cancelled() const noexcept {
  return node_ && node_->cancelled.load(std::memory_order_relaxed);
}

double TimerHandle::when() const noexcept {
  return node_ ? double(node_->timer.when) * 1e-9 : 0.0;
}

void Handle::Node::run() noexcept {
  if (!cancelled.load(std::memory_order_relaxed)) {
    try {
      invoke();
    } catch (...) {
      loop->owner.call_exception_handler({"Exception in callback", std::current_exception(), {}});
    }
  }
  release();
}

}  // namespace kettle
