// kettle::ssl and TLS streams. Names follow the stream parts of CPython's test_asyncio
// test_ssl.py / test_sslproto.py where one exists. Certificates are made here with
// `openssl req`; peers no one here wrote (Python's ssl, openssl s_client / s_server) talk
// to kettle's clients and servers.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kettle/kettle.hpp>

#include "helpers.hpp"

#include "peers.hpp"

using kettle::Coro;
using kettle::StreamReader;
using kettle::StreamWriter;
using kettle::Task;
namespace ssl = kettle::ssl;

namespace {

template <class F>
void run_test(F body) {
  kettle::run(body());
}

// A CA, a server certificate it signed for localhost and 127.0.0.1, and a self-signed one.
struct Certs {
  std::string dir, ca, cert, key, self_cert, self_key;
  Certs() {
    dir = "/tmp/kettle-certs-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    ca = dir + "/ca.pem";
    cert = dir + "/server.pem";
    key = dir + "/server.key";
    self_cert = dir + "/self.pem";
    self_key = dir + "/self.key";
    std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; cd " + dir + "; exec 2>openssl.log;" + "openssl req -x509 " + ec +
        " -keyout ca.key -out ca.pem -days 2 -subj '/CN=kettle test CA';" + "openssl req " + ec +
        " -keyout server.key -out server.csr -subj '/CN=localhost/O=kettle';" +
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext;" +
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
        "-days 2 -extfile san.ext;" +
        "openssl req -x509 " + ec + " -keyout self.key -out self.pem -days 2 -subj '/CN=localhost'";
    if (std::system(("bash -c \"" + script + "\"").c_str()) != 0) std::abort();
  }
  ~Certs() { std::filesystem::remove_all(dir); }
};

const Certs& certs() {
  static Certs c;
  return c;
}

ssl::SSLContext server_context(bool self_signed = false) {
  ssl::SSLContext ctx(ssl::PROTOCOL_TLS_SERVER);
  if (self_signed)
    ctx.load_cert_chain(certs().self_cert, certs().self_key);
  else
    ctx.load_cert_chain(certs().cert, certs().key);
  return ctx;
}

ssl::SSLContext client_context() {
  return ssl::create_default_context(ssl::Purpose::SERVER_AUTH, certs().ca);
}

Coro<> echo_lines(StreamReader reader, StreamWriter writer) {
  while (auto line = co_await reader.next_line()) {
    writer.write(*line);
    co_await writer.drain();
  }
  writer.close();
}

std::uint16_t port_of(const kettle::Server& s) {
  return s.sockets().at(0).port;
}

// Options point at the context: it must live until the call that takes them (a temporary
// in the same full expression does).
kettle::ServerOptions tls_server(const ssl::SSLContext& ctx) {
  kettle::ServerOptions o;
  o.ssl = &ctx;
  return o;
}

kettle::ConnectOptions tls_client(const ssl::SSLContext& ctx, std::string_view hostname = {}) {
  kettle::ConnectOptions o;
  o.ssl = &ctx;
  o.server_hostname = hostname;
  return o;
}

}  // namespace

TEST(SSLContext, client_defaults_as_python) {
  ssl::SSLContext c(ssl::PROTOCOL_TLS_CLIENT);
  EXPECT_TRUE(c.check_hostname());
  EXPECT_EQ(c.verify_mode(), ssl::CERT_REQUIRED);
  EXPECT_THROW(c.verify_mode(ssl::CERT_NONE), kettle::ValueError);
  c.check_hostname(false);
  c.verify_mode(ssl::CERT_NONE);
  EXPECT_EQ(c.verify_mode(), ssl::CERT_NONE);
  c.check_hostname(true);  // back to CERT_REQUIRED
  EXPECT_EQ(c.verify_mode(), ssl::CERT_REQUIRED);
  ssl::SSLContext s(ssl::PROTOCOL_TLS_SERVER);
  EXPECT_FALSE(s.check_hostname());
  EXPECT_EQ(s.verify_mode(), ssl::CERT_NONE);
}

