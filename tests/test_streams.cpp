// kettle streams: StreamReader, StreamWriter, open_connection, start_server. Names follow
// CPython's test_asyncio/test_streams.py (and test_server.py for servers); the rest are
// kettle's own (cancel safety, chunking, fuzzing against a model of asyncio's reader).
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <kettle/kettle.hpp>

#include "helpers.hpp"

#include "peers.hpp"

using namespace std::chrono_literals;
using kettle::Coro;
using kettle::StreamReader;
using kettle::StreamWriter;
using kettle::Task;

namespace {

template <class F>
void run_test(F body) {
  kettle::run(body());
}

const std::string DATA = "line1\nline2\nline3\n";

std::size_t open_sockets() {
  std::size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

std::string temp_socket_path(const char* name) {
  return "/tmp/kettle-test-" + std::to_string(::getpid()) + "-" + name + ".sock";
}

// An echo handler: lines back until EOF.
Coro<> echo_lines(StreamReader reader, StreamWriter writer) {
  while (auto line = co_await reader.next_line()) {
    writer.write(*line);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

std::uint16_t port_of(const kettle::Server& server) {
  return server.sockets().at(0).port;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// StreamReader fed by hand

TEST(StreamReader, test_feed_empty_data) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("");
    EXPECT_EQ(stream.buffer(), "");
    co_return;
  });
}

TEST(StreamReader, test_feed_nonempty_data) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data(DATA);
    EXPECT_EQ(stream.buffer(), DATA);
    co_return;
  });
}

TEST(StreamReader, test_read_zero) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data(DATA);
    EXPECT_EQ(co_await stream.read(0), "");
    EXPECT_EQ(stream.buffer(), DATA);
  });
}

TEST(StreamReader, test_read) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t = kettle::create_task(stream.read(30));
    kettle::get_running_loop().call_soon([&] { stream.feed_data(DATA); });
    EXPECT_EQ(co_await t, DATA);
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_read_line_breaks) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("line1");
    stream.feed_data("line2");
    EXPECT_EQ(co_await stream.read(5), "line1");
    EXPECT_EQ(stream.buffer(), "line2");
  });
}

TEST(StreamReader, test_read_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t = kettle::create_task(stream.read(1024));
    kettle::get_running_loop().call_soon([&] { stream.feed_eof(); });
    EXPECT_EQ(co_await t, "");
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_read_until_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t = kettle::create_task(stream.read(-1));
    kettle::get_running_loop().call_soon([&] {
      stream.feed_data("chunk1\n");
      stream.feed_data("chunk2");
      stream.feed_eof();
    });
    EXPECT_EQ(co_await t, "chunk1\nchunk2");
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_read_exception) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("line\n");
    EXPECT_EQ(co_await stream.read(2), "li");
    stream.set_exception(std::make_exception_ptr(kettle::ValueError("boom")));
    CO_EXPECT_THROW(co_await stream.read(2), kettle::ValueError);
  });
}

TEST(StreamReader, test_invalid_limit) {
  EXPECT_THROW(StreamReader(0), kettle::ValueError);
}

TEST(StreamReader, test_read_limit) {
  run_test([]() -> Coro<> {
    StreamReader stream(3);
    stream.feed_data("chunk");
    EXPECT_EQ(co_await stream.read(5), "chunk");
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_readline) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("chunk1 ");
    Task<std::string> t = kettle::create_task(stream.readline());
    kettle::get_running_loop().call_soon([&] {
      stream.feed_data("chunk2 ");
      stream.feed_data("chunk3 ");
      stream.feed_data("\n chunk4");
    });
    EXPECT_EQ(co_await t, "chunk1 chunk2 chunk3 \n");
    EXPECT_EQ(stream.buffer(), " chunk4");
  });
}

TEST(StreamReader, test_readline_limit_with_existing_data) {
  run_test([]() -> Coro<> {
    StreamReader stream(3);
    stream.feed_data("li");
    stream.feed_data("ne1\nline2\n");
    CO_EXPECT_THROW(co_await stream.readline(), kettle::ValueError);
    EXPECT_EQ(stream.buffer(), "line2\n");

    StreamReader stream2(3);
    stream2.feed_data("li");
    stream2.feed_data("ne1");
    stream2.feed_data("li");
    CO_EXPECT_THROW(co_await stream2.readline(), kettle::ValueError);
    EXPECT_EQ(stream2.buffer(), "");
  });
}

TEST(StreamReader, test_at_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    EXPECT_FALSE(stream.at_eof());
    stream.feed_data("some data\n");
    EXPECT_FALSE(stream.at_eof());
    (void)co_await stream.readline();
    EXPECT_FALSE(stream.at_eof());
    stream.feed_data("some data\n");
    stream.feed_eof();
    (void)co_await stream.readline();
    EXPECT_TRUE(stream.at_eof());
  });
}

TEST(StreamReader, test_readline_limit) {
  run_test([]() -> Coro<> {
    auto& loop = kettle::get_running_loop();
    {
      StreamReader stream(7);
      loop.call_soon([&] {
        stream.feed_data("chunk1");
        stream.feed_data("chunk2");
        stream.feed_data("chunk3\n");
        stream.feed_eof();
      });
      CO_EXPECT_THROW(co_await stream.readline(), kettle::ValueError);
      EXPECT_EQ(stream.buffer(), "");
    }
    {
      StreamReader stream(7);
      loop.call_soon([&] {
        stream.feed_data("chunk1");
        stream.feed_data("chunk2\n");
        stream.feed_data("chunk3\n");
        stream.feed_eof();
      });
      CO_EXPECT_THROW(co_await stream.readline(), kettle::ValueError);
      EXPECT_EQ(stream.buffer(), "chunk3\n");
    }
    StreamReader stream(7);
    stream.feed_data("1234567\n");
    EXPECT_EQ(co_await stream.readline(), "1234567\n");
    EXPECT_EQ(stream.buffer(), "");
    stream.feed_data("12345678\n");
    CO_EXPECT_THROW(co_await stream.readline(), kettle::ValueError);
    EXPECT_EQ(stream.buffer(), "");
    stream.feed_data("12345678");
    CO_EXPECT_THROW(co_await stream.readline(), kettle::ValueError);
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_readline_nolimit_nowait) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data(DATA.substr(0, 6));
    stream.feed_data(DATA.substr(6));
    EXPECT_EQ(co_await stream.readline(), "line1\n");
    EXPECT_EQ(stream.buffer(), "line2\nline3\n");
  });
}

TEST(StreamReader, test_readline_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("some data");
    stream.feed_eof();
    EXPECT_EQ(co_await stream.readline(), "some data");
  });
}

TEST(StreamReader, test_readline_empty_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_eof();
    EXPECT_EQ(co_await stream.readline(), "");
  });
}

TEST(StreamReader, test_readline_read_byte_count) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data(DATA);
    (void)co_await stream.readline();
    EXPECT_EQ(co_await stream.read(7), "line2\nl");
    EXPECT_EQ(stream.buffer(), "ine3\n");
  });
}

