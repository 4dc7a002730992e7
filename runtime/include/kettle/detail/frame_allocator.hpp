// Internal: where coroutine frames come from. Every Coro's promise allocates its frame here.
//
// A frame of a given coroutine always has the same size, and a program that spawns tasks
// makes and frees the same few sizes over and over: a thread that allocates frames keeps a
// free list per size class (16-byte steps up to kMaxPooledFrame), so that a frame costs a
// pointer pop instead of a malloc and a free. Larger frames go to the global allocator.
// Every block is a plain ::operator new block of its class's size, so any thread may keep
// or free it: a frame freed on another thread joins that thread's lists if it has some (it
// allocates frames too), else goes back to the global allocator.
//
// What a thread keeps is bounded: up to kCacheBytes while an event loop runs on it (a burst
// of tasks reuses its frames), kIdleBytes otherwise. A loop about to wait gives back what is
// over kIdleBytes, a few MiB at a time; a thread's lists are freed when it exits.
//
// KETTLE_FRAME_ALLOCATOR=0 (kettle/config.hpp; the CMake option, off by default in
// AddressSanitizer builds) or compiling with AddressSanitizer makes every frame a plain
// ::operator new of its class's size, so that ASan sees each one.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <cstdint>
#include <new>

#include "kettle/config.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define KETTLE_DETAIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KETTLE_DETAIL_ASAN 1
#endif
#endif
#if KETTLE_FRAME_ALLOCATOR && !defined(KETTLE_DETAIL_ASAN)
#define KETTLE_DETAIL_FRAME_LISTS 1
#else
#define KETTLE_DETAIL_FRAME_LISTS 0
#endif

namespace kettle::detail {

// Whether this translation unit takes frames from the free lists.
inline constexpr bool kFrameListsOn = KETTLE_DETAIL_FRAME_LISTS;

inline constexpr std::size_t kMaxPooledFrame = 1024;
inline constexpr std::size_t kCacheBytes = std::size_t(32) << 20;
inline constexpr std::size_t kIdleBytes = std::size_t(256) << 10;

// Size classes are 16 bytes apart and 8 short of a multiple of 16 (8, 24, 40, ...): what a
// malloc chunk of that multiple holds (glibc keeps 8 bytes of each 16-aligned chunk), so that
// rounding a frame up to its class costs no memory.
constexpr std::size_t class_size(std::size_t c) noexcept {
  return c * 16 + 8;
}
// The size class of an n-byte frame (n >= 1), and the size of its blocks.
constexpr std::size_t frame_class(std::size_t n) noexcept {
  return (n + 7) / 16;
}
inline constexpr std::size_t kFrameClasses = frame_class(kMaxPooledFrame) + 1;
constexpr std::size_t frame_block_size(std::size_t n) noexcept {
  return n <= kMaxPooledFrame ? class_size(frame_class(n)) : n;
}
static_assert(class_size(frame_class(kMaxPooledFrame)) >= kMaxPooledFrame);

// ::operator delete with the size where the compiler has sized deallocation (clang before
// 19 does not by default).
inline void free_block(void* p, std::size_t n) noexcept {
#if defined(__cpp_sized_deallocation)
  ::operator delete(p, n);
#else
  (void)n;
  ::operator delete(p);
#endif
}

struct FreeFrame {
  FreeFrame* next;
};

struct FrameCache {
  FreeFrame* head[kFrameClasses];
  std::size_t bytes;  // held in all lists
  std::size_t limit;  // kCacheBytes while a loop runs on this thread, else kIdleBytes
};

// This thread's lists; null until it first allocates a frame, and again once it is exiting.
// Initial-exec: one load on the fast path (see tls_loop).
[[gnu::tls_model("initial-exec")]] inline constinit thread_local FrameCache* tls_frame_cache =
    nullptr;

void* frame_alloc_slow(std::size_t n);
// Gives back what this thread's lists hold beyond kIdleBytes, at most a few MiB per call
// (an event loop about to wait).
void trim_frame_cache() noexcept;
// An event loop starts (true) or stops (false) running on this thread: how much it keeps.
void frame_cache_loop_running(bool running) noexcept;
// What this thread's lists hold, in bytes, and how many threads have lists (tests).
std::size_t frame_cache_bytes() noexcept;
std::size_t frame_cache_threads() noexcept;

[[gnu::always_inline]] inline void* frame_alloc(std::size_t n) {
#if KETTLE_DETAIL_FRAME_LISTS
  const std::size_t c = frame_class(n);
  FrameCache* cache = tls_frame_cache;
  if (c < kFrameClasses && cache) [[likely]] {
    if (FreeFrame* f = cache->head[c]) [[likely]] {
      cache->head[c] = f->next;
      cache->bytes -= class_size(c);
      return f;
    }
  }
  return frame_alloc_slow(n);
#else
  return ::operator new(frame_block_size(n));
#endif
}

[[gnu::always_inline]] inline void frame_free(void* p, std::size_t n) noexcept {
#if KETTLE_DETAIL_FRAME_LISTS
  const std::size_t c = frame_class(n);
  FrameCache* cache = tls_frame_cache;
  const std::size_t size = class_size(c);
  if (c < kFrameClasses && cache && cache->bytes + size <= cache->limit) [[likely]] {
    cache->head[c] = ::new (p) FreeFrame{cache->head[c]};
    cache->bytes += size;
    return;
  }
  // No lists (a thread that never allocated frames, or one exiting), a large frame, or the
  // lists are full: back to the global allocator.
#endif
  free_block(p, frame_block_size(n));
}

}  // namespace kettle::detail
