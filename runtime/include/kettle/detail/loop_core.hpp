// Internal: the part of an event loop that awaiters and tasks touch on their hot paths.
#pragma once

#include <chrono>
#include <cstdint>

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

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class LoopCore {
 public:
  explicit LoopCore(EventLoop& owner) : owner(owner), anchor(new LoopAnchor{this, 1}) {}
  LoopCore(const LoopCore&) = delete;
  LoopCore& operator=(const LoopCore&) = delete;
  ~LoopCore() {
    anchor->loop = nullptr;
    anchor->release();
  }

  void schedule(Runnable* r) { ready.push(r); }

  // While tasks are ready, the io_context is polled once every this many iterations, so
  // that a busy loop still sees I/O and cross-thread posts without a syscall per
  // iteration (tokio uses 61 for the same reason).
  static constexpr unsigned kIoInterval = 61;

  // sleep(0) with nothing else ready, no timer armed, no I/O poll due and no stop
  // requested is a no-op: yielding would only come straight back to the same task.
  bool yield_is_noop() noexcept {
    return ready.empty() && timers.empty() && !stopping && ++io_tick < kIoInterval;
  }

  EventLoop& owner;
  LoopAnchor* anchor;
  ReadyQueue ready;
  TimerHeap timers;
  TaskBase* current_task = nullptr;
  TaskBase* tasks_head = nullptr;  // every pending task (intrusive list, see TaskBase)
  std::uint32_t next_task_id = 1;
  unsigned io_tick = 0;
  bool stopping = false;
  bool closed = false;
};

// The loop running on this thread, if any.
inline constinit thread_local LoopCore* tls_loop = nullptr;

}  // namespace kettle::detail