TEST(StreamReader, test_readline_exception) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("line\n");
    EXPECT_EQ(co_await stream.readline(), "line\n");
    stream.set_exception(std::make_exception_ptr(kettle::ValueError("boom")));
    CO_EXPECT_THROW(co_await stream.readline(), kettle::ValueError);
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_readuntil_separator) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    CO_EXPECT_THROW(co_await stream.readuntil(""), kettle::ValueError);
    std::vector<std::string> empty_sep{""};  // named: g++ 12 cannot brace-init inside co_await
    CO_EXPECT_THROW(co_await stream.readuntil(empty_sep), kettle::ValueError);
    CO_EXPECT_THROW(co_await stream.readuntil(std::vector<std::string>{}), kettle::ValueError);
  });
}

TEST(StreamReader, test_readuntil_multi_chunks) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("lineAAA");
    EXPECT_EQ(co_await stream.readuntil("AAA"), "lineAAA");
    EXPECT_EQ(stream.buffer(), "");
    stream.feed_data("lineAAAxxx");
    EXPECT_EQ(co_await stream.readuntil("AAA"), "lineAAA");
    EXPECT_EQ(stream.buffer(), "xxx");
  });
}

TEST(StreamReader, test_readuntil_multi_chunks_1) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("QWEaa");
    stream.feed_data("XYaa");
    stream.feed_data("a");
    EXPECT_EQ(co_await stream.readuntil("aaa"), "QWEaaXYaaa");
    stream.feed_data("QWEaa");
    stream.feed_data("XYa");
    stream.feed_data("aa");
    EXPECT_EQ(co_await stream.readuntil("aaa"), "QWEaaXYaaa");
    stream.feed_data("aaa");
    EXPECT_EQ(co_await stream.readuntil("aaa"), "aaa");
    stream.feed_data("Xaaa");
    EXPECT_EQ(co_await stream.readuntil("aaa"), "Xaaa");
    stream.feed_data("XXX");
    stream.feed_data("a");
    stream.feed_data("a");
    stream.feed_data("a");
    EXPECT_EQ(co_await stream.readuntil("aaa"), "XXXaaa");
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_readuntil_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("some dataAA");
    stream.feed_eof();
    try {
      (void)co_await stream.readuntil("AAA");
      ADD_FAILURE() << "no IncompleteReadError";
    } catch (const kettle::IncompleteReadError& e) {
      EXPECT_EQ(e.partial(), "some dataAA");
      EXPECT_FALSE(e.expected().has_value());
      EXPECT_NE(std::string(e.what()).find("undefined expected bytes"), std::string::npos);
    }
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_readuntil_limit_found_sep) {
  run_test([]() -> Coro<> {
    StreamReader stream(3);
    stream.feed_data("some dataAA");
    try {
      (void)co_await stream.readuntil("AAA");
      ADD_FAILURE() << "no LimitOverrunError";
    } catch (const kettle::LimitOverrunError& e) {
      EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
    }
    EXPECT_EQ(stream.buffer(), "some dataAA");
    stream.feed_data("A");
    try {
      (void)co_await stream.readuntil("AAA");
      ADD_FAILURE() << "no LimitOverrunError";
    } catch (const kettle::LimitOverrunError& e) {
      EXPECT_NE(std::string(e.what()).find("is found"), std::string::npos);
      EXPECT_EQ(e.consumed(), 9u);
    }
    EXPECT_EQ(stream.buffer(), "some dataAAA");
  });
}

TEST(StreamReader, test_readuntil_multi_separator) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("line 1\nline 2\r");
    std::vector<std::string> crlf{"\r", "\n"};
    EXPECT_EQ(co_await stream.readuntil(crlf), "line 1\n");
    EXPECT_EQ(co_await stream.readuntil(crlf), "line 2\r");
    EXPECT_EQ(stream.buffer(), "");
    // The first end position wins, even for a longer separator.
    stream.feed_data("ABCDEFG");
    std::vector<std::string> seps{"DEF", "BCDE"};
    EXPECT_EQ(co_await stream.readuntil(seps), "ABCDE");
    EXPECT_EQ(stream.buffer(), "FG");
  });
}

TEST(StreamReader, test_readuntil_multi_separator_limit) {
  run_test([]() -> Coro<> {
    StreamReader stream(3);
    stream.feed_data("some dataA");
    try {
      std::vector<std::string> seps{"A", "ome dataA"};
      (void)co_await stream.readuntil(seps);
      ADD_FAILURE() << "no LimitOverrunError";
    } catch (const kettle::LimitOverrunError& e) {
      EXPECT_NE(std::string(e.what()).find("is found"), std::string::npos);
    }
    EXPECT_EQ(stream.buffer(), "some dataA");
  });
}

TEST(StreamReader, test_readuntil_multi_separator_negative_offset) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("data");
    std::vector<std::string> seps{"A", "long sep"};
    Task<std::string> t = kettle::create_task(stream.readuntil(seps));
    auto& loop = kettle::get_running_loop();
    loop.call_soon([&] { stream.feed_data("Z"); });
    loop.call_soon([&] { stream.feed_data("Aaaa"); });
    EXPECT_EQ(co_await t, "dataZA");
    EXPECT_EQ(stream.buffer(), "aaa");
  });
}

TEST(StreamReader, test_readexactly_zero_or_less) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data(DATA);
    EXPECT_EQ(co_await stream.readexactly(0), "");
    EXPECT_EQ(stream.buffer(), DATA);
    CO_EXPECT_THROW(co_await stream.readexactly(-1), kettle::ValueError);
    EXPECT_EQ(stream.buffer(), DATA);
  });
}

TEST(StreamReader, test_readexactly) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t = kettle::create_task(stream.readexactly(2 * DATA.size()));
    kettle::get_running_loop().call_soon([&] {
      stream.feed_data(DATA);
      stream.feed_data(DATA);
      stream.feed_data(DATA);
    });
    EXPECT_EQ(co_await t, DATA + DATA);
    EXPECT_EQ(stream.buffer(), DATA);
  });
}

TEST(StreamReader, test_readexactly_limit) {
  run_test([]() -> Coro<> {
    StreamReader stream(3);
    stream.feed_data("chunk");
    EXPECT_EQ(co_await stream.readexactly(5), "chunk");
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_readexactly_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    std::size_t n = 2 * DATA.size();
    Task<std::string> t = kettle::create_task(stream.readexactly(n));
    kettle::get_running_loop().call_soon([&] {
      stream.feed_data(DATA);
      stream.feed_eof();
    });
    try {
      (void)co_await t;
      ADD_FAILURE() << "no IncompleteReadError";
    } catch (const kettle::IncompleteReadError& e) {
      EXPECT_EQ(e.partial(), DATA);
      EXPECT_EQ(e.expected(), n);
      EXPECT_STREQ(e.what(), "18 bytes read on a total of 36 expected bytes");
    }
    EXPECT_EQ(stream.buffer(), "");
  });
}

TEST(StreamReader, test_readexactly_exception) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("line\n");
    EXPECT_EQ(co_await stream.readexactly(2), "li");
    stream.set_exception(std::make_exception_ptr(kettle::ValueError("boom")));
    CO_EXPECT_THROW(co_await stream.readexactly(2), kettle::ValueError);
  });
}

TEST(StreamReader, test_exception) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    EXPECT_FALSE(stream.exception());
    auto e = std::make_exception_ptr(kettle::ValueError("boom"));
    stream.set_exception(e);
    EXPECT_EQ(stream.exception(), e);
    co_return;
  });
}

