// An SPMD program under `mpiexec -n 4`: every rank runs main (GoogleTest runs the same tests
// in the same order on every rank, so collectives match). MPICommExecutor, and the
// awaitable point-to-point and collective operations on kettle's loop.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "kettle/kettle.hpp"
#include "kettle/mpi.hpp"

KETTLE_MPI_SPMD;

using namespace std::chrono_literals;
namespace mpi = kettle::mpi;

namespace {

int square(int x) {
  return x * x;
}
int my_rank() {
  return mpi::rank();
}

struct Record {
  std::string name;
  std::map<std::string, int> counts;
  template <class A>
  void serialize(A& a) {
    a(name, counts);
  }
};

int me() {
  return mpi::rank();
}
int ranks() {
  return mpi::size();
}

// mpi4py test_futures.py: MPICommExecutorTest
TEST(MPICommExecutor, test_basic) {
  mpi::MPICommExecutor ex(MPI_COMM_WORLD, 0);
  if (me() == 0) {
    ASSERT_TRUE(ex);
    EXPECT_EQ(ex->num_workers(), 3u);
    EXPECT_EQ(ex->submit(square, 9).result(), 81);
    std::vector<int> in{1, 2, 3, 4, 5, 6, 7};
    EXPECT_EQ(ex->map(square, in, 2).get(), (std::vector<int>{1, 4, 9, 16, 25, 36, 49}));
    for (int i = 0; i < 10; ++i)
      EXPECT_NE(ex->submit(my_rank).result(), 0);
  } else {
    EXPECT_FALSE(ex);  // served until the root's executor shut down
    EXPECT_THROW(*ex, kettle::RuntimeError);
  }
}

TEST(MPICommExecutor, test_root) {
  mpi::MPICommExecutor ex(MPI_COMM_WORLD, ranks() - 1);
  if (me() == ranks() - 1) {
    ASSERT_TRUE(ex);
    for (int i = 0; i < 10; ++i)
      EXPECT_NE(ex->submit(my_rank).result(), ranks() - 1);
  } else {
    EXPECT_FALSE(ex);
  }
}

TEST(MPICommExecutor, test_arg_root) {
  EXPECT_THROW(mpi::MPICommExecutor(MPI_COMM_WORLD, -1), kettle::ValueError);
  EXPECT_THROW(mpi::MPICommExecutor(MPI_COMM_WORLD, ranks()), kettle::ValueError);
  EXPECT_THROW(mpi::MPICommExecutor(MPI_COMM_SELF, 0), kettle::ValueError);
}

TEST(MPIPoolExecutor, test_no_workers_in_spmd) {
  EXPECT_THROW(mpi::MPIPoolExecutor(), kettle::RuntimeError);
}

// A token around the ring, with send/recv, while a heartbeat ticks on the same loop.
TEST(Awaitables, test_ring) {
  auto ring = []() -> kettle::Coro<int> {
    int beats = 0;
    auto heartbeat = [](int& n) -> kettle::Coro<void> {
      for (;;) {
        co_await kettle::sleep(0.001);
        ++n;
      }
    };
    auto hb = kettle::create_task(heartbeat(beats));
    int next = (me() + 1) % ranks(), prev = (me() + ranks() - 1) % ranks();
    int token = 0;
    for (int lap = 0; lap < 20; ++lap) {
      if (me() == 0) {
        co_await mpi::send(token + 1, next, 7);
        token = co_await mpi::recv<int>(prev, 7);
      } else {
        token = co_await mpi::recv<int>(prev, 7);
        co_await mpi::send(token + 1, next, 7);
      }
    }
    hb.cancel();
    co_return token;
  };
  int token = kettle::run(ring());
  if (me() == 0) {
    EXPECT_EQ(token, 20 * ranks());
  }
}

TEST(Awaitables, test_types) {
  auto body = []() -> kettle::Coro<void> {
    if (me() == 0) {
      std::vector<double> v{1.5, 2.5, 3.5};
      co_await mpi::send(v, 1, 1);
      co_await mpi::send(std::string("hello"), 1, 2);
      Record r{"kettle", {{"a", 1}, {"b", 2}}};
      co_await mpi::send(r, 1, 3);
      std::vector<int> none;
      co_await mpi::send(none, 1, 4);
    } else if (me() == 1) {
      MPI_Status st;
      auto v = co_await mpi::recv<std::vector<double>>(0, 1, MPI_COMM_WORLD, &st);
      EXPECT_EQ(v, (std::vector<double>{1.5, 2.5, 3.5}));
      EXPECT_EQ(st.MPI_SOURCE, 0);
      std::string s = co_await mpi::recv<std::string>(0, 2);
      EXPECT_EQ(s, "hello");
      Record r = co_await mpi::recv<Record>(0, 3);
      EXPECT_EQ(r.name, "kettle");
      EXPECT_EQ(r.counts.at("b"), 2);
      std::vector<int> none = co_await mpi::recv<std::vector<int>>(0, 4);
      EXPECT_TRUE(none.empty());
    }
    co_await mpi::barrier();
  };
  kettle::run(body());
}

// A message of the wrong size for T: ValueError, never a short or overlong read.
TEST(Awaitables, test_wrong_size) {
  auto body = []() -> kettle::Coro<void> {
    if (me() == 0) {
      co_await mpi::send(std::string("12345"), 1, 5);
      co_await mpi::send(std::string("abc"), 1, 6);
      co_await mpi::send(std::string("not cereal"), 1, 8);
    } else if (me() == 1) {
      bool raised = false;
      try {
        co_await mpi::recv<std::int32_t>(0, 5);  // 5 bytes for a 4-byte int: truncated
      } catch (const kettle::ValueError&) {
        raised = true;
      }
      EXPECT_TRUE(raised);
      raised = false;
      try {
        co_await mpi::recv<std::vector<std::int32_t>>(0, 6);
      } catch (const kettle::ValueError&) {
        raised = true;
      }
      EXPECT_TRUE(raised);
      raised = false;
      try {
        co_await mpi::recv<Record>(0, 8);
      } catch (const kettle::ValueError&) {
        raised = true;
      }
      EXPECT_TRUE(raised);
    }
    co_await mpi::barrier();
  };
  kettle::run(body());
}

// A receive with no sender, cancelled by a timeout, leaves nothing behind: the next
// message on that tag goes to the next receive.
TEST(Awaitables, test_recv_cancelled) {
  auto body = []() -> kettle::Coro<void> {
    if (me() == 1) {
      bool timed_out = false;
      try {
        co_await kettle::wait_for(mpi::recv<int>(0, 9), 0.05);
      } catch (const kettle::TimeoutError&) {
        timed_out = true;
      }
      EXPECT_TRUE(timed_out);
      try {  // a vector (probe-based) receive too
        co_await kettle::wait_for(mpi::recv<std::vector<int>>(0, 10), 0.05);
      } catch (const kettle::TimeoutError&) {
        timed_out = false;
      }
      EXPECT_FALSE(timed_out);
    }
    co_await mpi::barrier();
    if (me() == 0) {
      std::vector<int> v{1, 2};
      co_await mpi::send(41, 1, 9);
      co_await mpi::send(v, 1, 10);
    } else if (me() == 1) {
      int x = co_await mpi::recv<int>(0, 9);
      EXPECT_EQ(x, 41);
      std::vector<int> v = co_await mpi::recv<std::vector<int>>(0, 10);
      EXPECT_EQ(v, (std::vector<int>{1, 2}));
    }
    co_await mpi::barrier();
  };
  kettle::run(body());
}

TEST(Awaitables, test_collectives) {
  auto body = []() -> kettle::Coro<void> {
    int sum = co_await mpi::allreduce(me() + 1, MPI_SUM);
    EXPECT_EQ(sum, ranks() * (ranks() + 1) / 2);
    double mx = co_await mpi::allreduce(static_cast<double>(me()), MPI_MAX);
    EXPECT_EQ(mx, ranks() - 1);
    std::vector<long> v{me() * 1L, 1L};
    auto vs = co_await mpi::allreduce(v, MPI_SUM);
    EXPECT_EQ(vs[1], ranks());
    int b = co_await mpi::bcast(me() == 2 ? 77 : 0, 2);
    EXPECT_EQ(b, 77);
    std::vector<int> mine;
    if (me() == 0) mine = {5, 6, 7};
    std::vector<int> bv = co_await mpi::bcast(mine);
    EXPECT_EQ(bv, (std::vector<int>{5, 6, 7}));
    Record r;
    if (me() == 0) r = Record{"root", {{"x", 9}}};
    Record got = co_await mpi::bcast(r);
    EXPECT_EQ(got.name, "root");
    EXPECT_EQ(got.counts.at("x"), 9);
    co_await mpi::barrier();
  };
  kettle::run(body());
}

// isend/irecv: started now, in tasks of their own; gather waits for both.
TEST(Awaitables, test_isend_irecv) {
  auto body = []() -> kettle::Coro<int> {
    int next = (me() + 1) % ranks(), prev = (me() + ranks() - 1) % ranks();
    auto r = mpi::irecv<int>(prev, 11);
    auto s = mpi::isend(me(), next, 11);
    co_await s;
    co_return co_await r;
  };
  EXPECT_EQ(kettle::run(body()), (me() + ranks() - 1) % ranks());
}

// A cancelled collective is not abandoned: the task finishes it, then raises CancelledError.
// Rank 0 joins the barrier only once every other rank has cancelled its own.
TEST(Awaitables, test_collective_cancel_waits) {
  auto body = []() -> kettle::Coro<bool> {
    if (me() == 0) {
      for (int r = 1; r < ranks(); ++r)
        co_await mpi::recv<int>(MPI_ANY_SOURCE, 20);
      co_await mpi::barrier();
      co_return true;
    }
    auto t = kettle::create_task(mpi::barrier());
    co_await kettle::sleep(0.01);
    t.cancel();
    co_await mpi::send(1, 0, 20);
    bool cancelled = false;
    try {
      co_await t;  // completes once rank 0 joins, then raises
    } catch (const kettle::CancelledError&) {
      cancelled = true;
    }
    co_return cancelled;
  };
  EXPECT_TRUE(kettle::run(body()));
  kettle::run(mpi::barrier());
}

// bcast of a container is two collectives; a cancel between them must not leave the other
// ranks in the second alone: the task finishes both, then raises.
TEST(Awaitables, test_bcast_cancel_finishes) {
  auto body = []() -> kettle::Coro<bool> {
    if (me() == 0) {
      for (int r = 1; r < ranks(); ++r)
        co_await mpi::recv<int>(MPI_ANY_SOURCE, 21);
      std::vector<int> v{1, 2, 3};
      std::vector<int> got = co_await mpi::bcast(v);
      co_return got == v;
    }
    auto t = kettle::create_task(mpi::bcast(std::vector<int>{}));
    co_await kettle::sleep(0.01);
    t.cancel();
    co_await mpi::send(1, 0, 21);
    bool cancelled = false;
    try {
      co_await t;
    } catch (const kettle::CancelledError&) {
      cancelled = true;
    }
    co_return cancelled;
  };
  EXPECT_TRUE(kettle::run(body()));
  kettle::run(mpi::barrier());  // every rank got through both broadcasts
}

// A message longer than T: ValueError (MPI's truncation), and the next message is intact.
TEST(Awaitables, test_recv_too_long) {
  auto body = []() -> kettle::Coro<void> {
    if (me() == 0) {
      std::int64_t big = 1;
      co_await mpi::send(big, 1, 22);
      co_await mpi::send(std::int32_t{7}, 1, 22);
    } else if (me() == 1) {
      bool raised = false;
      try {
        co_await mpi::recv<std::int32_t>(0, 22);
      } catch (const kettle::ValueError&) {
        raised = true;
      }
      EXPECT_TRUE(raised);
      std::int32_t next = co_await mpi::recv<std::int32_t>(0, 22);
      EXPECT_EQ(next, 7);
    }
    co_await mpi::barrier();
  };
  kettle::run(body());
}

TEST(MPICommExecutor, test_max_workers) {
  mpi::MPIPoolOptions o;
  o.max_workers = 1;
  mpi::MPICommExecutor ex(MPI_COMM_WORLD, 0, o);
  if (ex) {
    EXPECT_EQ(ex->num_workers(), 1u);
    for (int i = 0; i < 10; ++i)
      EXPECT_EQ(ex->submit(my_rank).result(), 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  mpi::init();
  testing::InitGoogleTest(&argc, argv);
  // One report, from rank 0 (KETTLE_MPI_TEST_ALL_RANKS=1: from every rank); a failure on
  // any rank fails the exit status all the same.
  if (mpi::rank() != 0 && !std::getenv("KETTLE_MPI_TEST_ALL_RANKS")) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  return RUN_ALL_TESTS();
}
