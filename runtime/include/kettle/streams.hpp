/// @file
/// kettle/streams.hpp — asyncio streams: TCP and Unix-socket connections as a StreamReader
/// and a StreamWriter, and servers that run a task per connection.
///
/// @code
/// kettle::Coro<> handle_echo(kettle::StreamReader reader, kettle::StreamWriter writer) {
///   std::string data = co_await reader.read(100);
///   writer.write(data);
///   co_await writer.drain();
///   writer.close();
///   co_await writer.wait_closed();
/// }
/// kettle::Server server = co_await kettle::start_server(handle_echo, "127.0.0.1", 8888);
/// co_await server.serve_forever();
///
/// auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", 8888);
/// @endcode
///
/// Bytes are std::string (binary-safe, asyncio's bytes). Errors are Python's: OSError and its
/// subclasses (ConnectionResetError, ConnectionRefusedError, BrokenPipeError, ...; see
/// exceptions.hpp), gaierror for names that do not resolve (socket.hpp), and asyncio's
/// IncompleteReadError and LimitOverrunError for reads.
///
/// Readers and writers are handles: copies share one connection. A Server is move-only;
/// destroying it closes it.
/// Thread safety: loop-local; everything belongs to the loop that made it. A call from
/// another thread than that loop's raises RuntimeError while the loop exists.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/socket.hpp"
#include "kettle/ssl.hpp"

namespace kettle {

/// asyncio's default limit of a StreamReader's buffer (streams._DEFAULT_LIMIT).
inline constexpr std::size_t kStreamLimit = 64 * 1024;

namespace detail {
class ReaderCore;
class StreamTransport;
class ServerCore;
struct WriterHandle;
}  // namespace detail

/// asyncio.StreamReader: the reading side of a connection (or a reader fed by hand).
/// A handle: copies share one buffer.
class StreamReader {
 public:
  /// A reader fed by hand with feed_data / feed_eof (asyncio.StreamReader(limit=...)).
  /// ValueError if limit is 0.
  explicit StreamReader(std::size_t limit = kStreamLimit);

  /// Up to n bytes, waiting for at least one; n < 0: everything until EOF. "" at EOF.
  /// Cancellation: nothing is consumed; what arrived stays buffered for the next read.
  [[nodiscard]] Coro<std::string> read(std::ptrdiff_t n = -1);
  /// Exactly n bytes. IncompleteReadError (with what came) at EOF before n bytes; ValueError
  /// if n < 0.
  /// Cancellation: nothing is consumed.
  [[nodiscard]] Coro<std::string> readexactly(std::ptrdiff_t n);
  ///@{
  /// Bytes up to and including the first separator; with several separators, the one whose
  /// match ends first. At EOF before a separator: IncompleteReadError (the rest of the data
  /// is its partial() and leaves the buffer). No separator within `limit` bytes (default:
  /// the reader's): LimitOverrunError, the data stays in the buffer. ValueError for an empty
  /// separator or none at all. On g++ 12, name the vector before the co_await: a braced list
  /// inside a co_await expression does not compile there (a GCC 12 bug).
  /// Cancellation: nothing is consumed.
  [[nodiscard]] Coro<std::string> readuntil(std::string_view separator = "\n",
                                            std::optional<std::size_t> limit = std::nullopt);
  [[nodiscard]] Coro<std::string> readuntil(std::vector<std::string> separators,
                                            std::optional<std::size_t> limit = std::nullopt);
  ///@}
  /// A line with its "\n"; at EOF the last partial line, then "". A line longer than the
  /// limit: ValueError, and the line (up to its "\n", or the whole buffer) is dropped.
  /// Cancellation: nothing is consumed.
  [[nodiscard]] Coro<std::string> readline(std::optional<std::size_t> limit = std::nullopt);
  /// `async for line in reader`: the next line, or nullopt at EOF.
  /// @code
  /// while (auto line = co_await reader.next_line()) use(*line);
  /// @endcode
  /// Cancellation: nothing is consumed.
  [[nodiscard]] Coro<std::optional<std::string>> next_line();

  /// EOF was received and the buffer is empty.
  bool at_eof() const noexcept;
  /// The buffer's limit (what readuntil() and readline() use by default).
  std::size_t limit() const noexcept;
  /// What reads raise once set (a connection lost with an error), or null.
  std::exception_ptr exception() const noexcept;
  /// What is buffered and not yet read (asyncio's _buffer), for tests and diagnostics.
  std::string_view buffer() const noexcept;

  ///@{
  /// The feeding side (asyncio's protocol-facing methods): adds data (RuntimeError after
  /// feed_eof), marks EOF, or sets the exception that reads raise.
  void feed_data(std::string_view data);  // RuntimeError after feed_eof
  void feed_eof();
  void set_exception(std::exception_ptr e);
  ///@}

  /// Implementation: a handle to the reader state core.
  explicit StreamReader(std::shared_ptr<detail::ReaderCore> core) noexcept
      : core_(std::move(core)) {}

