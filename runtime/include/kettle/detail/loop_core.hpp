// Internal: the part of an event loop that awaiters and tasks touch on their hot paths.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "kettle/detail/ready_queue.hpp"
#include "kettle/detail/timer_heap.hpp"

namespace kettle {
class EventLoop;
}

namespace kettle::detail {

class TaskBase;
class LoopCore;

// Futures and tasks can outlive their loop (a user may keep a finished Task handle).
// They point to this small anchor, which the loop clears when it is destroyed.
struct LoopAnchor {
  LoopCore* loop;
  std::uint32_t refs;

  void add_ref() noexcept { ++refs; }
  void release() noexcept {
    if (--refs == 0) delete this;
  }
};

// How other threads reach a loop (future completions, call_soon_threadsafe, Asio
// completions on other threads). A post pushes onto the loop's inbox, which the loop
// drains into its ready queue at every iteration. close() shuts the gate, then drains:
// after that no post gets in, so a late completion never touches a closed or dead loop.
class LoopGate {
 public:
  explicit LoopGate(LoopCore* loop) noexcept : loop_(loop) {}
  // Schedules r on the loop, from any thread (from the loop's own running thread, straight
  // onto the ready queue). False if the loop is closed: r was not taken.
  bool post(Runnable* r);
  // Runs fn on the loop, from any thread; false (fn dropped) if the loop is closed.
  bool post_callback(std::function<void()> fn);
  // Whether `l` is this gate's loop and it is still open.
  bool leads_to(const LoopCore* l) const noexcept {
    return l && loop_.load(std::memory_order_relaxed) == l;
  }
  // No post gets in once this returns (the loop is closing).
  void shut() noexcept;

 private:
  std::atomic<LoopCore*> loop_;
  std::atomic<std::uint32_t> posting_{0};  // posts between their check and their push
};

// A hint to the CPU inside a spin-wait loop.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Something that holds Asio I/O objects of a loop (a stream, a server). Asio's objects must
// go before their io_context: the loop's close() tells each to close them.
class LoopResource {
 public:
  virtual void on_loop_close() noexcept = 0;

 protected:
  ~LoopResource() = default;

 private:
  friend class LoopCore;
  LoopResource* prev_resource_ = nullptr;
  LoopResource* next_resource_ = nullptr;
};

class LoopCore {
 public:
  explicit LoopCore(EventLoop& owner)
      : owner(owner),
        anchor(new LoopAnchor{this, 1}),
        gate(std::make_shared<LoopGate>(this)),
        id(next_id()) {}
  LoopCore(const LoopCore&) = delete;
  LoopCore& operator=(const LoopCore&) = delete;
  ~LoopCore() {
    gate->shut();
    anchor->loop = nullptr;
    anchor->release();
  }

  void schedule(Runnable* r) { ready.push(r); }

  // While tasks are ready, the io_context is polled once every this many iterations (tokio
  // uses 61 for the same reason; an iteration runs the whole batch that is ready), unless
  // the last poll is less than kIoGapNs old: a busy loop still sees I/O within 61
  // iterations or 20 µs, whichever comes later, without paying an epoll_wait (about a
  // microsecond) every few hundred nanoseconds of short steps.
  static constexpr unsigned kIoInterval = 61;
  static constexpr std::int64_t kIoGapNs = 20'000;

  // Counts one busy step: whether the io_context is due a poll. It stays due until the
  // loop polls and says so with io_polled().
  bool io_poll_due() noexcept {
    if (++io_tick < kIoInterval) return false;
    if (now_ns() - last_io_ns >= kIoGapNs) return true;
    io_tick = 0;
    return false;
  }
  void io_polled() noexcept {
    io_tick = 0;
    last_io_ns = now_ns();
  }

  // sleep(0) with nothing else ready, no timer armed, nothing posted from another thread,
  // no I/O poll due and no stop requested is a no-op: yielding would only come straight
  // back to the same task.
  bool yield_is_noop() noexcept {
    return ready.empty() && timers.empty() && !stopping && !inbox_pending() && !io_poll_due();
  }

  void attach(LoopResource* r) noexcept {
    r->prev_resource_ = nullptr;
    r->next_resource_ = resources;
    if (resources) resources->prev_resource_ = r;
    resources = r;
  }
  void detach(LoopResource* r) noexcept {
    if (r->prev_resource_)
      r->prev_resource_->next_resource_ = r->next_resource_;
    else if (resources == r)
      resources = r->next_resource_;
    if (r->next_resource_) r->next_resource_->prev_resource_ = r->prev_resource_;
    r->prev_resource_ = r->next_resource_ = nullptr;
  }
  // In close(): every resource closes its I/O objects (and leaves the list).
  void close_resources() noexcept {
    while (LoopResource* r = resources) {
      detach(r);
      r->on_loop_close();
    }
  }

  // The inbox: what other threads posted (LoopGate::post), a lock-free stack that the loop
  // takes whole and reverses, so that posts from one thread keep their order.
  struct InboxNode {
    Runnable* r;
    InboxNode* next;
  };
  bool inbox_pending() const noexcept { return inbox.load(std::memory_order_relaxed) != nullptr; }
  // From any thread, through the gate. Wakes the loop if it may be blocked.
  void inbox_push(Runnable* r);
  // Moves what was posted onto the ready queue (or to f, when the loop closes).
  template <class F>
  void inbox_take(F&& f) {
    InboxNode* n = inbox.exchange(nullptr, std::memory_order_acquire);
    InboxNode* fifo = nullptr;
    while (n) {
      InboxNode* next = n->next;
      n->next = fifo;
      fifo = n;
      n = next;
    }
    while (fifo) {
      InboxNode* next = fifo->next;
      Runnable* r = fifo->r;
      delete fifo;
      fifo = next;
      f(r);
    }
  }

  EventLoop& owner;
  LoopAnchor* anchor;
  std::shared_ptr<LoopGate> gate;
  const std::uint64_t id;  // never reused, unlike the loop's address
  ReadyQueue ready;
  TimerHeap timers;
  std::atomic<InboxNode*> inbox{nullptr};
  TaskBase* current_task = nullptr;
  TaskBase* tasks_head = nullptr;  // every pending task (intrusive list, see TaskBase)
  LoopResource* resources = nullptr;
  std::uint32_t next_task_id = 1;
  // Tasks waiting for a Future that another thread may complete. While there are any, the
  // loop polls for a short while before blocking, so that a quick reply from a worker
  // thread does not pay a sleep and a wake-up.
  std::size_t foreign_waits = 0;
  unsigned io_tick = 0;
  std::int64_t last_io_ns = 0;  // when the io_context was last polled or waited on
  bool stopping = false;
  bool debug = false;               // EventLoop::set_debug
  std::atomic<bool> closed{false};  // read from other threads (is_closed)

 private:
  static std::uint64_t next_id() noexcept {
    static std::atomic<std::uint64_t> n{0};
    return ++n;
  }
};

// The loop running on this thread, if any. Read at every step: initial-exec keeps it one
// load in position-independent code too (a shared libkettle), instead of a __tls_get_addr
// call; with the frame allocator's list pointer (frame_allocator.hpp) kettle takes 16 bytes
// of static TLS, which fits what glibc reserves even for a dlopen()ed library.
[[gnu::tls_model("initial-exec")]] inline constinit thread_local LoopCore* tls_loop = nullptr;

// Whether the loop with this id no longer exists, or this thread made it or last ran it.
bool loop_gone_or_owned_here(std::uint64_t id) noexcept;

}  // namespace kettle::detail