TEST(StreamReader, test_exception_waiter) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t1 = kettle::create_task(stream.readline());
    auto set_err = [&]() -> Coro<> {
      stream.set_exception(std::make_exception_ptr(kettle::ValueError("boom")));
      co_return;
    };
    Task<> t2 = kettle::create_task(set_err());
    std::vector<kettle::TaskRef> both{t1, t2};
    (void)co_await kettle::wait(both);
    CO_EXPECT_THROW(t1.result(), kettle::ValueError);
  });
}

TEST(StreamReader, test_exception_cancel) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t = kettle::create_task(stream.readline());
    co_await kettle::sleep(0);
    t.cancel();
    co_await kettle::sleep(0);
    stream.set_exception(std::make_exception_ptr(kettle::RuntimeError("message")));
    co_await kettle::sleep(0);
    EXPECT_TRUE(t.cancelled());
    // The waiter is gone: a new read raises the exception instead of "already waiting".
    CO_EXPECT_THROW(co_await stream.read(1), kettle::RuntimeError);
  });
}

// kettle's own reader tests

TEST(StreamReader, data_that_came_before_an_error_is_read_first) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t = kettle::create_task(stream.read(10));
    co_await kettle::sleep(0);
    stream.feed_data("abc");
    stream.set_exception(std::make_exception_ptr(kettle::ConnectionResetError("reset")));
    EXPECT_EQ(co_await t, "abc");
    CO_EXPECT_THROW(co_await stream.read(10), kettle::ConnectionResetError);

    // A read that cannot be satisfied raises instead of waiting for data that cannot come.
    StreamReader s2;
    Task<std::string> t2 = kettle::create_task(s2.readexactly(10));
    co_await kettle::sleep(0);
    s2.feed_data("abc");
    s2.set_exception(std::make_exception_ptr(kettle::ConnectionResetError("reset")));
    CO_EXPECT_THROW(co_await t2, kettle::ConnectionResetError);
    EXPECT_EQ(s2.buffer(), "abc");
  });
}

TEST(StreamReader, two_readers_at_once_is_runtime_error) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> t = kettle::create_task(stream.read(1));
    co_await kettle::sleep(0);
    try {
      (void)co_await stream.readline();
      ADD_FAILURE() << "no RuntimeError";
    } catch (const kettle::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("already waiting"), std::string::npos);
    }
    stream.feed_data("x");
    EXPECT_EQ(co_await t, "x");
  });
}

TEST(StreamReader, cancelled_reads_keep_the_bytes) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    Task<std::string> line = kettle::create_task(stream.readline());
    co_await kettle::sleep(0);
    stream.feed_data("partial ");
    line.cancel();
    co_await kettle::sleep(0);
    EXPECT_TRUE(line.cancelled());
    EXPECT_EQ(stream.buffer(), "partial ");

    Task<std::string> exact = kettle::create_task(stream.readexactly(20));
    co_await kettle::sleep(0);
    stream.feed_data("line\n");
    exact.cancel();
    co_await kettle::sleep(0);
    EXPECT_EQ(stream.buffer(), "partial line\n");

    Task<std::string> all = kettle::create_task(stream.read(-1));
    co_await kettle::sleep(0);
    stream.feed_data("more");
    all.cancel();
    co_await kettle::sleep(0);
    EXPECT_EQ(stream.buffer(), "partial line\nmore");

    // A timeout is a cancellation too.
    CO_EXPECT_THROW(co_await kettle::wait_for(stream.readuntil("!"), 0.01), kettle::TimeoutError);
    EXPECT_EQ(co_await stream.readline(), "partial line\n");
    stream.feed_eof();
    EXPECT_EQ(co_await stream.read(), "more");
  });
}

TEST(StreamReader, per_call_limit) {
  run_test([]() -> Coro<> {
    StreamReader stream;  // 64 KiB
    stream.feed_data("0123456789\nabc\n");
    CO_EXPECT_THROW(co_await stream.readline(4), kettle::ValueError);
    EXPECT_EQ(stream.buffer(), "abc\n");
    stream.feed_data("defgh");
    CO_EXPECT_THROW(co_await stream.readuntil("h", 3), kettle::LimitOverrunError);
    EXPECT_EQ(co_await stream.readuntil("h", 100), "abc\ndefgh");
    CO_EXPECT_THROW(co_await stream.readline(0), kettle::ValueError);
  });
}

TEST(StreamReader, next_line_iterates_until_eof) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_data("a\nb\nlast");
    stream.feed_eof();
    std::vector<std::string> lines;
    while (auto line = co_await stream.next_line())
      lines.push_back(*line);
    EXPECT_EQ(lines, (std::vector<std::string>{"a\n", "b\n", "last"}));
  });
}

TEST(StreamReader, feed_data_after_feed_eof_is_runtime_error) {
  run_test([]() -> Coro<> {
    StreamReader stream;
    stream.feed_eof();
    EXPECT_THROW(stream.feed_data("x"), kettle::RuntimeError);
    co_return;
  });
}

// Every read method gives the same results whatever the chunking of the input.
namespace {
struct Step {
  enum Kind { read, readline, readuntil, readexactly } kind;
  long n = 0;
  std::string sep = {};
};

// Runs the steps over `input` fed in the given chunk sizes; records each result or error.
Coro<std::vector<std::string>> run_steps(std::string input, std::vector<std::size_t> chunks,
                                         std::vector<Step> steps, std::size_t limit) {
  StreamReader stream(limit);
  auto feeder = [&]() -> Coro<> {
    std::size_t pos = 0;
    for (std::size_t c : chunks) {
      if (pos >= input.size()) break;
      stream.feed_data(std::string_view(input).substr(pos, c));
      pos += c;
      co_await kettle::sleep(0);
    }
    if (pos < input.size()) stream.feed_data(std::string_view(input).substr(pos));
    stream.feed_eof();
  };
  Task<> f = kettle::create_task(feeder());
  std::vector<std::string> out;
  for (const Step& s : steps) {
    try {
      switch (s.kind) {
        case Step::read:
          out.push_back("R:" + co_await stream.read(s.n));
          break;
        case Step::readline:
          out.push_back("L:" + co_await stream.readline());
          break;
        case Step::readuntil:
          out.push_back("U:" + co_await stream.readuntil(s.sep));
          break;
        case Step::readexactly:
          out.push_back("X:" + co_await stream.readexactly(s.n));
          break;
      }
    } catch (const kettle::IncompleteReadError& e) {
      out.push_back("incomplete:" + e.partial());
    } catch (const kettle::LimitOverrunError& e) {
      out.push_back("overrun:" + std::to_string(e.consumed()));
    } catch (const kettle::ValueError&) {
      out.push_back("value-error");
    }
    out.push_back("buffer-size-known-after:" + std::to_string(stream.at_eof()));
  }
  co_await f;
  out.push_back("rest:" + std::string(stream.buffer()));
  co_return out;
}

// A reference model of asyncio's reader: all input there at once, then EOF. With every byte
// available before the first read, chunking cannot matter, so this is the expected output.
}  // namespace

