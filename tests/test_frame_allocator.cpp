// Coroutine frames from thread-local free lists (kettle/detail/frame_allocator.hpp): reuse,
// frames freed on another thread, the bound on what a thread keeps, trimming when a loop
// goes idle, and which builds have it (off under AddressSanitizer, on under TSan/UBSan).
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

using kettle::Coro;
namespace detail = kettle::detail;

#if defined(KETTLE_DETAIL_ASAN)
static_assert(!detail::kFrameListsOn, "ASan builds must see every frame");
#endif

namespace {

Coro<int> small(int i) {
  co_return i;
}

// A frame with a large local: another size class.
Coro<int> fat(int i) {
  std::array<char, 400> buf;
  std::memset(buf.data(), i, buf.size());
  co_await kettle::sleep(0);
  co_return buf[i % 400];
}

// Made out of line, so that no compiler can elide the frame's allocation onto the stack.
[[gnu::noinline]] Coro<int> make_small(int i) {
  return small(i);
}
[[gnu::noinline]] Coro<int> make_fat(int i) {
  return fat(i);
}

template <class T>
void* frame_of(Coro<T>& c) {
  return detail::CoroAccess::handle(c).address();
}

template <class T>
void drop(Coro<T>& c) {
  detail::CoroAccess::discard(c);  // destroyed without the never-awaited report
}

}  // namespace

// A freed frame is reused by the next coroutine of its size, and only of its size.
TEST(FrameAllocator, AFreedFrameIsReusedBySameSizedCoroutines) {
  if (!detail::kFrameListsOn) GTEST_SKIP() << "built without the frame allocator";
  Coro<int> a = make_small(1);
  void* first = frame_of(a);
  drop(a);
  Coro<int> b = make_fat(2);
  EXPECT_NE(frame_of(b), first);
  Coro<int> c = make_small(3);
  EXPECT_EQ(frame_of(c), first);
  drop(b);
  drop(c);
}

TEST(FrameAllocator, ValuesSurviveRecycling) {
  // Frames recycled many times over, through tasks, gather and deep awaits, keep their
  // values apart: nothing freed is still in use.
  kettle::run([]() -> Coro<> {
    for (int round = 0; round < 20; ++round) {
      std::vector<Coro<int>> cs;
      for (int i = 0; i < 500; ++i)
        cs.push_back(i % 2 ? fat(i) : small(i));
      std::vector<int> r = co_await kettle::gather(cs);
      for (int i = 0; i < 500; ++i)
        EXPECT_EQ(r[static_cast<std::size_t>(i)], i % 2 ? char(i) : i);
    }
  }());
}

TEST(FrameAllocator, AFrameFreedOnAnotherThreadJoinsThatThreadsLists) {
  constexpr int n = 800;  // within what a thread without a running loop keeps
  std::vector<Coro<int>> made;
  std::set<void*> frames;
  for (int i = 0; i < n; ++i) {
    made.push_back(make_small(i));
    frames.insert(frame_of(made.back()));
  }
  std::size_t here_before = detail::frame_cache_bytes();
  std::size_t threads_before = detail::frame_cache_threads();
  std::thread other([&] {
    drop(made[0]);  // a thread that never allocated a frame keeps none
    EXPECT_EQ(detail::frame_cache_bytes(), 0u);
    Coro<int> mine = make_small(-1);  // now it has lists
    drop(mine);
    if (detail::kFrameListsOn) {
      EXPECT_EQ(detail::frame_cache_threads(), threads_before + 1);
    }
    std::size_t before = detail::frame_cache_bytes();
    for (auto& c : made)
      drop(c);
    if (detail::kFrameListsOn) {
      EXPECT_GT(detail::frame_cache_bytes(), before);
      // Coroutines made on this thread now get those frames back.
      std::vector<Coro<int>> again;
      int reused = 0;
      for (int i = 1; i < n; ++i) {
        again.push_back(make_small(i));
        reused += frames.count(frame_of(again.back())) ? 1 : 0;
      }
      EXPECT_EQ(reused, n - 1);
      for (auto& c : again)
        drop(c);
    }
  });
  other.join();
  EXPECT_EQ(detail::frame_cache_bytes(), here_before);
  // The other thread's lists were freed as it exited.
  EXPECT_EQ(detail::frame_cache_threads(), threads_before);
}

