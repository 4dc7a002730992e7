// kettle::Coro: lazy start, symmetric transfer, values, exceptions, deep await chains.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include <kettle/kettle.hpp>

using kettle::Coro;

namespace {

Coro<int> answer() {
  co_return 42;
}
Coro<> nothing() {
  co_return;
}
Coro<std::unique_ptr<int>> boxed(int v) {
  co_return std::make_unique<int>(v);
}

Coro<int> level3() {
  throw std::out_of_range("deep");
  co_return 0;
}
Coro<int> level2() {
  co_return co_await level3() + 1;
}
Coro<int> level1() {
  co_return co_await level2() + 1;
}

Coro<long> add_one(long x) {
  co_return x + 1;
}

Coro<int> after_yield(int x) {
  co_await kettle::sleep(0);
  co_return x;
}

}  // namespace

TEST(Coro, ReturnsValue) {
  auto body = []() -> Coro<int> { co_return co_await answer(); };
  EXPECT_EQ(kettle::run(body()), 42);
}

TEST(Coro, VoidCoro) {
  bool ran = false;
  auto body = [&]() -> Coro<> {
    co_await nothing();
    ran = true;
  };
  kettle::run(body());
  EXPECT_TRUE(ran);
}

TEST(Coro, MoveOnlyResult) {
  auto body = []() -> Coro<std::unique_ptr<int>> {
    std::unique_ptr<int> p = co_await boxed(7);
    co_return p;
  };
  std::unique_ptr<int> p = kettle::run(body());
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, 7);
}

TEST(Coro, ExceptionPropagatesThroughThreeLevels) {
  auto body = []() -> Coro<std::string> {
    try {
      co_await level1();
    } catch (const std::out_of_range& e) {
      co_return e.what();
    }
    co_return "not thrown";
  };
  EXPECT_EQ(kettle::run(body()), "deep");
  EXPECT_THROW(kettle::run(level1()), std::out_of_range);
}

TEST(Coro, IsLazyAndNeverRunsIfNotAwaited) {
  int runs = 0;
  auto counted = [&]() -> Coro<> {
    ++runs;
    co_return;
  };
  {
    Coro<> c = counted();
    EXPECT_EQ(runs, 0);
  }  // destroyed without being awaited: not an error, never runs
  EXPECT_EQ(runs, 0);
}

TEST(Coro, DestroyingAnUnawaitedCoroFreesItsArguments) {
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> weak = token;
  auto holder = [](std::shared_ptr<int> p) -> Coro<int> { co_return *p; };
  {
    Coro<int> c = holder(std::move(token));
    EXPECT_FALSE(weak.expired());
  }
  EXPECT_TRUE(weak.expired());
}

TEST(Coro, AwaitingTwiceRaisesRuntimeError) {
  auto body = []() -> Coro<> {
    Coro<int> c = answer();
    EXPECT_EQ(co_await c, 42);
    EXPECT_THROW(co_await c, kettle::RuntimeError);
    Coro<int> empty;
    EXPECT_THROW(co_await empty, kettle::RuntimeError);
  };
  kettle::run(body());
}

TEST(Coro, ResumesAfterSuspendingInside) {
  auto body = []() -> Coro<int> {
    int total = 0;
    for (int i = 0; i < 100; ++i)
      total += co_await after_yield(i);
    co_return total;
  };
  EXPECT_EQ(kettle::run(body()), 4950);
}

// A million sequential awaits of a Coro that completes without suspending. With naive
// symmetric transfer this overflows the stack at -O0 (GCC does not make it a tail call
// there); the debug build runs this test.
TEST(DeepAwait, MillionSequentialAwaits) {
  auto body = []() -> Coro<long> {
    long x = 0;
    for (int i = 0; i < 1'000'000; ++i)
      x = co_await add_one(x);
    co_return x;
  };
  EXPECT_EQ(kettle::run(body()), 1'000'000);
}

// The same with the chain suspending to the loop every so often.
TEST(DeepAwait, MillionAwaitsWithSuspensions) {
  auto maybe_yield = [](int i) -> Coro<int> {
    if (i % 1000 == 0) co_await kettle::sleep(0);
    co_return 1;
  };
  auto body = [&]() -> Coro<long> {
    long n = 0;
    for (int i = 0; i < 1'000'000; ++i)
      n += co_await maybe_yield(i);
    co_return n;
  };
  EXPECT_EQ(kettle::run(body()), 1'000'000);
}

TEST(DeepAwait, DeepRecursion) {
  struct R {
    static Coro<int> depth(int n) {
      if (n == 0) {
        co_await kettle::sleep(0);
        co_return 0;
      }
      co_return co_await depth(n - 1) + 1;
    }
  };
  EXPECT_EQ(kettle::run(R::depth(1000)), 1000);
}