TEST(StreamReader, every_chunking_gives_the_same_result) {
  run_test([]() -> Coro<> {
    std::string input = "GET / HTTP/1.1\r\nHost: x\r\n\r\nbody-bytes\nmore\r\nend";
    std::vector<Step> steps{
        {Step::readuntil, 0, "\r\n"}, {Step::readline},        {Step::readuntil, 0, "\r\n\r\n"},
        {Step::readexactly, 5},       {Step::read, 3},         {Step::readline},
        {Step::readuntil, 0, "\r\n"}, {Step::readexactly, 10}, {Step::read, -1}};
    std::vector<std::size_t> one_chunk(1, input.size());
    std::vector<std::string> whole =
        co_await run_steps(input, one_chunk, steps, kettle::kStreamLimit);
    // Every split point into two chunks, one-byte chunks, and random chunks.
    for (std::size_t cut = 0; cut <= input.size(); ++cut) {
      std::vector<std::size_t> two(1, cut);
      two.push_back(input.size());
      EXPECT_EQ(co_await run_steps(input, two, steps, kettle::kStreamLimit), whole)
          << "split at " << cut;
    }
    EXPECT_EQ(co_await run_steps(input, std::vector<std::size_t>(input.size(), 1), steps,
                                 kettle::kStreamLimit),
              whole);
    std::mt19937 rng(7);
    for (int i = 0; i < 50; ++i) {
      std::vector<std::size_t> chunks;
      for (std::size_t total = 0; total < input.size();) {
        chunks.push_back(1 + rng() % 9);
        total += chunks.back();
      }
      EXPECT_EQ(co_await run_steps(input, chunks, steps, kettle::kStreamLimit), whole);
    }
  });
}

// Fuzz: random input, separators and limits, against a model of asyncio's readuntil /
// readexactly / read on a complete buffer.
namespace {
struct Model {
  std::string buf;
  std::size_t limit;
  std::string readuntil(const std::string& sep) {
    std::size_t i = buf.find(sep);
    if (i == std::string::npos) {
      std::size_t offset = buf.size() + 1 > sep.size() ? buf.size() + 1 - sep.size() : 0;
      if (offset > limit) return "overrun:" + std::to_string(offset);
      std::string all = std::exchange(buf, {});
      return "incomplete:" + all;
    }
    if (i > limit) return "overrun:" + std::to_string(i);
    std::string r = buf.substr(0, i + sep.size());
    buf.erase(0, i + sep.size());
    return "U:" + r;
  }
  std::string readexactly(std::size_t n) {
    if (buf.size() < n) return "incomplete:" + std::exchange(buf, {});
    std::string r = buf.substr(0, n);
    buf.erase(0, n);
    return "X:" + r;
  }
  std::string read(std::size_t n) {
    std::string r = buf.substr(0, n);
    buf.erase(0, std::min(n, buf.size()));
    return "R:" + r;
  }
};
}  // namespace

TEST(StreamReader, fuzz_against_a_model_of_asyncio) {
  run_test([]() -> Coro<> {
    std::mt19937 rng(12345);
    for (int round = 0; round < 300; ++round) {
      std::string input;
      std::size_t len = rng() % 200;
      for (std::size_t i = 0; i < len; ++i)
        input.push_back("ab\n\r\0x"[rng() % 6]);
      std::size_t limit = 1 + rng() % 40;
      Model model{input, limit};
      StreamReader stream(limit);
      std::vector<std::size_t> chunks;
      auto feeder = [&]() -> Coro<> {
        std::size_t pos = 0;
        while (pos < input.size()) {
          std::size_t c = 1 + rng() % 30;
          stream.feed_data(std::string_view(input).substr(pos, c));
          pos += c;
          co_await kettle::sleep(0);
        }
        stream.feed_eof();
      };
      Task<> f = kettle::create_task(feeder());
      co_await f;  // all in: the model sees the same complete buffer
      for (int op = 0; op < 12; ++op) {
        int kind = rng() % 3;
        std::string got, want;
        if (kind == 0) {
          static const std::vector<std::string> seps{"\n", "\r\n", "ab", std::string("x\0", 2)};
          std::string sep = seps[rng() % 4];
          want = model.readuntil(sep);
          try {
            got = "U:" + co_await stream.readuntil(sep);
          } catch (const kettle::LimitOverrunError& e) {
            got = "overrun:" + std::to_string(e.consumed());
          } catch (const kettle::IncompleteReadError& e) {
            got = "incomplete:" + e.partial();
          }
        } else if (kind == 1) {
          std::size_t n = rng() % 50;
          want = model.readexactly(n);
          try {
            got = "X:" + co_await stream.readexactly(n);
          } catch (const kettle::IncompleteReadError& e) {
            got = "incomplete:" + e.partial();
          }
        } else {
          std::size_t n = 1 + rng() % 50;
          want = model.read(n);
          got = "R:" + co_await stream.read(n);
        }
        EXPECT_EQ(got, want) << "round " << round << " op " << op;
        EXPECT_EQ(stream.buffer(), model.buf);
        if (got != want || stream.buffer() != model.buf) co_return;
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Connections

TEST(Streams, test_open_connection) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    writer.write("GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(co_await reader.readline(), "GET / HTTP/1.0\r\n");
    EXPECT_EQ(co_await reader.readline(), "\r\n");
    EXPECT_EQ(writer.peername().port, port_of(server));
    EXPECT_EQ(writer.peername().host, "127.0.0.1");
    EXPECT_EQ(writer.sockname().family, AF_INET);
    EXPECT_GE(writer.fileno(), 0);
    writer.write_eof();
    EXPECT_EQ(co_await reader.read(), "");
    EXPECT_TRUE(reader.at_eof());
    writer.close();
    co_await writer.wait_closed();
    EXPECT_EQ(writer.fileno(), -1);
    server.close();
    co_await server.wait_closed();
  });
}

TEST(Streams, test_write_from_another_thread_raises) {
  // A connection belongs to its loop's thread from the start: not thread-safe, as in asyncio.
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    int raised = 0;
    std::thread([&, &w = writer] {
      for (auto f : {+[](kettle::StreamWriter& w) { w.write("x\n"); },
                     +[](kettle::StreamWriter& w) { w.close(); }}) {
        try {
          f(w);
        } catch (const kettle::RuntimeError&) {
          ++raised;
        }
      }
    }).join();
    EXPECT_EQ(raised, 2);
    EXPECT_FALSE(writer.is_closing());
    writer.write("y\n");  // its own thread
    EXPECT_EQ(co_await reader.readline(), "y\n");
    writer.close();
    co_await writer.wait_closed();
    server.close();
    co_await server.wait_closed();
  });
}

TEST(Streams, test_open_connection_by_name_and_ipv6) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "localhost", 0);
    EXPECT_GE(server.sockets().size(), 1u);
    for (const kettle::SockAddr& a : server.sockets()) {
      auto [reader, writer] = co_await kettle::open_connection(a.host, a.port);
      writer.write("hello\n");
      EXPECT_EQ(co_await reader.readline(), "hello\n");
      writer.close();
      co_await writer.wait_closed();
    }
  });
}

