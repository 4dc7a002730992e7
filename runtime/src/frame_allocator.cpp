#include "kettle/detail/frame_allocator.hpp"

namespace kettle::detail {

#if KETTLE_FRAME_ALLOCATOR
namespace {

void release_until(FrameCache& cache, std::size_t keep) noexcept {
  for (std::size_t c = kFrameClasses; c-- > 0 && cache.bytes > keep;) {
    const std::size_t size = (c + 1) * kFrameGranule;
    while (FreeFrame* f = cache.head[c]) {
      if (cache.bytes <= keep) break;
      cache.head[c] = f->next;
      cache.bytes -= size;
      ::operator delete(f, size);
    }
  }
}

// Owns this thread's lists: frees them when the thread exits. Frames freed later in the
// thread's exit (by other thread_local destructors) go straight to the global allocator.
struct CacheOwner {
  FrameCache cache{};
  ~CacheOwner() {
    tls_frame_cache = nullptr;
    gone = true;
    release_until(cache, 0);
  }
  static thread_local bool gone;
};
thread_local bool CacheOwner::gone = false;

FrameCache* this_thread_cache() noexcept {
  if (tls_frame_cache || CacheOwner::gone) return tls_frame_cache;
  try {
    static thread_local CacheOwner owner;  // registers the destructor on first use
    tls_frame_cache = &owner.cache;
  } catch (...) {  // no memory for the registration: this thread goes without lists
  }
  return tls_frame_cache;
}

}  // namespace

void* frame_alloc_slow(std::size_t n) {
  if (n <= kMaxPooledFrame) this_thread_cache();  // so that the frame can come back here
  return ::operator new(frame_block_size(n));
}

void frame_free_slow(void* p, std::size_t n) noexcept {
  if (n <= kMaxPooledFrame) {
    FrameCache* cache = this_thread_cache();
    const std::size_t c = frame_class(n), size = (c + 1) * kFrameGranule;
    if (cache && cache->bytes + size <= kCacheBytes) {
      auto* f = static_cast<FreeFrame*>(p);
      f->next = cache->head[c];
      cache->head[c] = f;
      cache->bytes += size;
      return;
    }
  }
  ::operator delete(p, frame_block_size(n));
}

void trim_frame_cache() noexcept {
  if (FrameCache* cache = tls_frame_cache; cache && cache->bytes > kIdleBytes)
    release_until(*cache, kIdleBytes);
}

std::size_t frame_cache_bytes() noexcept {
  return tls_frame_cache ? tls_frame_cache->bytes : 0;
}
#else
void* frame_alloc_slow(std::size_t n) {
  return ::operator new(frame_block_size(n));
}
void frame_free_slow(void* p, std::size_t n) noexcept {
  ::operator delete(p, frame_block_size(n));
}
void trim_frame_cache() noexcept {}
std::size_t frame_cache_bytes() noexcept {
  return 0;
}
#endif

}  // namespace kettle::detail
