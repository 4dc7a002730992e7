#include "kettle/detail/frame_allocator.hpp"

#include <atomic>

namespace kettle::detail {

namespace {

std::atomic<std::size_t> live_caches{0};

#if KETTLE_DETAIL_FRAME_LISTS
// How much one trim gives back: a loop about to wait does not free a whole burst at once.
constexpr std::size_t kTrimStep = std::size_t(4) << 20;

void release_until(FrameCache& cache, std::size_t keep, std::size_t at_most) noexcept {
  std::size_t released = 0;
  for (std::size_t c = kFrameClasses; c-- > 0;) {
    const std::size_t size = class_size(c);
    while (cache.bytes > keep && released < at_most && cache.head[c]) {
      FreeFrame* f = cache.head[c];
      cache.head[c] = f->next;
      cache.bytes -= size;
      released += size;
      free_block(f, size);
    }
  }
}

// Owns this thread's lists: frees them when the thread exits. Frames freed later in the
// thread's exit (by other thread_local destructors) go straight to the global allocator.
struct CacheOwner {
  FrameCache cache{};
  CacheOwner() noexcept {
    cache.limit = kIdleBytes;
    live_caches.fetch_add(1, std::memory_order_relaxed);
  }
  ~CacheOwner() {
    tls_frame_cache = nullptr;
    gone = true;
    release_until(cache, 0, static_cast<std::size_t>(-1));
    live_caches.fetch_sub(1, std::memory_order_relaxed);
  }
  static thread_local bool gone;
};
thread_local bool CacheOwner::gone = false;

FrameCache* this_thread_cache() noexcept {
  if (!tls_frame_cache && !CacheOwner::gone) {
    static thread_local CacheOwner owner;  // registers the destructor on first use
    tls_frame_cache = &owner.cache;
  }
  return tls_frame_cache;
}
#endif

}  // namespace

#if KETTLE_DETAIL_FRAME_LISTS
void* frame_alloc_slow(std::size_t n) {
  // A thread that allocates frames gets lists, so that its frames can come back to it.
  if (n <= kMaxPooledFrame) this_thread_cache();
  return ::operator new(frame_block_size(n));
}

void trim_frame_cache() noexcept {
  if (FrameCache* cache = tls_frame_cache; cache && cache->bytes > kIdleBytes)
    release_until(*cache, kIdleBytes, kTrimStep);
}

void frame_cache_loop_running(bool running) noexcept {
  FrameCache* cache = running ? this_thread_cache() : tls_frame_cache;
  if (!cache) return;
  cache->limit = running ? kCacheBytes : kIdleBytes;
  if (!running) release_until(*cache, kIdleBytes, static_cast<std::size_t>(-1));
}

std::size_t frame_cache_bytes() noexcept {
  return tls_frame_cache ? tls_frame_cache->bytes : 0;
}
#else
// Called by the headers of a program built without ASan against a library built with it.
void* frame_alloc_slow(std::size_t n) {
  return ::operator new(frame_block_size(n));
}
void trim_frame_cache() noexcept {}
void frame_cache_loop_running(bool) noexcept {}
std::size_t frame_cache_bytes() noexcept {
  return 0;
}
#endif

std::size_t frame_cache_threads() noexcept {
  return live_caches.load(std::memory_order_relaxed);
}

}  // namespace kettle::detail