 private:
  std::shared_ptr<detail::ReaderCore> core_;
};

/// asyncio.StreamWriter: the writing side of a connection, and the transport's methods.
/// A handle: copies share one connection.
class StreamWriter {
 public:
  ///@{
  /// Sends at once what the socket takes; the rest is buffered and sent as the peer reads.
  /// RuntimeError after write_eof(). After the connection is lost, data is dropped (drain()
  /// raises).
  void write(std::string_view data);
  void write(std::span<const std::byte> data);
  ///@}
  /// write() of each element of lines (anything convertible to std::string_view).
  template <class Range>
  void writelines(const Range& lines) {
    for (const auto& line : lines)
      write(std::string_view(line));
  }
  /// Shuts down the sending side once the buffer is sent (the peer reads EOF). RuntimeError
  /// on a TLS connection, which cannot half-close (can_write_eof() is false).
  void write_eof();
  /// Whether write_eof() is possible (false on a TLS connection).
  bool can_write_eof() const noexcept;

  /// Waits while more than the high-water mark is buffered, until the buffer is at the
  /// low-water mark. Raises the reader's exception, if any, and ConnectionResetError (or
  /// the error that broke the connection) once the connection is lost. Beyond asyncio, it
  /// also lets the loop poll I/O once per 64 KiB written, so that a writer the kernel keeps
  /// up with cannot starve the other tasks.
  /// Cancellation: nothing written is lost; the buffer is still sent.
  [[nodiscard]] Coro<void> drain();

  /// Closes the connection once the buffer is sent (TLS: after sending close_notify; if the
  /// peer does not take the rest within ssl_shutdown_timeout, the connection is aborted).
  /// The peer's close_notify is not waited for. Repeated calls do nothing.
  void close();
  /// Whether the connection is closed or closing (close(), abort() or lost).
  bool is_closing() const noexcept;
  /// Waits until the connection is closed; raises the error that broke it, if any.
  /// Cancellation: the connection closes all the same.
  [[nodiscard]] Coro<void> wait_closed();
  /// transport.abort(): closes at once, dropping what is buffered.
  void abort();

  /// transport.set_write_buffer_limits: high defaults to 64 KiB (or 4 × low), low to a
  /// quarter of high. ValueError unless high >= low.
  void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                               std::optional<std::size_t> low = std::nullopt);
  /// transport.get_write_buffer_size: how many bytes are buffered, not yet sent.
  std::size_t get_write_buffer_size() const noexcept;

  ///@{
  /// get_extra_info("peername" / "sockname" / "socket"): the addresses, and the file
  /// descriptor (-1 once closed).
  SockAddr peername() const;
  SockAddr sockname() const;
  int fileno() const noexcept;
  ///@}
  /// get_extra_info("ssl_object" / "peercert"): what TLS negotiated; none on a plain
  /// connection or before the handshake.
  std::optional<ssl::SSLInfo> ssl_object() const;

  /// STARTTLS: drains, then upgrades this connection to TLS (client side unless server_side)
  /// and waits for the handshake. server_hostname: for SNI and the hostname check.
  /// Cancellation: the connection is aborted (a half-done handshake cannot be resumed).
  [[nodiscard]] Coro<void> start_tls(ssl::SSLContext context, std::string server_hostname = {},
                                     double ssl_handshake_timeout = 60.0, bool server_side = false);

  /// Whether both are handles of the same connection.
  friend bool operator==(const StreamWriter& a, const StreamWriter& b) noexcept {
    return a.h_ == b.h_;
  }

  /// Implementation: a handle to the connection h.
  explicit StreamWriter(std::shared_ptr<detail::WriterHandle> h) noexcept : h_(std::move(h)) {}

 private:
  detail::StreamTransport& t() const noexcept;
  std::shared_ptr<detail::WriterHandle> h_;
};

/// open_connection's keyword arguments:
/// @code
/// co_await kettle::open_connection(host, port, {.limit = 1 << 20, .ssl = &ctx});
/// @endcode
/// They are views (string_view, a pointer to the context) and are copied when the call is
/// made: g++ 12 destroys an aggregate temporary inside a co_await twice (GCC PR 99576), which
/// is harmless only for a trivially destructible one like these.
struct ConnectOptions {
  std::size_t limit = kStreamLimit;  ///< The reader's limit.
  int family = 0;                    ///< AF_INET, AF_INET6 or 0 (any).
  /// Bind the socket to this (host, port) first.
  std::optional<std::pair<std::string_view, std::uint16_t>> local_addr;
  /// RFC 8305: start the next address's attempt after this many seconds without waiting for
  /// the previous to fail (asyncio's recommended value: 0.25). None: one after another.
  std::optional<double> happy_eyeballs_delay;
  /// Reorder addresses by family, this many of the first family first (0: as resolved;
  /// 1 when happy_eyeballs_delay is set and this is 0).
  int interleave = 0;
  ///@{
  /// TLS: the context (ssl::create_default_context() for the usual client), the name to
  /// send (SNI) and check the certificate against (default: host), and how long the
  /// handshake and the closing may take, in seconds (asyncio: 60 and 30; closing here
  /// defaults to 5 and then aborts, so that a peer that never reads cannot hang close()).
  const ssl::SSLContext* ssl = nullptr;
  std::string_view server_hostname;
  double ssl_handshake_timeout = 60.0;
  double ssl_shutdown_timeout = 5.0;
  ///@}
};