TEST(Streams, test_open_unix_connection) {
  run_test([]() -> Coro<> {
    std::string path = temp_socket_path("open");
    kettle::Server server = co_await kettle::start_unix_server(echo_lines, path);
    EXPECT_TRUE(std::filesystem::exists(path));
    auto [reader, writer] = co_await kettle::open_unix_connection(path);
    writer.write("GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(co_await reader.readline(), "GET / HTTP/1.0\r\n");
    EXPECT_EQ(writer.peername().path, path);
    writer.close();
    co_await writer.wait_closed();
    server.close();
    co_await server.wait_closed();
    EXPECT_FALSE(std::filesystem::exists(path));  // 3.13: the server removes its socket file
  });
}

TEST(Streams, test_open_connection_error) {
  run_test([]() -> Coro<> {
    // A port nobody listens on: bind one, close it.
    std::uint16_t port;
    {
      kettle::Server s = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
      port = port_of(s);
      s.close();
      co_await s.wait_closed();
    }
    try {
      (void)co_await kettle::open_connection("127.0.0.1", port);
      ADD_FAILURE() << "connected";
    } catch (const kettle::ConnectionRefusedError& e) {
      EXPECT_EQ(e.code().value(), ECONNREFUSED);
      EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
    }
  });
}

TEST(Streams, test_open_unix_connection_error) {
  run_test([]() -> Coro<> {
    CO_EXPECT_THROW(co_await kettle::open_unix_connection(temp_socket_path("nosuch")),
                    kettle::FileNotFoundError);
    CO_EXPECT_THROW(co_await kettle::open_unix_connection(std::string(200, 'x')),
                    kettle::ValueError);
  });
}

TEST(Streams, unresolvable_host_is_gaierror) {
  run_test([]() -> Coro<> {
    try {
      (void)co_await kettle::open_connection("nosuch.invalid", 80);
      ADD_FAILURE() << "resolved";
    } catch (const kettle::gaierror& e) {
      EXPECT_NE(std::string(e.what()).find("nosuch.invalid"), std::string::npos);
    } catch (const kettle::OSError& e) {
      // No resolver configured at all on this machine: a system error is acceptable.
      SUCCEED() << e.what();
    }
  });
}

TEST(Streams, test_start_server) {
  run_test([]() -> Coro<> {
    std::vector<std::string> seen;
    kettle::ClientConnected handle = [&](StreamReader r, StreamWriter w) -> Coro<> {
      std::string line = co_await r.readline();
      seen.push_back(line);
      w.write(line);
      co_await w.drain();
      w.close();
    };
    kettle::Server server = co_await kettle::start_server(handle, "127.0.0.1", 0);
    EXPECT_TRUE(server.is_serving());
    for (int i = 0; i < 3; ++i) {
      auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", port_of(server));
      std::string msg = "hello " + std::to_string(i) + "\n";
      writer.write(msg);
      EXPECT_EQ(co_await reader.readline(), msg);
      EXPECT_EQ(co_await reader.read(), "");  // the server closed
      writer.close();
    }
    EXPECT_EQ(seen.size(), 3u);
    server.close();
    EXPECT_FALSE(server.is_serving());
    EXPECT_TRUE(server.sockets().empty());
    co_await server.wait_closed();
  });
}

TEST(Streams, test_start_unix_server) {
  run_test([]() -> Coro<> {
    std::string path = temp_socket_path("start");
    // A stale socket file from an earlier run is replaced.
    {
      int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strcpy(a.sun_path, path.c_str());
      EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
      ::close(fd);
    }
    kettle::Server server = co_await kettle::start_unix_server(echo_lines, path);
    auto [reader, writer] = co_await kettle::open_unix_connection(path);
    writer.write("ping\n");
    EXPECT_EQ(co_await reader.readline(), "ping\n");
    writer.close();
    server.close();
    co_await server.wait_closed();
  });
}

TEST(Streams, abstract_unix_socket) {
  run_test([]() -> Coro<> {
    std::string name = std::string(1, '\0') + "kettle-abstract-" + std::to_string(::getpid());
    kettle::Server server = co_await kettle::start_unix_server(echo_lines, name);
    auto [reader, writer] = co_await kettle::open_unix_connection(name);
    writer.write("ping\n");
    EXPECT_EQ(co_await reader.readline(), "ping\n");
    EXPECT_EQ(server.sockets().at(0).to_string(), "@" + name.substr(1));
    writer.close();
  });
}

TEST(Streams, test_drain_raises) {
  run_test([]() -> Coro<> {
    // The peer accepts and closes at once; writing and draining in a loop must end with a
    // connection error, not spin forever (bpo-25441, python/asyncio#263).
    kettle::ClientConnected closer = [](StreamReader, StreamWriter w) -> Coro<> {
      w.abort();
      co_return;
    };
    std::vector<std::string> messages;
    kettle::get_running_loop().set_exception_handler(
        [&](kettle::EventLoop&, const kettle::ExceptionContext& c) {
          messages.push_back(c.message);
        });
    kettle::Server server = co_await kettle::start_server(closer, "127.0.0.1", 0);
    auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    bool raised = false;
    try {
      for (;;) {
        writer.write("foo\n");
        co_await writer.drain();
      }
    } catch (const kettle::ConnectionError& e) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    EXPECT_TRUE(messages.empty());
  });
}

TEST(Streams, test_multiple_drain) {
  run_test([]() -> Coro<> {
    // Ten drains wait on one paused writer; all return when the peer reads.
    kettle::Event go;
    kettle::ClientConnected slow = [&](StreamReader r, StreamWriter w) -> Coro<> {
      co_await go.wait();
      (void)co_await r.read(-1);
      w.close();
    };
    kettle::Server server = co_await kettle::start_server(slow, "127.0.0.1", 0);
    // Named, not a structured binding: clang 14 cannot capture those in a lambda.
    auto conn = co_await kettle::open_connection("127.0.0.1", port_of(server));
    StreamWriter& writer = conn.second;
    writer.set_write_buffer_limits(1024);
    // Far more than the kernel's socket buffers hold, so that most of it stays with us.
    std::string big(1 << 20, 'x');
    for (int i = 0; i < 32; ++i)
      writer.write(big);
    EXPECT_GT(writer.get_write_buffer_size(), 1024u);
    int drained = 0;
    auto drainer = [&]() -> Coro<> {
      co_await writer.drain();
      ++drained;
    };
    std::vector<Task<>> ts;
    for (int i = 0; i < 10; ++i)
      ts.push_back(kettle::create_task(drainer()));
    co_await kettle::sleep(0.05);
    EXPECT_EQ(drained, 0);
    go.set();
    co_await kettle::gather(ts);
    EXPECT_EQ(drained, 10);
    writer.close();
  });
}

TEST(Streams, test_wait_closed_on_close_with_unread_data) {
  run_test([]() -> Coro<> {
    kettle::ClientConnected chatty = [](StreamReader r, StreamWriter w) -> Coro<> {
      (void)co_await r.readline();
      w.write("HTTP/1.0 200 OK\r\n\r\nTest message");
      w.close();
    };
    kettle::Server server = co_await kettle::start_server(chatty, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    wr.write("GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(co_await rd.readline(), "HTTP/1.0 200 OK\r\n");
    EXPECT_FALSE(wr.is_closing());
    wr.close();
    EXPECT_TRUE(wr.is_closing());
    co_await wr.wait_closed();
  });
}

TEST(Streams, test_async_writer_api_exception_after_close) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    wr.close();
    CO_EXPECT_THROW((wr.write("data"), co_await wr.drain()), kettle::ConnectionResetError);
  });
}

