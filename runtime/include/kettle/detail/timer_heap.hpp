// Internal: the loop's timers, a sorted run plus a 4-ary min-heap, ordered by (deadline,
// sequence number).
//
// Most timers are scheduled in deadline order (many sleeps or timeouts of one duration): a
// timer whose deadline is not before the last one appended goes to the end of the sorted
// run, an intrusive doubly-linked list, and leaves from its head, touching no other timer.
// The others go to the heap. Heap entries keep their deadline inline (16 bytes: four
// children share a cache line) so that sifting compares contiguous memory; each node
// remembers where it is, so that a cancelled timer (a cancelled sleep, a cancelled
// call_later handle, a timeout that did not fire) leaves at once instead of waiting to
// expire. Equal deadlines fire in the order they were scheduled, thanks to a sequence
// number kept in the node and read only on ties.
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
  static constexpr std::uint32_t in_run = npos - 2;     // armed, in the sorted run
  std::int64_t when = 0;                                // steady_clock nanoseconds
  std::uint32_t index = npos;  // heap position, in_run, or npos (or cancelled): not armed
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
  friend class TimerHeap;
  std::uintptr_t target_ = 0;  // a Runnable*, tagged in its low bit when it fires inline
  TimerNode* prev_ = nullptr;  // neighbours in the sorted run
  TimerNode* next_ = nullptr;
};

class TimerHeap {
 public:
  bool empty() const noexcept { return heap_.empty() && !head_; }
  std::size_t size() const noexcept { return heap_.size() + run_size_; }
  std::size_t run_size() const noexcept { return run_size_; }  // of size(), in the sorted run
  std::int64_t next_deadline() const noexcept {
    if (!head_) return heap_.front().when;
    if (heap_.empty() || head_->when < heap_.front().when) return head_->when;
    return heap_.front().when;
  }

  void push(TimerNode* n) {
    if (!tail_ || n->when >= tail_->when) {
      n->seq = seq_++;
      n->index = TimerNode::in_run;
      n->prev_ = tail_;
      n->next_ = nullptr;
      (tail_ ? tail_->next_ : head_) = n;
      tail_ = n;
      ++run_size_;
      return;
    }
    if (heap_.size() >= TimerNode::in_run) throw std::length_error("kettle: too many timers");
    n->seq = seq_++;
    Entry e{n->when, n};
    heap_.push_back(e);
    sift_up(heap_.size() - 1, e);
  }

  void remove(TimerNode* n) noexcept {
    if (n->index == TimerNode::in_run) {
      unlink(n);
      return;
    }
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

  // Pops every timer due at `now`, in (deadline, scheduling) order, handing each node to f.
  template <class F>
  void pop_due(std::int64_t now, F&& f) {
    for (;;) {
      TimerNode* n;
      if (head_ && (heap_.empty() || less(Entry{head_->when, head_}, heap_.front()))) {
        n = head_;  // the run's head fires first
      } else if (!heap_.empty()) {
        n = heap_.front().node;
      } else {
        return;
      }
      if (n->when > now) return;
      remove(n);
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
    while (TimerNode* n = head_) {
      unlink(n);
      f(n);
    }
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
  void unlink(TimerNode* n) noexcept {
    (n->prev_ ? n->prev_->next_ : head_) = n->next_;
    (n->next_ ? n->next_->prev_ : tail_) = n->prev_;
    n->prev_ = n->next_ = nullptr;
    n->index = TimerNode::npos;
    --run_size_;
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
  TimerNode* head_ = nullptr;  // the sorted run, earliest first
  TimerNode* tail_ = nullptr;
  std::size_t run_size_ = 0;
  std::uint32_t seq_ = 0;
};

}  // namespace kettle::detail