/// start_server's keyword arguments (views too, copied when the call is made).
struct ServerOptions {
  std::size_t limit = kStreamLimit;  ///< The limit of each connection's reader.
  int family = 0;                    ///< AF_INET, AF_INET6 or 0 (any).
  int backlog = 100;                 ///< listen(2)'s backlog.
  bool reuse_address = true;         ///< SO_REUSEADDR.
  bool reuse_port = false;           ///< SO_REUSEPORT.
  bool start_serving = true;         ///< False: listen, but accept only after start_serving().
  ///@{
  /// TLS: a server context (load_cert_chain done); handlers run after the handshake, which
  /// may take ssl_handshake_timeout seconds; closing may take ssl_shutdown_timeout.
  const ssl::SSLContext* ssl = nullptr;
  double ssl_handshake_timeout = 60.0;
  double ssl_shutdown_timeout = 5.0;
  ///@}
};

static_assert(std::is_trivially_destructible_v<ConnectOptions> &&
                  std::is_trivially_destructible_v<ServerOptions>,
              "kettle: stream options must stay trivially destructible (see above)");

/// Runs as a task per connection. An exception that escapes it goes to the loop's exception
/// handler ("Unhandled exception in client_connected_cb") and closes the connection.
using ClientConnected = std::function<Coro<void>(StreamReader, StreamWriter)>;

/// asyncio.Server. Dropping the last handle closes the server (its clients stay connected).
class [[nodiscard]] Server {
 public:
  /// Takes o's server over.
  Server(Server&&) noexcept = default;
  /// Closes this handle's server, if any, and takes o's over.
  Server& operator=(Server&&) noexcept;
  /// Closes the server (not its clients).
  ~Server();

  /// Stops listening; connections already accepted stay open. Repeated calls do nothing.
  void close();
  ///@{
  /// close() on every client connection / abort() on every one (3.13).
  void close_clients();
  void abort_clients();
  ///@}
  /// Whether the server is accepting connections.
  bool is_serving() const noexcept;
  /// Starts accepting (after ServerOptions::start_serving = false).
  void start_serving();
  /// Accepts until cancelled or closed. Cancelled (or closed by someone else): closes the
  /// server, closes its clients, waits for them to go, and raises CancelledError.
  /// RuntimeError if already running or closed.
  [[nodiscard]] Coro<void> serve_forever();
  /// Waits until the server is closed and every client connection is gone.
  /// Cancellation: nothing is left behind.
  [[nodiscard]] Coro<void> wait_closed();
  /// The addresses listened on (server.sockets' getsockname()); empty once closed.
  std::vector<SockAddr> sockets() const;

  /// Implementation: a handle to the server state core.
  explicit Server(std::shared_ptr<detail::ServerCore> core) noexcept : core_(std::move(core)) {}

 private:
  std::shared_ptr<detail::ServerCore> core_;
};

/// asyncio.open_connection: connects to host:port (a name is resolved on the resolver
/// threads, see socket.hpp) and
/// returns the connection's reader and writer. TCP_NODELAY is set, as asyncio does. Every
/// address is tried; if all fail, the error (or OSError "Multiple exceptions: ...").
/// Cancellation: the lookup is walked away from, sockets being connected are closed.
[[nodiscard]] Coro<std::pair<StreamReader, StreamWriter>> open_connection(
    std::string host, std::uint16_t port, ConnectOptions options = {});
/// asyncio.open_unix_connection: the same over a Unix socket (a path, or an abstract name
/// starting with '\0'). FileNotFoundError if there is no such socket.
[[nodiscard]] Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(
    std::string path, ConnectOptions options = {});

/// asyncio.start_server: listens on host:port: "" means every interface, a name every
/// address it resolves to;
/// port 0 picks a free port (see sockets()). IPv6 sockets are IPV6_V6ONLY.
/// Cancellation: nothing is left listening.
[[nodiscard]] Coro<Server> start_server(ClientConnected client_connected, std::string host,
                                        std::uint16_t port, ServerOptions options = {});
/// start_server() listening on every host given.
[[nodiscard]] Coro<Server> start_server(ClientConnected client_connected,
                                        std::vector<std::string> hosts, std::uint16_t port,
                                        ServerOptions options = {});
/// asyncio.start_unix_server: listens on a Unix socket. A socket file already at `path` is
/// replaced; the file is removed when the server closes (if it is still ours).
[[nodiscard]] Coro<Server> start_unix_server(ClientConnected client_connected, std::string path,
                                             ServerOptions options = {});

}  // namespace kettle