TEST(FrameAllocator, TasksMadeOnOneLoopThreadAndFinishedOnAnother) {
  // Coroutines created on this thread run and finish on another thread's loop, many times:
  // their frames are freed there (a race here is TSan's to find).
  for (int round = 0; round < 5; ++round) {
    std::vector<Coro<int>> cs;
    for (int i = 0; i < 300; ++i)
      cs.push_back(fat(i));
    std::vector<int> r;
    std::thread t([&] {
      r = kettle::run([](std::vector<Coro<int>>& cs) -> Coro<std::vector<int>> {
        co_return co_await kettle::gather(cs);
      }(cs));
    });
    t.join();
    ASSERT_EQ(r.size(), 300u);
    EXPECT_EQ(r[299], char(299));
  }
}

TEST(FrameAllocator, WhatAThreadKeepsIsBounded) {
  if (!detail::kFrameListsOn) GTEST_SKIP() << "built without the frame allocator";
  constexpr std::size_t size = detail::kMaxPooledFrame;
  constexpr std::size_t block = detail::frame_block_size(size);
  auto churn = [](std::size_t n) {
    std::vector<void*> blocks;
    blocks.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      blocks.push_back(detail::frame_alloc(size));
    for (void* b : blocks)
      detail::frame_free(b, size);
  };
  const std::size_t n = detail::kCacheBytes / size + 1000;
  churn(n);  // no loop runs here: a thread keeps little
  EXPECT_LE(detail::frame_cache_bytes(), detail::kIdleBytes);
  EXPECT_GE(detail::frame_cache_bytes(), detail::kIdleBytes - block);
  kettle::run([](auto churn, std::size_t n) -> Coro<> {
    churn(n);  // while a loop runs, a burst is kept up to the bound
    EXPECT_LE(detail::frame_cache_bytes(), detail::kCacheBytes);
    EXPECT_GE(detail::frame_cache_bytes(), detail::kCacheBytes - block);
    int trims = 0;
    while (detail::frame_cache_bytes() > detail::kIdleBytes && trims < 1000) {
      detail::trim_frame_cache();  // a few MiB at a time
      ++trims;
    }
    EXPECT_GT(trims, 1);
    EXPECT_LE(detail::frame_cache_bytes(), detail::kIdleBytes);
    churn(n);
    co_return;
  }(churn, n));
  // Once the loop stops, the thread is back to what it keeps without one.
  EXPECT_LE(detail::frame_cache_bytes(), detail::kIdleBytes);
}

TEST(FrameAllocator, LargeFramesGoToTheGlobalAllocator) {
  std::size_t before = detail::frame_cache_bytes();
  void* p = detail::frame_alloc(detail::kMaxPooledFrame + 1);
  detail::frame_free(p, detail::kMaxPooledFrame + 1);
  EXPECT_EQ(detail::frame_cache_bytes(), before);
}

TEST(FrameAllocator, ALoopThatGoesIdleGivesBackWhatABurstLeft) {
  if (!detail::kFrameListsOn) GTEST_SKIP() << "built without the frame allocator";
  kettle::run([]() -> Coro<> {
    std::vector<Coro<int>> cs;
    for (int i = 0; i < 20'000; ++i)
      cs.push_back(fat(i));
    co_await kettle::gather(cs);
    cs.clear();
    EXPECT_GT(detail::frame_cache_bytes(), detail::kIdleBytes);
    for (int i = 0; i < 20 && detail::frame_cache_bytes() > detail::kIdleBytes; ++i)
      co_await kettle::sleep(0.001);  // each time the loop waits, it trims some
    EXPECT_LE(detail::frame_cache_bytes(), detail::kIdleBytes);
  }());
}