TEST(SSLContext, load_errors_are_clear) {
  ssl::SSLContext s(ssl::PROTOCOL_TLS_SERVER);
  EXPECT_THROW(s.load_cert_chain("/nonexistent/cert.pem"), kettle::FileNotFoundError);
  EXPECT_THROW(s.load_verify_locations("/nonexistent/ca.pem"), kettle::FileNotFoundError);
  EXPECT_THROW(s.load_verify_locations(), kettle::ValueError);
  // A key that does not belong to the certificate.
  try {
    s.load_cert_chain(certs().cert, certs().self_key);
    ADD_FAILURE() << "mismatched key accepted";
  } catch (const ssl::SSLError& e) {
    EXPECT_NE(std::string(e.what()).find("key"), std::string::npos) << e.what();
  }
  // Not a certificate at all.
  try {
    s.load_cert_chain("/etc/hostname");
    ADD_FAILURE() << "garbage accepted";
  } catch (const ssl::SSLError& e) {
    EXPECT_NE(std::string(e.what()).find("load_cert_chain"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.set_alpn_protocols({std::string(300, 'x')}), kettle::ValueError);
}

TEST(SSLStreams, test_start_tls_server_and_client) {
  run_test([]() -> Coro<> {
    ssl::SSLContext sctx = server_context();
    kettle::ServerOptions so = tls_server(sctx);
    so.limit = 1 << 20;  // lines of 300 kB
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0, so);
    for (std::string host : {"localhost", "127.0.0.1"}) {
      auto [r, w] =
          co_await kettle::open_connection(host, port_of(server), tls_client(client_context()));
      w.write("hello over TLS\n");
      EXPECT_EQ(co_await r.readline(), "hello over TLS\n");
      std::string big(300000, 'b');  // many records, through drain()
      big += "\n";
      w.write(big);
      co_await w.drain();
      EXPECT_EQ(co_await r.readuntil("\n", 400000), big);
      EXPECT_FALSE(w.can_write_eof());
      EXPECT_THROW(w.write_eof(), kettle::RuntimeError);
      auto info = w.ssl_object();
      EXPECT_TRUE(info.has_value());
      if (!info) co_return;
      EXPECT_EQ(info->version, "TLSv1.3");
      EXPECT_FALSE(info->cipher.empty());
      EXPECT_EQ(info->server_hostname, host);
      EXPECT_TRUE(info->peercert.has_value());
      if (info->peercert) {
        EXPECT_NE(info->peercert->subject.find("CN=localhost"), std::string::npos);
        EXPECT_NE(info->peercert->issuer.find("kettle test CA"), std::string::npos);
        EXPECT_EQ(info->peercert->subject_alt_names,
                  (std::vector<std::string>{"DNS:localhost", "IP Address:127.0.0.1"}));
        EXPECT_FALSE(info->peercert->der.empty());
      }
      w.close();
      co_await w.wait_closed();
    }
  });
}

TEST(SSLStreams, test_create_connection_ssl_failed_certificate) {
  run_test([]() -> Coro<> {
    std::size_t handled = 0;
    kettle::ClientConnected counting = [&](StreamReader r, StreamWriter w) -> Coro<> {
      ++handled;
      co_await echo_lines(std::move(r), std::move(w));
    };
    kettle::Server server =
        co_await kettle::start_server(counting, "127.0.0.1", 0, tls_server(server_context(true)));
    try {
      (void)co_await kettle::open_connection("localhost", port_of(server),
                                             tls_client(client_context()));
      ADD_FAILURE() << "a self-signed certificate was accepted";
    } catch (const ssl::SSLCertVerificationError& e) {
      EXPECT_NE(std::string(e.what()).find("certificate verify failed"), std::string::npos)
          << e.what();
      EXPECT_NE(e.verify_code(), 0);
    }
    // The default context knows nothing of our CA either.
    CO_EXPECT_THROW(co_await kettle::open_connection("localhost", port_of(server),
                                                     tls_client(ssl::create_default_context())),
                    ssl::SSLCertVerificationError);
    co_await kettle::sleep(0.05);
    EXPECT_EQ(handled, 0u);  // the handler never runs for a failed handshake
  });
}

TEST(SSLStreams, hostname_mismatch_is_refused) {
  run_test([]() -> Coro<> {
    kettle::Server server =
        co_await kettle::start_server(echo_lines, "127.0.0.1", 0, tls_server(server_context()));
    CO_EXPECT_THROW(co_await kettle::open_connection("127.0.0.1", port_of(server),
                                                     tls_client(client_context(), "wrong.example")),
                    ssl::SSLCertVerificationError);
    // Without a hostname check (CERT_REQUIRED still verifies the chain) it connects.
    ssl::SSLContext lax = client_context();
    lax.check_hostname(false);
    auto [r, w] = co_await kettle::open_connection("127.0.0.1", port_of(server),
                                                   tls_client(lax, "wrong.example"));
    w.write("x\n");
    EXPECT_EQ(co_await r.readline(), "x\n");
    w.close();
    // And CERT_NONE accepts even a self-signed certificate.
    kettle::Server self =
        co_await kettle::start_server(echo_lines, "127.0.0.1", 0, tls_server(server_context(true)));
    ssl::SSLContext none(ssl::PROTOCOL_TLS_CLIENT);
    none.check_hostname(false);
    none.verify_mode(ssl::CERT_NONE);
    auto [r2, w2] = co_await kettle::open_connection("127.0.0.1", port_of(self), tls_client(none));
    w2.write("y\n");
    EXPECT_EQ(co_await r2.readline(), "y\n");
    w2.close();
  });
}

TEST(SSLStreams, alpn_negotiation) {
  run_test([]() -> Coro<> {
    ssl::SSLContext sctx = server_context();
    sctx.set_alpn_protocols({"h2", "http/1.1"});
    kettle::Server server =
        co_await kettle::start_server(echo_lines, "127.0.0.1", 0, tls_server(sctx));
    ssl::SSLContext cctx = client_context();
    cctx.set_alpn_protocols({"http/1.1"});
    auto [r, w] = co_await kettle::open_connection("localhost", port_of(server), tls_client(cctx));
    EXPECT_EQ(w.ssl_object()->selected_alpn_protocol, "http/1.1");
    w.close();
  });
}

TEST(SSLStreams, test_handshake_timeout) {
  run_test([]() -> Coro<> {
    // A plain TCP server that never answers the client's hello.
    kettle::Event done;
    kettle::ClientConnected mute = [&](StreamReader, StreamWriter w) -> Coro<> {
      co_await done.wait();
      w.close();
    };
    kettle::Server server = co_await kettle::start_server(mute, "127.0.0.1", 0);
    ssl::SSLContext cctx = client_context();
    kettle::ConnectOptions o = tls_client(cctx, "localhost");
    o.ssl_handshake_timeout = 0.2;
    try {
      (void)co_await kettle::open_connection("127.0.0.1", port_of(server), o);
      ADD_FAILURE() << "handshake with a mute server succeeded";
    } catch (const kettle::ConnectionAbortedError& e) {
      EXPECT_NE(std::string(e.what()).find("SSL handshake is taking longer than 0.2 seconds"),
                std::string::npos)
          << e.what();
    }
    o.ssl_handshake_timeout = 0;
    CO_EXPECT_THROW(co_await kettle::open_connection("127.0.0.1", port_of(server), o),
                    kettle::ValueError);
    done.set();
  });
}

TEST(SSLStreams, loop_closed_during_a_handshake) {
  // The loop closes while a TLS client waits for a handshake that never comes: the
  // connection goes with the task, nothing throws out of a destructor.
  auto sockets = [] {
    std::size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
      std::error_code ec;
      if (std::filesystem::read_symlink(e.path(), ec).string().rfind("socket:", 0) == 0) ++n;
    }
    return n;
  };
  std::size_t before = sockets();
  kettle::EventLoop loop;
  loop.set_exception_handler([](kettle::EventLoop&, const kettle::ExceptionContext&) {});
  std::optional<kettle::Server> mute_server;
  std::optional<Task<std::pair<StreamReader, StreamWriter>>> pending;
  auto body = [&]() -> Coro<> {
    kettle::ClientConnected mute = [](StreamReader r, StreamWriter w) -> Coro<> {
      (void)co_await r.read();
      w.close();
    };
    mute_server.emplace(co_await kettle::start_server(mute, "127.0.0.1", 0));
    pending = kettle::create_task(kettle::open_connection(
        "127.0.0.1", port_of(*mute_server), tls_client(client_context(), "localhost")));
    co_await kettle::sleep(0.05);
  };
  loop.run_until_complete(body());
  EXPECT_FALSE(pending->done());
  loop.close();                  // must not terminate
  EXPECT_EQ(sockets(), before);  // client, server side and listener all closed
}

