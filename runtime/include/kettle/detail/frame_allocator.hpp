// Internal: where coroutine frames come from. Every Coro's promise allocates its frame here.
//
// A frame of a given coroutine always has the same size, and a program that spawns tasks
// makes and frees the same few sizes over and over: each thread keeps a free list per size
// class (16-byte steps up to kMaxPooledFrame), so that a frame costs a pointer pop instead of
// a malloc and a free. Larger frames go to the global allocator. A frame freed on another
// thread joins that thread's lists (every block is a plain ::operator new block of its
// class's size, so any thread may keep or free it). The lists hold at most kCacheBytes per
// thread; an event loop about to wait gives back all but kIdleBytes (trim_frame_cache), and
// a thread's lists are freed when it exits.
//
// KETTLE_FRAME_ALLOCATOR=0 (kettle/config.hpp; CMake option KETTLE_FRAME_ALLOCATOR, off in
// AddressSanitizer builds so that ASan sees every frame) makes every frame a plain
// ::operator new of its class's size.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <cstdint>
#include <new>

#include "kettle/config.hpp"

namespace kettle::detail {

inline constexpr std::size_t kFrameGranule = 16;
inline constexpr std::size_t kMaxPooledFrame = 1024;
inline constexpr std::size_t kFrameClasses = kMaxPooledFrame / kFrameGranule;
inline constexpr std::size_t kCacheBytes = std::size_t(32) << 20;
inline constexpr std::size_t kIdleBytes = std::size_t(256) << 10;

// The size class of an n-byte frame (n >= 1), and the size of its blocks.
constexpr std::size_t frame_class(std::size_t n) noexcept {
  return (n - 1) / kFrameGranule;
}
constexpr std::size_t frame_block_size(std::size_t n) noexcept {
  return n <= kMaxPooledFrame ? (frame_class(n) + 1) * kFrameGranule : n;
}

struct FreeFrame {
  FreeFrame* next;
};

struct FrameCache {
  FreeFrame* head[kFrameClasses];
  std::size_t bytes;  // held in all lists
};

// This thread's lists; null until its first frame goes through the slow path, and again
// once the thread is exiting. Initial-exec: one load on the fast path (see tls_loop).
[[gnu::tls_model("initial-exec")]] inline constinit thread_local FrameCache* tls_frame_cache =
    nullptr;

void* frame_alloc_slow(std::size_t n);
void frame_free_slow(void* p, std::size_t n) noexcept;
// Gives back what this thread's lists hold beyond kIdleBytes (an event loop about to wait).
void trim_frame_cache() noexcept;
// What this thread's lists hold, in bytes (tests).
std::size_t frame_cache_bytes() noexcept;

[[gnu::always_inline]] inline void* frame_alloc(std::size_t n) {
#if KETTLE_FRAME_ALLOCATOR
  const std::size_t c = frame_class(n);
  FrameCache* cache = tls_frame_cache;
  if (c < kFrameClasses && cache) [[likely]] {
    if (FreeFrame* f = cache->head[c]) [[likely]] {
      cache->head[c] = f->next;
      cache->bytes -= (c + 1) * kFrameGranule;
      return f;
    }
  }
  return frame_alloc_slow(n);
#else
  return ::operator new(frame_block_size(n));
#endif
}

[[gnu::always_inline]] inline void frame_free(void* p, std::size_t n) noexcept {
#if KETTLE_FRAME_ALLOCATOR
  const std::size_t c = frame_class(n);
  FrameCache* cache = tls_frame_cache;
  const std::size_t size = (c + 1) * kFrameGranule;
  if (c < kFrameClasses && cache && cache->bytes + size <= kCacheBytes) [[likely]] {
    auto* f = static_cast<FreeFrame*>(p);
    f->next = cache->head[c];
    cache->head[c] = f;
    cache->bytes += size;
    return;
  }
  frame_free_slow(p, n);
#else
  ::operator delete(p, frame_block_size(n));
#endif
}

}  // namespace kettle::detail
