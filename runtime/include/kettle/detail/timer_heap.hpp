// Internal: the loop's timers, a 4-ary min-heap ordered by (deadline, sequence number).
//
// Entries keep their deadline inline (16 bytes: four children share a cache line) so that
// sifting compares contiguous memory; each node remembers its position, so that a
// cancelled timer (a cancelled sleep, a cancelled call_later handle) leaves the heap at
// once instead of waiting to expire. Equal deadlines fire in the order they were
// scheduled, thanks to a sequence number kept in the node and read only on ties.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kettle/detail/runnable.hpp"

namespace kettle::detail {

struct TimerNode {
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();
  static constexpr std::uint32_t cancelled = npos - 1;  // an owner's mark, not armed either
  std::int64_t when = 0;                                // steady_clock nanoseconds
  std::uint32_t index = npos;  // position in the heap; npos (or cancelled) when not armed
  std::uint32_t seq = 0;       // scheduling order, for equal deadlines (wraps harmlessly)

  bool armed() const noexcept { return index < cancelled; }

  // What the timer does when it fires. A task (a sleep) is pushed to the ready queue, after
  // what is ready already. An owner that only cancels or wakes tasks (a timeout scope, a
  // wait) runs at once instead: it may be gone by the time a queued entry would run.
  void set_target(Runnable* r) noexcept { target_ = reinterpret_cast<std::uintptr_t>(r); }
  void set_inline_target(Runnable* r) noexcept {
    target_ = reinterpret_cast<std::uintptr_t>(r) | 1u;
  }
  Runnable* target() const noexcept {
    return reinterpret_cast<Runnable*>(target_ & ~std::uintptr_t(1));
  }
  bool fires_inline() const noexcept { return target_ & 1u; }

 private:
  std::uintptr_t target_ = 0;  // a Runnable*, tagged in its low bit when it fires inline
};

class TimerHeap {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  std::int64_t next_deadline() const noexcept { return heap_.front().when; }

  void push(TimerNode* n) {
    if (heap_.size() >= TimerNode::cancelled) throw std::length_error("kettle: too many timers");
    n->seq = seq_++;
    Entry e{n->when, n};
    heap_.push_back(e);
    sift_up(heap_.size() - 1, e);
  }

  void remove(TimerNode* n) noexcept {
    std::size_t i = n->index;
    n->index = TimerNode::npos;
    Entry last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;
    if (i > 0 && less(last, heap_[(i - 1) / 4]))
      sift_up(i, last);
    else
      sift_down(i, last);
  }

  // Pops every timer due at `now`, in deadline order, handing each node to f.
  template <class F>
  void pop_due(std::int64_t now, F&& f) {
    while (!heap_.empty() && heap_.front().when <= now) {
      TimerNode* n = heap_.front().node;
      n->index = TimerNode::npos;
      Entry last = heap_.back();
      heap_.pop_back();
      if (!heap_.empty()) sift_down(0, last);
      f(n);
    }
  }

  // Gives back a large array once most timers are gone.
  void trim() {
    if (heap_.capacity() > 4096 && heap_.size() < heap_.capacity() / 4) heap_.shrink_to_fit();
  }

  // Disarms every timer without firing it, handing each node to f (the loop is closing).
  template <class F>
  void clear(F&& f) {
    for (Entry& e : heap_) {
      e.node->index = TimerNode::npos;
      f(e.node);
    }
    heap_.clear();
    heap_.shrink_to_fit();
  }

 private:
  struct Entry {
    std::int64_t when;
    TimerNode* node;
  };

  static bool less(const Entry& a, const Entry& b) noexcept {
    if (a.when != b.when) return a.when < b.when;
    return static_cast<std::int32_t>(a.node->seq - b.node->seq) < 0;
  }

  void place(std::size_t i, const Entry& e) noexcept {
    heap_[i] = e;
    e.node->index = static_cast<std::uint32_t>(i);
  }

  void sift_up(std::size_t i, Entry e) noexcept {
    while (i > 0) {
      std::size_t parent = (i - 1) / 4;
      if (!less(e, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, e);
  }

  void sift_down(std::size_t i, Entry e) noexcept {
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t first = 4 * i + 1;
      if (first >= n) break;
      std::size_t best = first;
      std::size_t end = first + 4 < n ? first + 4 : n;
      for (std::size_t c = first + 1; c < end; ++c)
        if (less(heap_[c], heap_[best])) best = c;
      if (!less(heap_[best], e)) break;
      place(i, heap_[best]);
      i = best;
    }
    place(i, e);
  }

  std::vector<Entry> heap_;
  std::uint32_t seq_ = 0;
};

}  // namespace kettle::detail