TEST(SSLStreams, server_context_of_the_wrong_side_is_value_error) {
  run_test([]() -> Coro<> {
    CO_EXPECT_THROW(
        co_await kettle::start_server(echo_lines, "127.0.0.1", 0, tls_server(client_context())),
        kettle::ValueError);
  });
}

TEST(SSLStreams, server_handshake_timeout_drops_silent_clients) {
  run_test([]() -> Coro<> {
    ssl::SSLContext sctx = server_context();
    kettle::ServerOptions so = tls_server(sctx);
    so.ssl_handshake_timeout = 0.2;
    kettle::Server server = co_await kettle::start_server(echo_lines, "127.0.0.1", 0, so);
    auto [r, w] = co_await kettle::open_connection("127.0.0.1", port_of(server));  // plain TCP
    EXPECT_EQ(co_await kettle::wait_for(r.read(), 10.0), "");  // the server gave up on us
    w.close();
    server.close();
    co_await kettle::wait_for(server.wait_closed(), 10.0);
  });
}

TEST(SSLStreams, close_does_not_hang_on_a_peer_that_never_reads) {
  run_test([]() -> Coro<> {
    // The server never reads and never sends close_notify. The client's close() with
    // megabytes still buffered ends within ssl_shutdown_timeout.
    kettle::Event done;
    kettle::ClientConnected stuck = [&](StreamReader, StreamWriter w) -> Coro<> {
      co_await done.wait();
      w.abort();
    };
    kettle::Server server =
        co_await kettle::start_server(stuck, "127.0.0.1", 0, tls_server(server_context()));
    ssl::SSLContext cctx = client_context();
    kettle::ConnectOptions o = tls_client(cctx, "localhost");
    o.ssl_shutdown_timeout = 0.3;
    auto [r, w] = co_await kettle::open_connection("127.0.0.1", port_of(server), o);
    std::string block(1 << 20, 'z');
    for (int i = 0; i < 32; ++i)
      w.write(block);
    EXPECT_GT(w.get_write_buffer_size(), 0u);
    w.close();
    co_await kettle::wait_for(w.wait_closed(), 10.0);
    EXPECT_EQ(w.fileno(), -1);
    done.set();
  });
}

