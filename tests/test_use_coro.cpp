// kettle::use_coro: Asio operations awaited from tasks, with cancellation.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <system_error>

#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using asio::ip::tcp;
using kettle::Coro;
using kettle::Task;

TEST(UseCoro, timer_wait) {
  kettle::run([]() -> Coro<> {
    asio::steady_timer t(kettle::get_running_loop().io_context(), 20ms);
    auto t0 = std::chrono::steady_clock::now();
    co_await t.async_wait(kettle::use_coro);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  }());
}

TEST(UseCoro, cancelling_the_task_cancels_the_operation) {
  kettle::run([]() -> Coro<> {
    asio::steady_timer t(kettle::get_running_loop().io_context(), 3600s);
    auto waiter = [&]() -> Coro<> { co_await t.async_wait(kettle::use_coro); };
    Task<> task = kettle::create_task(waiter());
    co_await kettle::sleep(5ms);
    auto t0 = std::chrono::steady_clock::now();
    task.cancel("enough");
    try {
      co_await task;
      ADD_FAILURE() << "expected CancelledError";
    } catch (const kettle::CancelledError& e) {
      EXPECT_EQ(e.message(), "enough");
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_TRUE(task.cancelled());
  }());
}

TEST(UseCoro, error_becomes_system_error) {
  kettle::run([]() -> Coro<> {
    auto& io = kettle::get_running_loop().io_context();
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto port = acc.local_endpoint().port();
    acc.close();  // nobody listens there any more
    tcp::socket s(io);
    try {
      co_await s.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                               kettle::use_coro);
      ADD_FAILURE() << "connect to a closed port succeeded";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), asio::error::connection_refused);
    }
  }());
}

TEST(UseCoro, tcp_echo_round_trip_and_cancelled_accept) {
  kettle::run([]() -> Coro<> {
    auto& io = kettle::get_running_loop().io_context();
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto ep = acc.local_endpoint();
    auto server = [&]() -> Coro<> {
      tcp::socket peer = co_await acc.async_accept(kettle::use_coro);
      char buf[5];
      std::size_t n = co_await asio::async_read(peer, asio::buffer(buf), kettle::use_coro);
      co_await asio::async_write(peer, asio::buffer(buf, n), kettle::use_coro);
    };
    Task<> srv = kettle::create_task(server());
    tcp::socket c(io);
    co_await c.async_connect(ep, kettle::use_coro);
    co_await asio::async_write(c, asio::buffer("hello", 5), kettle::use_coro);
    char back[5];
    co_await asio::async_read(c, asio::buffer(back), kettle::use_coro);
    EXPECT_EQ(std::string(back, 5), "hello");
    co_await srv;

    // An accept that nobody connects to is cancelled with its task.
    auto lonely = [&]() -> Coro<> { (void)co_await acc.async_accept(kettle::use_coro); };
    Task<> t = kettle::create_task(lonely());
    co_await kettle::sleep(2ms);
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);
  }());
}

TEST(UseCoro, result_that_races_the_cancellation_is_not_lost) {
  kettle::run([]() -> Coro<> {
    auto& io = kettle::get_running_loop().io_context();
    bool got_result = false, cancelled_later = false;
    auto op = [&]() -> Coro<> {
      // asio::post completes at the next poll and cannot be cancelled.
      co_await asio::post(io, kettle::use_coro);
      got_result = true;
      try {
        co_await kettle::sleep(3600s);
      } catch (const kettle::CancelledError&) {
        cancelled_later = true;
        throw;
      }
    };
    Task<> t = kettle::create_task(op());
    co_await kettle::sleep(0);  // t has started the post
    t.cancel();
    EXPECT_THROW(co_await t, kettle::CancelledError);
    EXPECT_TRUE(got_result);       // the operation's completion was delivered
    EXPECT_TRUE(cancelled_later);  // and the cancellation arrived at the next await
  }());
}

TEST(UseCoro, outside_a_task_raises) {
  // Await through a Coro driven by a task is fine; the guard is that the awaiter needs a
  // current task, which every kettle awaitable checks.
  EXPECT_THROW(kettle::detail::current_task_for_await(), kettle::RuntimeError);
}
