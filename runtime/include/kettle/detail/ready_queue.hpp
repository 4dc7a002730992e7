// Internal: the loop's FIFO of runnables, a growable ring buffer of pointers.
// Pushing and popping cost a store and a load; there is no allocation per entry.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

#include "kettle/detail/runnable.hpp"

namespace kettle::detail {

class ReadyQueue {
 public:
  ReadyQueue() = default;
  ReadyQueue(const ReadyQueue&) = delete;
  ReadyQueue& operator=(const ReadyQueue&) = delete;
  ~ReadyQueue() { std::free(buf_); }

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }

  void push(Runnable* r) {
    if (tail_ - head_ == cap_) grow();
    buf_[tail_++ & (cap_ - 1)] = r;
  }

  Runnable* pop() noexcept { return buf_[head_++ & (cap_ - 1)]; }

  // Removes every entry, calling f on each (oldest first).
  template <class F>
  void drain(F&& f) {
    while (!empty())
      f(pop());
  }

  // Gives back a large buffer once the queue is empty (after a burst of many tasks).
  void trim() noexcept {
    if (empty() && cap_ > kKeep) {
      std::free(buf_);
      buf_ = nullptr;
      cap_ = head_ = tail_ = 0;
    }
  }

 private:
  void grow() {
    std::size_t ncap = cap_ ? cap_ * 2 : 256;
    auto* nbuf = static_cast<Runnable**>(std::malloc(ncap * sizeof(Runnable*)));
    if (!nbuf) throw std::bad_alloc();
    std::size_t n = size();
    for (std::size_t i = 0; i < n; ++i)
      nbuf[i] = buf_[(head_ + i) & (cap_ - 1)];
    std::free(buf_);
    buf_ = nbuf;
    cap_ = ncap;
    head_ = 0;
    tail_ = n;
  }

  static constexpr std::size_t kKeep = 4096;
  Runnable** buf_ = nullptr;
  std::size_t cap_ = 0;  // a power of two
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace kettle::detail