TEST(SSLStreams, peer_without_close_notify_is_eof) {
  run_test([]() -> Coro<> {
    // The server closes the TCP connection without a close_notify (abort): the client
    // reads what came, then EOF or a connection error, and close() returns at once.
    kettle::ClientConnected rude = [](StreamReader r, StreamWriter w) -> Coro<> {
      (void)co_await r.readline();
      w.write("bye\n");
      co_await w.drain();
      co_await kettle::sleep(0.05);
      w.abort();
    };
    kettle::Server server =
        co_await kettle::start_server(rude, "127.0.0.1", 0, tls_server(server_context()));
    auto [r, w] = co_await kettle::open_connection("localhost", port_of(server),
                                                   tls_client(client_context()));
    w.write("hi\n");
    EXPECT_EQ(co_await r.readline(), "bye\n");
    try {
      EXPECT_EQ(co_await r.read(), "");
    } catch (const kettle::ConnectionError&) {
    }
    w.close();
    co_await kettle::wait_for(w.wait_closed(), 10.0);
  });
}

TEST(SSLStreams, test_start_tls_starttls_upgrade) {
  run_test([]() -> Coro<> {
    kettle::ClientConnected starttls = [](StreamReader r, StreamWriter w) -> Coro<> {
      EXPECT_EQ(co_await r.readline(), "STARTTLS\n");
      w.write("OK\n");
      co_await w.start_tls(server_context(), {}, 60.0, true);
      co_await echo_lines(r, w);
    };
    kettle::Server server = co_await kettle::start_server(starttls, "127.0.0.1", 0);
    auto [r, w] = co_await kettle::open_connection("127.0.0.1", port_of(server));
    w.write("STARTTLS\n");
    EXPECT_EQ(co_await r.readline(), "OK\n");
    EXPECT_FALSE(w.ssl_object());
    co_await w.start_tls(client_context(), "localhost");
    EXPECT_TRUE(w.ssl_object());
    w.write("secret\n");
    EXPECT_EQ(co_await r.readline(), "secret\n");
    CO_EXPECT_THROW(co_await w.start_tls(client_context(), "localhost"), kettle::RuntimeError);
    w.close();
    co_await w.wait_closed();
  });
}

TEST(SSLStreams, tls_over_unix_socket) {
  run_test([]() -> Coro<> {
    std::string path = "/tmp/kettle-tls-" + std::to_string(::getpid()) + ".sock";
    kettle::Server server =
        co_await kettle::start_unix_server(echo_lines, path, tls_server(server_context()));
    CO_EXPECT_THROW(co_await kettle::open_unix_connection(path, tls_client(client_context())),
                    kettle::ValueError);  // no hostname to check
    auto [r, w] =
        co_await kettle::open_unix_connection(path, tls_client(client_context(), "localhost"));
    w.write("unix tls\n");
    EXPECT_EQ(co_await r.readline(), "unix tls\n");
    w.close();
  });
}