TEST(Streams, test_eof_feed_when_closing_writer) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    wr.close();
    co_await wr.wait_closed();
    EXPECT_TRUE(rd.at_eof());
    EXPECT_EQ(co_await rd.read(), "");
  });
}

TEST(Streams, test_unhandled_exception) {
  run_test([]() -> Coro<> {
    std::vector<kettle::ExceptionContext> messages;
    kettle::get_running_loop().set_exception_handler(
        [&](kettle::EventLoop&, const kettle::ExceptionContext& c) { messages.push_back(c); });
    kettle::ClientConnected fails = [](StreamReader, StreamWriter) -> Coro<> {
      throw kettle::ValueError("handler failed");
      co_return;
    };
    kettle::Server server = co_await kettle::start_server(fails, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    EXPECT_EQ(co_await rd.read(), "");  // the failed handler's connection is closed
    EXPECT_EQ(messages.size(), 1u);
    if (messages.empty()) co_return;
    EXPECT_EQ(messages[0].message, "Unhandled exception in client_connected_cb");
    EXPECT_NE(kettle::describe(messages[0].exception).find("handler failed"), std::string::npos);
    wr.close();
  });
}

TEST(Streams, write_after_write_eof_is_runtime_error) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    wr.write("a\n");
    wr.write_eof();
    EXPECT_TRUE(wr.can_write_eof());
    EXPECT_THROW(wr.write("b"), kettle::RuntimeError);
    EXPECT_EQ(co_await rd.read(), "a\n");  // echoed, then the server closed
    wr.close();
  });
}

TEST(Streams, peer_reset_mid_read_raises_connection_reset) {
  run_test([]() -> Coro<> {
    kettle::ClientConnected resetter = [](StreamReader r, StreamWriter w) -> Coro<> {
      (void)co_await r.readline();
      // SO_LINGER 0: close() sends RST.
      linger l{1, 0};
      ::setsockopt(w.fileno(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
      w.abort();
    };
    kettle::Server server = co_await kettle::start_server(resetter, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    wr.write("go\n");
    CO_EXPECT_THROW(co_await rd.readline(), kettle::ConnectionResetError);
    EXPECT_TRUE(rd.exception());
    CO_EXPECT_THROW(co_await wr.drain(), kettle::ConnectionResetError);
    CO_EXPECT_THROW(co_await wr.wait_closed(), kettle::ConnectionResetError);
  });
}

TEST(Streams, slow_reader_bounds_both_buffers) {
  run_test([]() -> Coro<> {
    // The server reads slowly; the client writes 32 MiB through drain(). Neither side's
    // buffer grows past its marks: the reader stops reading above 2 x limit, the writer
    // waits in drain() above the high-water mark.
    std::size_t max_reader_buffer = 0;
    std::size_t received = 0;
    const std::size_t total = 32u << 20;
    kettle::ClientConnected slow = [&](StreamReader r, StreamWriter w) -> Coro<> {
      for (;;) {
        co_await kettle::sleep(0);
        max_reader_buffer = std::max(max_reader_buffer, r.buffer().size());
        std::string chunk = co_await r.read(4096);
        if (chunk.empty()) break;
        received += chunk.size();
      }
      w.close();
    };
    kettle::ServerOptions options;
    options.limit = 16 * 1024;
    kettle::Server server = co_await kettle::start_server(slow, "127.0.0.1", 0, options);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    std::string block(8192, 'z');
    std::size_t max_writer_buffer = 0;
    for (std::size_t sent = 0; sent < total; sent += block.size()) {
      wr.write(block);
      max_writer_buffer = std::max(max_writer_buffer, wr.get_write_buffer_size());
      co_await wr.drain();
    }
    wr.write_eof();
    EXPECT_EQ(co_await rd.read(), "");
    EXPECT_EQ(received, total);
    EXPECT_LE(max_writer_buffer, 64u * 1024 + block.size());
    // 2 x limit, plus at most one socket read beyond it.
    EXPECT_LE(max_reader_buffer, 2u * 16 * 1024 + 256 * 1024);
    wr.close();
  });
}

TEST(Streams, bulk_reads_of_every_size_see_every_byte_in_order) {
  run_test([]() -> Coro<> {
    // read(n) takes bytes straight from the socket into the result while the socket keeps
    // delivering, and from the buffer otherwise: mixed with readexactly and readuntil, the
    // bytes still come out whole and in order.
    const std::size_t total = 24u << 20;
    auto byte_at = [](std::size_t i) { return char((i * 7 + i / 4093) & 0xff); };
    std::size_t checked = 0;
    bool in_order = true;
    kettle::ClientConnected check = [&](StreamReader r, StreamWriter w) -> Coro<> {
      const std::ptrdiff_t sizes[] = {65536, 1, 300000, 4096, 65536, 1 << 20, 17};
      for (std::size_t k = 0;; ++k) {
        std::string got;
        if (k % 11 == 5 && checked + 5000 <= total)
          got = co_await r.readexactly(5000);
        else
          got = co_await r.read(sizes[k % std::size(sizes)]);
        if (got.empty()) break;
        for (char c : got)
          in_order = in_order && c == byte_at(checked++);
      }
      w.write(std::to_string(checked));
      w.close();
    };
    kettle::Server server = co_await kettle::start_server(check, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    std::string block(100'003, '\0');
    for (std::size_t sent = 0; sent < total; sent += block.size()) {
      std::size_t n = std::min(block.size(), total - sent);
      for (std::size_t i = 0; i < n; ++i)
        block[i] = byte_at(sent + i);
      wr.write(std::string_view(block).substr(0, n));
      co_await wr.drain();
    }
    wr.write_eof();
    EXPECT_EQ(co_await rd.read(), std::to_string(total));
    EXPECT_TRUE(in_order);
    wr.close();
  });
}

TEST(Streams, cancelled_drain_loses_nothing) {
  run_test([]() -> Coro<> {
    kettle::Event go;
    std::string got;
    kettle::ClientConnected sink = [&](StreamReader r, StreamWriter w) -> Coro<> {
      co_await go.wait();
      got = co_await r.read(-1);
      w.close();
    };
    kettle::Server server = co_await kettle::start_server(sink, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    std::string expected;
    for (int i = 0; wr.get_write_buffer_size() <= 64 * 1024; ++i) {
      std::string piece = std::to_string(i) + std::string(10000, '.') + "\n";
      expected += piece;
      wr.write(piece);
    }
    CO_EXPECT_THROW(co_await kettle::wait_for(wr.drain(), 0.05), kettle::TimeoutError);
    go.set();
    wr.write_eof();
    EXPECT_EQ(co_await rd.read(), "");  // the server closes after reading everything
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected);
    wr.close();
  });
}

TEST(Streams, unclosed_writer_is_reported_in_debug_mode) {
  run_test([]() -> Coro<> {
    std::vector<std::string> messages;
    auto& loop = kettle::get_running_loop();
    loop.set_exception_handler([&](kettle::EventLoop&, const kettle::ExceptionContext& c) {
      messages.push_back(c.message);
    });
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    {
      auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
      wr.write("x\n");
      EXPECT_EQ(co_await rd.readline(), "x\n");
    }  // dropped open, debug off: closed quietly
    loop.set_debug(true);
    {
      auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
      EXPECT_FALSE(wr.is_closing());
    }  // dropped open: closed, and reported
    loop.set_debug(false);
    EXPECT_EQ(messages.size(), 1u);
    if (!messages.empty()) {
      EXPECT_EQ(messages[0].rfind("unclosed StreamWriter", 0), 0u);
    }
  });
}

TEST(Streams, set_write_buffer_limits_checks_its_arguments) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    EXPECT_THROW(wr.set_write_buffer_limits(10, 20), kettle::ValueError);
    wr.set_write_buffer_limits(std::nullopt, 100);  // high = 400
    wr.close();
  });
}

TEST(Streams, happy_eyeballs_and_interleave) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    kettle::ConnectOptions o;
    o.happy_eyeballs_delay = 0.25;
    o.local_addr = std::pair<std::string_view, std::uint16_t>{"127.0.0.1", 0};
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server), o);
    wr.write("he\n");
    EXPECT_EQ(co_await rd.readline(), "he\n");
    EXPECT_EQ(wr.sockname().host, "127.0.0.1");
    wr.close();
    // "localhost" is ::1 and 127.0.0.1: the attempt at ::1 is refused, 127.0.0.1 wins.
    kettle::ConnectOptions he;
    he.happy_eyeballs_delay = 0.25;
    auto [rd3, wr3] = co_await kettle::open_connection("localhost", port_of(server), he);
    wr3.write("both\n");
    EXPECT_EQ(co_await rd3.readline(), "both\n");
    EXPECT_EQ(wr3.peername().host, "127.0.0.1");
    wr3.close();
    o.happy_eyeballs_delay = -1;
    // Only one address: the delay is not even looked at; two would raise ValueError.
    auto [rd2, wr2] = co_await kettle::open_connection("127.0.0.1", port_of(server), o);
    wr2.close();
  });
}