// ---------------------------------------------------------------------------------------
// Interoperation: Python's ssl, openssl s_client and s_server.

namespace {
const char* kPyTlsClient = R"(
import asyncio, ssl, sys
async def main(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    r, w = await asyncio.open_connection("localhost", port, ssl=ctx)
    for i in range(50):
        msg = b"tls line %d\n" % i
        w.write(msg)
        assert await r.readline() == msg
    w.close()
    await w.wait_closed()
    print("ok", w.get_extra_info("ssl_object").version(), flush=True)
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
)";

const char* kPyTlsServer = R"(
import asyncio, ssl, sys
done = None
async def handle(r, w):
    while line := await r.readline():
        w.write(line.upper())
        await w.drain()
    w.close()
    done.set()
async def main(cert, key):
    global done
    done = asyncio.Event()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.wait_for(done.wait(), 30)
asyncio.run(main(sys.argv[1], sys.argv[2]))
)";
}  // namespace

TEST(SSLInterop, python_ssl_client_and_kettle_server) {
  run_test([]() -> Coro<> {
    kettle::Server server =
        co_await kettle::start_server(echo_lines, "127.0.0.1", 0, tls_server(server_context()));
    PythonPeer py(kPyTlsClient, std::to_string(port_of(server)) + " " + certs().ca);
    EXPECT_EQ(co_await py.readline(), "ok TLSv1.3\n");
    EXPECT_EQ(co_await py.wait(), 0);
  });
}

TEST(SSLInterop, kettle_client_and_python_ssl_server) {
  run_test([]() -> Coro<> {
    PythonPeer py(kPyTlsServer, certs().cert + " " + certs().key);
    std::string port = co_await py.readline();
    EXPECT_FALSE(port.empty());
    if (port.empty()) co_return;
    auto [r, w] = co_await kettle::open_connection("localhost", std::uint16_t(std::stoi(port)),
                                                   tls_client(client_context()));
    w.write("shout\n");
    EXPECT_EQ(co_await r.readline(), "SHOUT\n");
    w.close();
    co_await w.wait_closed();
  });
}

TEST(SSLInterop, openssl_s_client_and_kettle_server) {
  run_test([]() -> Coro<> {
    // One line back, then the server closes (s_client -quiet waits for that).
    kettle::ClientConnected echo_once = [](StreamReader r, StreamWriter w) -> Coro<> {
      w.write(co_await r.readline());
      co_await w.drain();
      w.close();
    };
    kettle::Server server =
        co_await kettle::start_server(echo_once, "127.0.0.1", 0, tls_server(server_context()));
    PeerProcess client(
        "bash -c \"printf 'from s_client\\n' | openssl s_client -connect 127.0.0.1:" +
        std::to_string(port_of(server)) + " -servername localhost -CAfile " + certs().ca +
        " -verify_return_error -quiet 2>/dev/null\"");
    EXPECT_EQ(co_await client.readline(), "from s_client\n");
    EXPECT_EQ(co_await client.wait(), 0);
  });
}

TEST(SSLInterop, kettle_client_and_openssl_s_server) {
  run_test([]() -> Coro<> {
    std::uint16_t port;
    {  // a free port
      kettle::Server probe = co_await kettle::start_server(echo_lines, "127.0.0.1", 0);
      port = port_of(probe);
    }
    PeerProcess server("openssl s_server -accept 127.0.0.1:" + std::to_string(port) + " -cert " +
                       certs().cert + " -key " + certs().key + " -rev -naccept 1 2>/dev/null");
    // s_server says ACCEPT once it listens.
    for (std::string line; (line = co_await server.readline()).rfind("ACCEPT", 0) != 0;)
      EXPECT_FALSE(line.empty());
    auto [r, w] = co_await kettle::open_connection("127.0.0.1", port,
                                                   tls_client(client_context(), "localhost"));
    w.write("kettle\n");
    std::string got = co_await r.readline();
    EXPECT_EQ(got, "elttek\n");  // -rev: each line comes back reversed
    w.close();
    co_await w.wait_closed();
    EXPECT_EQ(co_await server.wait(), 0);
  });
}