TEST(Streams, cancel_open_connection_while_resolving_or_connecting) {
  run_test([]() -> Coro<> {
    // A non-routable address: the connect hangs until cancelled.
    Task<std::pair<StreamReader, StreamWriter>> t =
        kettle::create_task(kettle::open_connection("10.255.255.1", 9));
    co_await kettle::sleep(0.05);
    t.cancel();
    co_await kettle::sleep(0);
    co_await kettle::sleep(0);
    EXPECT_TRUE(t.done());
    if (!t.cancelled()) (void)t.exception();  // no route at all here: it failed at once
    // A name lookup is walked away from at once.
    Task<std::vector<kettle::AddrInfo>> g =
        kettle::create_task(kettle::getaddrinfo("localhost", "80"));
    g.cancel();
    co_await kettle::sleep(0);
    EXPECT_TRUE(g.cancelled());
  });
}

// ---------------------------------------------------------------------------------------
// Servers (test_server.py)

TEST(Server, test_wait_closed_basic) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    Task<> wc = kettle::create_task(server.wait_closed());
    co_await kettle::sleep(0);
    EXPECT_FALSE(wc.done());  // not closed yet
    server.close();
    co_await wc;
    co_await server.wait_closed();  // and again: at once
  });
}

TEST(Server, start_serving_later) {
  run_test([]() -> Coro<> {
    kettle::ServerOptions o;
    o.start_serving = false;
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0, o);
    EXPECT_FALSE(server.is_serving());
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));  // backlog
    wr.write("early\n");
    Task<std::string> line = kettle::create_task(rd.readline());
    co_await kettle::sleep(0.05);
    EXPECT_FALSE(line.done());
    server.start_serving();
    EXPECT_TRUE(server.is_serving());
    EXPECT_EQ(co_await line, "early\n");
    wr.close();
  });
}

TEST(Server, close_clients_shuts_down_idle_clients) {
  run_test([]() -> Coro<> {
    // gh-113538 / gh-79033: a server with idle clients can be shut down.
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    std::vector<std::pair<StreamReader, StreamWriter>> clients;
    for (int i = 0; i < 5; ++i)
      clients.push_back(co_await kettle::open_connection("127.0.0.1", port_of(server)));
    for (auto& [r, w] : clients) {  // make sure every connection is accepted
      w.write("hi\n");
      EXPECT_EQ(co_await r.readline(), "hi\n");
    }
    server.close();
    Task<> wc = kettle::create_task(server.wait_closed());
    co_await kettle::sleep(0.05);
    EXPECT_FALSE(wc.done());  // idle clients hold it open
    server.close_clients();
    co_await kettle::wait_for(wc, 5.0);
    for (auto& [r, w] : clients)
      EXPECT_EQ(co_await r.read(), "");
  });
}

TEST(Server, abort_clients_drops_what_they_have_buffered) {
  run_test([]() -> Coro<> {
    kettle::Event stuck;
    kettle::ClientConnected flood = [&](StreamReader, StreamWriter w) -> Coro<> {
      std::string big(1 << 20, 'f');
      for (int i = 0; i < 64; ++i)
        w.write(big);  // far more than the peer will read
      co_await stuck.wait();
    };
    kettle::Server server = co_await kettle::start_server(flood, "127.0.0.1", 0);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    (void)co_await rd.readexactly(10);
    server.close();
    server.abort_clients();
    co_await kettle::wait_for(server.wait_closed(), 5.0);
    stuck.set();
    wr.close();
  });
}

TEST(Server, cancelled_serve_forever_closes_server_and_clients) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    std::uint16_t port = port_of(server);
    Task<> forever = kettle::create_task(server.serve_forever());
    co_await kettle::sleep(0);
    CO_EXPECT_THROW(co_await server.serve_forever(), kettle::RuntimeError);  // already running
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", port);
    wr.write("x\n");
    EXPECT_EQ(co_await rd.readline(), "x\n");
    forever.cancel();
    try {
      co_await kettle::wait_for(forever, 5.0);
      ADD_FAILURE() << "serve_forever returned";
    } catch (const kettle::CancelledError&) {
    }
    EXPECT_TRUE(forever.cancelled());
    EXPECT_FALSE(server.is_serving());
    EXPECT_EQ(co_await rd.read(), "");  // our connection was closed by the server
    CO_EXPECT_THROW(co_await kettle::open_connection("127.0.0.1", port),
                    kettle::ConnectionRefusedError);
    CO_EXPECT_THROW(co_await server.serve_forever(), kettle::RuntimeError);  // closed
  });
}

TEST(Server, close_wakes_serve_forever) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    Task<> forever = kettle::create_task(server.serve_forever());
    co_await kettle::sleep(0);
    server.close();
    CO_EXPECT_THROW(co_await forever, kettle::CancelledError);
  });
}

TEST(Server, bind_error_names_the_address) {
  run_test([]() -> Coro<> {
    kettle::Server a = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    kettle::ServerOptions o;
    o.reuse_address = false;
    try {
      kettle::Server b = co_await kettle::start_server(echo_lines, "127.0.0.1", port_of(a), o);
      ADD_FAILURE() << "bound twice";
    } catch (const kettle::OSError& e) {
      EXPECT_EQ(e.code().value(), EADDRINUSE);
      EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
    }
  });
}

TEST(Server, several_hosts_and_all_interfaces) {
  run_test([]() -> Coro<> {
    kettle::Server any = co_await kettle::start_server(echo_lines, "", 0);
    EXPECT_GE(any.sockets().size(), 1u);
    auto [rd, wr] = co_await kettle::open_connection("127.0.0.1", any.sockets().at(0).port);
    wr.write("any\n");
    EXPECT_EQ(co_await rd.readline(), "any\n");
    wr.close();
    std::vector<std::string> hosts{"127.0.0.1", "127.0.0.2"};
    kettle::Server two = co_await kettle::start_server(echo_lines, hosts, 0);
    EXPECT_EQ(two.sockets().size(), 2u);
  });
}

TEST(Server, handlers_see_the_loop_close_under_them) {
  // The loop closes with a server, connections and handlers still live: everything is
  // released (fds back to where they were), and the handles outlive the loop harmlessly.
  std::size_t before = open_fds();
  {
    std::optional<std::pair<StreamReader, StreamWriter>> keep;
    std::optional<kettle::Server> keep_server;
    kettle::EventLoop loop;
    std::size_t sockets_before = open_sockets();
    auto body = [&]() -> Coro<> {
      kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
      auto conn = co_await kettle::open_connection("127.0.0.1", port_of(server));
      conn.second.write("x\n");
      (void)co_await conn.first.readline();
      // Leave everything open: a handler is suspended in readline().
      keep = std::move(conn);
      keep_server.emplace(std::move(server));
    };
    loop.set_exception_handler([](kettle::EventLoop&, const kettle::ExceptionContext&) {});
    loop.run_until_complete(body());
    loop.close();
    EXPECT_EQ(open_sockets(), sockets_before);
    EXPECT_TRUE(keep->second.is_closing());
  }
  EXPECT_EQ(open_fds(), before);
}

// ---------------------------------------------------------------------------------------
// Interoperation with peers no one here wrote: Python's asyncio (Debian's /usr/bin/python3).

namespace {

const char* kPyEchoClient = R"(
import asyncio, sys
async def main(kind, where, lines):
    if kind == "tcp":
        r, w = await asyncio.open_connection("127.0.0.1", int(where))
    else:
        r, w = await asyncio.open_unix_connection(where)
    for i in range(lines):
        msg = f"line {i} \u00e9\n".encode()
        w.write(msg)
        await w.drain()
        got = await r.readline()
        assert got == msg, (got, msg)
    w.write_eof()
    assert await r.read() == b""
    w.close()
    await w.wait_closed()
    print("ok", lines, flush=True)
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
)";

const char* kPyEchoServer = R"(
import asyncio, os, sys
async def handle(r, w):
    while line := await r.readline():
        if line == b"quit\n":
            w.close()
            server.close()
            return
        w.write(line.upper())
        await w.drain()
    w.close()
async def main(kind):
    global server
    if kind == "tcp":
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
    else:
        path = f"/tmp/kettle-pyserver-{os.getpid()}.sock"
        server = await asyncio.start_unix_server(handle, path)
        print(path, flush=True)
    try:
        await server.serve_forever()
    except asyncio.CancelledError:
        pass
    print("done", flush=True)
asyncio.run(main(sys.argv[1]))
)";

const char* kPyManyClients = R"(
import asyncio, sys
async def main(port, n):
    sem = asyncio.Semaphore(500)
    conns = []
    async def one(i):
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"%d\n" % i)
            assert await r.readline() == b"%d\n" % i
        assert await r.read() == b""   # the server closes once all are in
        w.close()
        await w.wait_closed()
    await asyncio.gather(*(one(i) for i in range(n)))
    print("ok", n, flush=True)
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
)";

}  // namespace

TEST(Interop, python_asyncio_client_and_kettle_server_tcp) {
  run_test([]() -> Coro<> {
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
    PythonPeer py(kPyEchoClient, "tcp " + std::to_string(port_of(server)) + " 200");
    EXPECT_EQ(co_await py.readline(), "ok 200\n");
    EXPECT_EQ(co_await py.wait(), 0);
  });
}

TEST(Interop, python_asyncio_client_and_kettle_server_unix) {
  run_test([]() -> Coro<> {
    std::string path = temp_socket_path("interop");
    kettle::Server server = co_await kettle::start_unix_server(echo_lines, path);
    PythonPeer py(kPyEchoClient, "unix " + path + " 200");
    EXPECT_EQ(co_await py.readline(), "ok 200\n");
    EXPECT_EQ(co_await py.wait(), 0);
  });
}

TEST(Interop, kettle_client_and_python_asyncio_server) {
  run_test([]() -> Coro<> {
    for (std::string kind : {"tcp", "unix"}) {
      PythonPeer py(kPyEchoServer, kind);
      std::string where = co_await py.readline();
      EXPECT_FALSE(where.empty());
      if (where.empty()) co_return;
      where.pop_back();
      std::optional<std::pair<StreamReader, StreamWriter>> c;
      if (kind == "tcp")
        c.emplace(co_await kettle::open_connection("127.0.0.1", std::stoi(where)));
      else
        c.emplace(co_await kettle::open_unix_connection(where));
      auto& [r, w] = *c;
      std::string blob(50000, 'a');  // under Python's 64 KiB readline limit
      blob += "\n";
      w.write(blob);
      for (int i = 0; i < 100; ++i)
        w.write("hello " + std::to_string(i) + "\n");
      co_await w.drain();
      std::string upper(50000, 'A');
      EXPECT_EQ(co_await r.readuntil("\n", 200000), upper + "\n");
      for (int i = 0; i < 100; ++i)
        EXPECT_EQ(co_await r.readline(), "HELLO " + std::to_string(i) + "\n");
      w.write("quit\n");
      EXPECT_EQ(co_await r.read(), "");
      w.close();
      co_await w.wait_closed();
      EXPECT_EQ(co_await py.readline(), "done\n");
      EXPECT_EQ(co_await py.wait(), 0);
    }
  });
}

TEST(Server, many_concurrent_connections) {
  // 10 000 connections open at once on loopback, from Python asyncio clients in a child
  // process (this process may not hold both ends within its descriptor limit): all served,
  // and every descriptor is given back.
  const std::size_t n = 10000;
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < n + 200 && rl.rlim_max >= n + 200) {
    rlimit want = rl;
    want.rlim_cur = n + 200;
    ::setrlimit(RLIMIT_NOFILE, &want);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < n + 200) GTEST_SKIP() << "RLIMIT_NOFILE too low for " << n << " connections";
  std::size_t before = open_sockets();
  run_test([&]() -> Coro<> {
    std::size_t served = 0;
    kettle::Event all_in;
    kettle::ClientConnected handle = [&](StreamReader r, StreamWriter w) -> Coro<> {
      std::string line = co_await r.readline();
      w.write(line);
      if (++served == n) all_in.set();
      co_await all_in.wait();
      w.close();  // the server closes first: no TIME_WAIT holds the client's ports
      co_await w.wait_closed();
    };
    kettle::ServerOptions o;
    o.backlog = 1024;
    kettle::Server server = co_await kettle::start_server(handle, "127.0.0.1", 0, o);
    PythonPeer py(kPyManyClients, std::to_string(port_of(server)) + " " + std::to_string(n));
    EXPECT_EQ(co_await py.readline(), "ok " + std::to_string(n) + "\n");
    EXPECT_EQ(co_await py.wait(), 0);
    EXPECT_EQ(served, n);
    server.close();
    co_await kettle::wait_for(server.wait_closed(), 30.0);
  });
  EXPECT_EQ(open_sockets(), before);
}
