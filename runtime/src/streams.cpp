#include "kettle/streams.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <unordered_set>

#include <asio/generic/stream_protocol.hpp>
#include <asio/post.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kettle/detail/wait_list.hpp"
#include "kettle/event_loop.hpp"
#include "kettle/tasks.hpp"
#include "kettle/use_coro.hpp"
#include "ssl_detail.hpp"
#include "streams_detail.hpp"

namespace kettle {
namespace detail {

using Socket = asio::generic::stream_protocol::socket;

// ---------------------------------------------------------------------------------------
// The reader's buffer and its one waiter (asyncio.StreamReader's state).

class ReaderCore : public LoopBound {
 public:
  using LoopBound::bind_to;
  using LoopBound::check_loop;
  using LoopBound::check_thread;
  explicit ReaderCore(std::size_t limit) : limit_(limit) {
    if (limit == 0) throw ValueError("StreamReader: limit must be greater than 0");
  }

  std::string_view data() const noexcept { return {buf_.get() + head_, tail_ - head_}; }
  std::size_t size() const noexcept { return tail_ - head_; }
  std::string take(std::size_t n) {
    std::string s(buf_.get() + head_, n);
    consume(n);
    return s;
  }
  void consume(std::size_t n) noexcept {
    head_ += n;
    if (head_ == tail_) {
      head_ = tail_ = 0;
      // Far more than a paused reader ever holds (a big readexactly is over): give it back.
      // (Only then: freeing and growing again would fault in fresh pages every time.)
      if (cap_ > 4 * (2 * limit_ + kMaxRecv)) {
        buf_.reset();
        cap_ = 0;
      }
    }
  }
  void clear() noexcept { consume(size()); }

  // Where the transport's next recv goes: straight into the buffer when it has room, else
  // a scratch area whose bytes commit() appends (an idle connection holds no large buffer).
  char* prepare(std::size_t& n) {
    // Compacting moves no more bytes than were consumed since the last time: amortized, a
    // byte is moved at most once.
    if (cap_ - tail_ < kMinDirect && head_ > 0 && head_ >= size()) compact();
    if (cap_ - tail_ >= kMinDirect) {
      direct_ = true;
      n = std::min(cap_ - tail_, kMaxRecv);
      return buf_.get() + tail_;
    }
    direct_ = false;
    n = kScratch;
    return scratch();
  }
  void commit(std::size_t n) {
    if (direct_)
      tail_ += n;
    else
      append(scratch(), n);
    after_feed();
  }

  void feed_data(std::string_view d) {
    if (eof_) throw RuntimeError("StreamReader.feed_data() after feed_eof()");
    if (d.empty()) return;
    append(d.data(), d.size());
    after_feed();
  }
  void feed_eof() {
    eof_ = true;
    wakeup_waiter();
  }
  void set_exception(std::exception_ptr e) {
    exc_ = std::move(e);
    if (WaitNode* w = std::exchange(waiter_, nullptr)) {
      woken_by_exception_ = true;
      w->set_done();
    }
  }
  void maybe_resume_transport();
  void resume_for_wait();

  static constexpr std::size_t kMinDirect = 16 * 1024;
  static constexpr std::size_t kMaxRecv = 256 * 1024;
  static constexpr std::size_t kScratch = 64 * 1024;

  std::size_t limit_;
  bool eof_ = false;
  bool paused_ = false;
  bool unbounded_ = false;  // never pause (a subprocess being waited for must not block)
  std::exception_ptr exc_;
  bool woken_by_exception_ = false;  // the waiter's wake-up was set_exception's
  WaitNode* waiter_ = nullptr;
  StreamTransport* transport_ = nullptr;

  // Where a recv goes when the buffer has no room (the transport's TLS reads use it too:
  // OpenSSL has copied those bytes before the reader can want the area).
  static char* scratch() {
    static thread_local std::unique_ptr<char[]> s;
    if (!s) s.reset(new char[kScratch]);
    return s.get();
  }

 private:
  void compact() noexcept {
    std::memmove(buf_.get(), buf_.get() + head_, size());
    tail_ -= head_;
    head_ = 0;
  }
  void append(const char* p, std::size_t n) {
    if (cap_ - tail_ < n) {
      if (head_ > 0) compact();
      if (cap_ - tail_ < n) {
        std::size_t cap = std::max({tail_ + n, cap_ * 2, std::size_t(2048)});
        std::unique_ptr<char[]> b(new char[cap]);
        if (tail_) std::memcpy(b.get(), buf_.get(), tail_);
        buf_ = std::move(b);
        cap_ = cap;
      }
    }
    std::memcpy(buf_.get() + tail_, p, n);
    tail_ += n;
  }
  void after_feed();
  void wakeup_waiter() {
    if (WaitNode* w = std::exchange(waiter_, nullptr)) w->set_done();
  }

  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  bool direct_ = false;
};

// _wait_for_data: one waiter at a time.
class DataWaiter : private WaitNode {
 public:
  DataWaiter(ReaderCore& r, const char* fn) noexcept : r_(r), fn_(fn) {}
  DataWaiter(const DataWaiter&) = delete;
  ~DataWaiter() {
    if (r_.waiter_ == this) r_.waiter_ = nullptr;
  }
  bool await_ready() {
    if (r_.exc_) std::rethrow_exception(r_.exc_);  // nothing more will come
    if (r_.waiter_)
      throw RuntimeError(std::string(fn_) +
                         "() called while another coroutine is already waiting for incoming "
                         "data");
    // Waiting while paused would deadlock (readexactly(n) with n > limit, say).
    r_.resume_for_wait();
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    r_.waiter_ = this;
    suspend(h);
  }
  void await_resume() {
    if (r_.waiter_ == this) r_.waiter_ = nullptr;
    if (resumed_cancelled()) throw_cancelled();
    // Woken by data that came before the error: the read takes the data first.
    if (std::exchange(r_.woken_by_exception_, false)) std::rethrow_exception(r_.exc_);
  }

 private:
  ReaderCore& r_;
  const char* fn_;
};

// ---------------------------------------------------------------------------------------
// A connected socket: asyncio's _SelectorSocketTransport, SSLProtocol and
// StreamReaderProtocol in one. Reads are readiness-based (no buffer is pinned while a
// connection is idle) and stop above twice the reader's limit; writes go straight to the
// socket while nothing is buffered. TLS runs OpenSSL over memory BIOs between the socket
// and the reader / the write buffer, as asyncio's sslproto does.

class StreamTransport final : public LoopResource,
                              public LoopBound,
                              public std::enable_shared_from_this<StreamTransport> {
 public:
  using LoopBound::check_thread;

  StreamTransport(LoopCore& loop, Socket sock, std::shared_ptr<ReaderCore> reader)
      : reader_(std::move(reader)),
        loop_(&loop),
        sock_(std::move(sock)),
        fd_(sock_->native_handle()),
        peer_desc_(peer_name().to_string()) {
    reader_->transport_ = this;
    bind_to(loop);  // its loop's thread only, from the start (not thread-safe)
    reader_->bind_to(loop);
    loop_->attach(this);
  }
  // One end of a pipe (asyncio's pipe transports): the reading end with a reader, or the
  // writing end without one. `desc` names it in errors ("process 12's stdin").
  StreamTransport(LoopCore& loop, Socket pipe, std::shared_ptr<ReaderCore> reader, std::string desc)
      : reader_(std::move(reader)),
        loop_(&loop),
        sock_(std::move(pipe)),
        fd_(sock_->native_handle()),
        peer_desc_(std::move(desc)),
        pipe_(true) {
    bind_to(loop);
    if (reader_) {
      reader_->transport_ = this;
      reader_->bind_to(loop);
    }
    loop_->attach(this);
  }
  ~StreamTransport();

  void start() {
    if (reader_) start_reading();
  }

  // --- reading ---
  void pause_reading() noexcept { read_paused_ = true; }
  void resume_reading() {
    read_paused_ = false;
    if (tls_ && tls_->handshake_done && !conn_lost_ && loop_) {
      // Plaintext OpenSSL still holds goes to the reader on the next iteration, not now:
      // a reader about to wait must be waiting when it comes (asyncio defers it too).
      std::weak_ptr<StreamTransport> weak = weak_from_this();
      loop_->owner.call_soon([weak] {
        if (auto t = weak.lock(); t && !t->conn_lost_ && !t->read_paused_) t->tls_pump();
      });
    }
    start_reading();
  }

  // A read(n) that finds the buffer empty while the socket is likely to hold more (the
  // last recv filled its area) receives straight into the caller's string: bulk transfers
  // then copy each byte once, into memory the caller just freed (hot), as raw Asio does.
  // Returns the bytes received; 0 when there were none (EOF and errors reach the reader
  // as from the loop).
  bool likely_readable() const noexcept {
    return likely_more_ && !tls_ && !read_paused_ && !conn_lost_ && !eof_received_ && !closing_;
  }
  std::size_t read_into(char* p, std::size_t n) {
    for (;;) {
      ssize_t k = receive(p, n);
      if (k > 0) {
        likely_more_ = std::size_t(k) == n;
        return std::size_t(k);
      }
      likely_more_ = false;
      if (k == 0) {
        eof();
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fatal_error(std::error_code(errno, std::system_category()), "read");
      }
      return 0;
    }
  }

  // --- writing ---
  void write(const char* p, std::size_t n) {
    check_thread("StreamWriter.write()");
    if (eof_written_) throw RuntimeError("Cannot call write() after write_eof()");
    if (n == 0 || conn_lost_) return;
    written_since_yield_ += n;
    if (tls_) {
      if (closing_) return;  // after close_notify nothing more can go (asyncio drops it)
      if (!tls_->handshake_done) {
        tls_->pending_plain.append(p, n);  // sent once the handshake is done
        maybe_pause_protocol();
        return;
      }
      tls_write(p, n);
      return;
    }
    raw_write(p, n);
  }
  void write_eof() {
    check_thread("StreamWriter.write_eof()");
    if (tls_)
      throw RuntimeError(
          "write_eof(): a TLS connection cannot half-close (can_write_eof() is false)");
    if (closing_ || eof_written_) return;
    if (pipe_) {  // a pipe has no half-close: its EOF is its closing, once flushed
      close();
      eof_written_ = true;
      return;
    }
    eof_written_ = true;
    if (pending() == 0) ::shutdown(fd_, SHUT_WR);
  }
  bool can_write_eof() const noexcept { return !tls_; }
  void close() {
    if (closing_) return;
    closing_ = true;
    if (tls_ && !conn_lost_) {
      if (tls_->handshake_done) tls_close_notify();
      if (pending() > 0 || !tls_->handshake_done) {
        // The rest goes out (after the handshake, if it is still running) within the
        // shutdown timeout, or the connection is aborted.
        arm_timer(tls_->shutdown_timeout, [](StreamTransport& t) {
          if (!t.conn_lost_) t.connection_lost(nullptr);
        });
        return;
      }
    }
    if (pending() == 0) connection_lost(nullptr);
  }
  void abort() {
    closing_ = true;
    connection_lost(nullptr);
  }
  bool is_closing() const noexcept { return closing_; }
  std::size_t pending() const noexcept {
    return wbuf_.size() - woff_ + (tls_ ? tls_->pending_plain.size() : 0);
  }
  void set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    std::size_t h = high ? *high : (low ? 4 * *low : 64 * 1024);
    std::size_t l = low ? *low : h / 4;
    if (h < l)
      throw ValueError("set_write_buffer_limits(): high (" + std::to_string(h) +
                       ") must be >= low (" + std::to_string(l) + ")");
    high_ = h;
    low_ = l;
    maybe_pause_protocol();
    maybe_resume_protocol();
  }

  SockAddr peer_name() const { return name(::getpeername); }
  SockAddr sock_name() const { return name(::getsockname); }
  int fileno() const noexcept { return conn_lost_ ? -1 : fd_; }
  const std::string& peer() const noexcept { return peer_desc_; }

  // --- TLS ---
  // Puts OpenSSL between the socket and the streams and starts the handshake (a client
  // sends its hello at once). Data already read stays in the reader, as plaintext.
  void start_tls(const ssl::SSLContext& ctx, bool server_side, const std::string& hostname,
                 double handshake_timeout, double shutdown_timeout) {
    check_timeout(handshake_timeout, "ssl_handshake_timeout");
    check_timeout(shutdown_timeout, "ssl_shutdown_timeout");
    if (tls_) throw RuntimeError("start_tls(): the connection already uses TLS");
    if (conn_lost_ || closing_) throw RuntimeError("start_tls(): the connection is closing");
    if (!server_side && ctx.protocol() != ssl::PROTOCOL_TLS_CLIENT)
      throw ValueError("a client connection needs a PROTOCOL_TLS_CLIENT context");
    if (server_side && ctx.protocol() != ssl::PROTOCOL_TLS_SERVER)
      throw ValueError("a server connection needs a PROTOCOL_TLS_SERVER context");
    if (!server_side && ctx.check_hostname() && hostname.empty())
      throw ValueError("check_hostname requires server_hostname");
    auto t = std::make_unique<Tls>();
    t->ssl = SSL_new(ctx.native_handle());
    if (!t->ssl) throw ssl::detail::ssl_error_from_queue("SSL_new()");
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(t->ssl, rbio, wbio);
    t->wbio = wbio;
    t->rbio = rbio;
    t->server_hostname = hostname;
    t->shutdown_timeout = shutdown_timeout;
    if (server_side) {
      SSL_set_accept_state(t->ssl);
    } else {
      SSL_set_connect_state(t->ssl);
      unsigned char ip[sizeof(in6_addr)];
      bool is_ip = ::inet_pton(AF_INET, hostname.c_str(), ip) == 1 ||
                   ::inet_pton(AF_INET6, hostname.c_str(), ip) == 1;
      if (!hostname.empty() && !is_ip) SSL_set_tlsext_host_name(t->ssl, hostname.c_str());
      if (ctx.check_hostname()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(t->ssl);
        if (is_ip)
          X509_VERIFY_PARAM_set1_ip_asc(param, hostname.c_str());
        else
          X509_VERIFY_PARAM_set1_host(param, hostname.c_str(), 0);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      }
    }
    tls_ = std::move(t);
    arm_timer(handshake_timeout, [handshake_timeout](StreamTransport& tr) {
      if (tr.tls_ && !tr.tls_->handshake_done && !tr.conn_lost_) {
        char msg[128];
        std::snprintf(msg, sizeof msg,
                      "SSL handshake is taking longer than %g seconds: aborting the connection",
                      handshake_timeout);
        tr.fail(std::make_exception_ptr(ConnectionAbortedError(ECONNABORTED, msg)));
      }
    });
    tls_pump();
  }
  bool tls_handshaking() const noexcept { return tls_ && !tls_->handshake_done; }
  std::optional<ssl::SSLInfo> ssl_info() const {
    if (!tls_ || !tls_->handshake_done) return std::nullopt;
    return tls_->info;
  }

  void on_loop_close() noexcept override {
    auto keep = shared_from_this();
    loop_ = nullptr;  // close_resources() detached us
    connection_lost(nullptr);
    sock_.reset();  // Asio's socket goes while its io_context still exists
  }

  std::shared_ptr<ReaderCore> reader_;
  std::shared_ptr<ServerCore> server_;  // set for a server's client connection
  bool conn_lost_ = false;
  bool write_paused_ = false;
  // Bytes written since drain() last let the loop look at I/O (see drain_impl).
  std::size_t written_since_yield_ = 0;
  std::exception_ptr lost_exc_;
  std::exception_ptr handshake_exc_;
  WaitList drain_waiters_;
  WaitList close_waiters_;
  WaitList handshake_waiters_;

 private:
  struct Tls {
    SSL* ssl = nullptr;
    BIO* rbio = nullptr;  // owned by ssl
    BIO* wbio = nullptr;
    bool handshake_done = false;
    bool close_notify_sent = false;
    std::string pending_plain;  // written before the handshake was done
    std::string server_hostname;
    double shutdown_timeout = 5.0;
    ssl::SSLInfo info;
    ~Tls() { SSL_free(ssl); }
  };

  static void check_timeout(double s, const char* what) {
    if (!(s > 0)) throw ValueError(std::string(what) + " should be a positive number");
  }

  using NameFn = int (*)(int, sockaddr*, socklen_t*) noexcept;
  SockAddr name(NameFn fn) const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (conn_lost_ || fn(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
    return SockAddr::from(reinterpret_cast<sockaddr*>(&ss), len);
  }

  template <class Fn>
  void arm_timer(double seconds, Fn fn) {
    timer_.cancel();
    if (!loop_ || loop_->closed.load(std::memory_order_relaxed)) {
      fn(*this);  // the loop is closing (a task's frame is going): the deadline is now
      return;
    }
    std::weak_ptr<StreamTransport> weak = weak_from_this();
    timer_ = loop_->owner.call_later(seconds, [weak, fn] {
      if (auto t = weak.lock()) fn(*t);
    });
  }

  // Reading waits for readiness, then reads straight into the reader's buffer: an idle
  // connection pins no buffer.
  void start_reading() {
    if (reading_ || read_paused_ || eof_received_ || conn_lost_) return;
    if (closing_ && !tls_handshaking()) return;
    reading_ = true;
    wait_until(Socket::wait_read, &StreamTransport::reading_, &StreamTransport::read_ready);
  }

  // Waits for the socket to be ready; then clears `pending` and calls `ready`, unless the
  // connection went meanwhile.
  void wait_until(Socket::wait_type what, bool StreamTransport::*pending,
                  void (StreamTransport::*ready)()) {
    sock_->async_wait(what, [self = shared_from_this(), what, pending, ready](std::error_code ec) {
      self.get()->*pending = false;
      if (self->conn_lost_ || ec == asio::error::operation_aborted) return;
      if (ec)
        self->fatal_error(ec, what == Socket::wait_read ? "read" : "write");
      else
        (self.get()->*ready)();
    });
  }

  // The peer wrote EOF.
  void eof() {
    eof_received_ = true;
    if (pipe_) {  // nothing more can come or go: the pipe closes
      connection_lost(nullptr);
      return;
    }
    if (tls_handshaking()) {
      fail(std::make_exception_ptr(
          ConnectionResetError("Connection lost during the TLS handshake with " + peer_desc_)));
      return;
    }
    // As asyncio's stream protocol, keep the connection open for writing (half-close): the
    // user closes it.
    reader_->feed_eof();
  }

  void read_ready() {
    // A bounded number of reads, so that one busy peer cannot starve the loop.
    for (int i = 0; i < 16; ++i) {
      if (read_paused_ || conn_lost_ || (closing_ && !tls_handshaking())) return;
      std::size_t space = ReaderCore::kScratch;
      char* p = tls_ ? ReaderCore::scratch() : reader_->prepare(space);
      ssize_t k = receive(p, space);
      likely_more_ = std::size_t(k) == space;
      if (k < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        fatal_error(std::error_code(errno, std::system_category()), "read");
        return;
      }
      if (k == 0) {
        eof();
        return;
      }
      if (tls_) {
        BIO_write(tls_->rbio, p, int(k));
        tls_pump();
      } else {
        reader_->commit(std::size_t(k));
      }
      if (std::size_t(k) < space) break;  // the socket is drained
    }
    start_reading();
  }

  // Runs OpenSSL on what came in: the handshake, then decryption into the reader.
  void tls_pump() {
    Tls& t = *tls_;
    if (!t.handshake_done) {
      ERR_clear_error();
      int rc = SSL_do_handshake(t.ssl);
      if (rc != 1) {
        int e = SSL_get_error(t.ssl, rc);
        tls_flush();  // our next flight, or the alert that tells the peer why
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
          fail(ssl::detail::handshake_error(t.ssl, peer_desc_));
        return;
      }
      handshake_complete();
      if (conn_lost_ || !tls_) return;
    }
    while (!read_paused_ && !conn_lost_ && !eof_received_) {
      std::size_t space = 0;
      char* p = reader_->prepare(space);
      ERR_clear_error();
      int n = SSL_read(t.ssl, p, int(std::min<std::size_t>(space, 1 << 30)));
      if (n > 0) {
        reader_->commit(std::size_t(n));
        continue;
      }
      int e = SSL_get_error(t.ssl, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      if (e == SSL_ERROR_ZERO_RETURN) {  // the peer's close_notify: EOF
        eof_received_ = true;
        reader_->feed_eof();
        break;
      }
      fail(std::make_exception_ptr(
          ssl::detail::ssl_error_from_queue("TLS read from " + peer_desc_)));
      return;
    }
    tls_flush();  // TLS 1.3 sends tickets and key updates after the handshake
  }

  void handshake_complete() {
    Tls& t = *tls_;
    t.handshake_done = true;
    timer_.cancel();
    t.info = ssl::detail::info_of(t.ssl, t.server_hostname);
    handshake_waiters_.wake_all();
    tls_flush();
    if (!t.pending_plain.empty()) {
      std::string plain = std::move(t.pending_plain);
      t.pending_plain.clear();
      tls_write(plain.data(), plain.size());
    }
    if (closing_ && !conn_lost_) {  // close() came during the handshake
      tls_close_notify();
      if (pending() == 0)
        connection_lost(nullptr);
      else
        arm_timer(t.shutdown_timeout, [](StreamTransport& tr) { tr.connection_lost(nullptr); });
    }
  }

  void tls_write(const char* p, std::size_t n) {
    while (n > 0 && !conn_lost_) {
      ERR_clear_error();
      int k = SSL_write(tls_->ssl, p, int(std::min<std::size_t>(n, 1 << 30)));
      if (k <= 0) {
        fail(std::make_exception_ptr(
            ssl::detail::ssl_error_from_queue("TLS write to " + peer_desc_)));
        return;
      }
      p += k;
      n -= std::size_t(k);
    }
    tls_flush();
  }

  void tls_close_notify() {
    if (tls_->close_notify_sent) return;
    tls_->close_notify_sent = true;
    ERR_clear_error();
    SSL_shutdown(tls_->ssl);
    tls_flush();
  }

  // Moves what OpenSSL produced onto the socket.
  void tls_flush() {
    char* data = nullptr;
    long n = BIO_get_mem_data(tls_->wbio, &data);
    if (n <= 0 || conn_lost_) return;
    raw_write(data, std::size_t(n));
    (void)BIO_reset(tls_->wbio);
  }

  void raw_write(const char* p, std::size_t n) {
    if (wbuf_.size() == woff_) {
      std::size_t k = 0;
      if (!send_now(p, n, k)) return;
      p += k;
      n -= k;
      if (n == 0) return;
    }
    wbuf_.append(p, n);
    start_writing();
    maybe_pause_protocol();
  }

  // Sends what the socket takes now; false if the connection failed.
  bool send_now(const char* p, std::size_t n, std::size_t& sent) {
    sent = 0;
    while (sent < n) {
      ssize_t k = transmit(p + sent, n - sent);
      if (k < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        fatal_error(std::error_code(errno, std::system_category()), "write");
        return false;
      }
      sent += std::size_t(k);
    }
    return true;
  }

  void start_writing() {
    if (writing_ || conn_lost_) return;
    writing_ = true;
    wait_until(Socket::wait_write, &StreamTransport::writing_, &StreamTransport::write_ready);
  }

  void write_ready() {
    std::size_t k = 0;
    if (!send_now(wbuf_.data() + woff_, wbuf_.size() - woff_, k)) return;
    woff_ += k;
    if (woff_ == wbuf_.size()) {
      wbuf_.clear();
      woff_ = 0;
    } else if (woff_ >= 64 * 1024 && woff_ >= wbuf_.size() / 2) {
      wbuf_.erase(0, woff_);
      woff_ = 0;
    }
    maybe_resume_protocol();
    if (wbuf_.size() > woff_) {
      start_writing();
    } else if (closing_ && !tls_handshaking()) {
      connection_lost(nullptr);
    } else if (eof_written_ && !pipe_) {
      ::shutdown(fd_, SHUT_WR);
    }
  }

  void maybe_pause_protocol() noexcept {
    if (pending() > high_) write_paused_ = true;
  }

  void maybe_resume_protocol() {
    if (!write_paused_ || pending() > low_) return;
    write_paused_ = false;
    drain_waiters_.wake_all();
  }

  void fatal_error(std::error_code ec, const char* op) {
    fail(make_os_error(
        ec, std::string(op) + (pipe_ ? " on " : " on the connection with ") + peer_desc_));
  }

  ssize_t receive(char* p, std::size_t n) noexcept {
    return pipe_ ? ::read(fd_, p, n) : ::recv(fd_, p, n, 0);
  }
  // A write to a pipe whose reader is gone raises SIGPIPE, which would kill the program:
  // blocked around the write, and taken back if it came (MSG_NOSIGNAL does this for sockets).
  ssize_t transmit(const char* p, std::size_t n) noexcept {
    if (!pipe_) return ::send(fd_, p, n, MSG_NOSIGNAL);
    sigset_t pipe_sig, old;
    sigemptyset(&pipe_sig);
    sigaddset(&pipe_sig, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_sig, &old);
    ssize_t k = ::write(fd_, p, n);
    int e = errno;
    if (k < 0 && e == EPIPE && !sigismember(&old, SIGPIPE)) {
      timespec zero{};
      while (sigtimedwait(&pipe_sig, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = e;
    return k;
  }
  void fail(std::exception_ptr exc) {
    closing_ = true;
    if (tls_handshaking()) handshake_exc_ = exc;
    connection_lost(std::move(exc));
  }

  // connection_lost: closes the socket, tells the reader, wakes drain(), wait_closed() and
  // a handshake waiter.
  void connection_lost(std::exception_ptr exc);

  LoopCore* loop_;
  std::optional<Socket> sock_;
  int fd_;
  std::string peer_desc_;
  std::string wbuf_;
  std::size_t woff_ = 0;
  std::size_t high_ = 64 * 1024;
  std::size_t low_ = 16 * 1024;
  std::unique_ptr<Tls> tls_;
  TimerHandle timer_;  // TLS handshake or shutdown deadline
  bool pipe_ = false;  // a pipe's end: read/write instead of recv/send, no half-close
  bool reading_ = false;
  bool likely_more_ = false;  // the last recv filled its area: the socket may hold more
  bool writing_ = false;
  bool read_paused_ = false;
  bool eof_received_ = false;
  bool eof_written_ = false;
  bool closing_ = false;
};

void ReaderCore::after_feed() {
  wakeup_waiter();
  if (transport_ && !paused_ && !unbounded_ && size() > 2 * limit_) {
    paused_ = true;
    transport_->pause_reading();
  }
}

void ReaderCore::maybe_resume_transport() {
  if (paused_ && size() <= limit_) {
    paused_ = false;
    if (transport_) transport_->resume_reading();
  }
}

void ReaderCore::resume_for_wait() {
  if (paused_) {
    paused_ = false;
    if (transport_) transport_->resume_reading();
  }
}

// The user's handles on a connection's writing side: the last one to go closes it.
struct WriterHandle {
  explicit WriterHandle(std::shared_ptr<StreamTransport> t) noexcept : t(std::move(t)) {}
  WriterHandle(const WriterHandle&) = delete;
  ~WriterHandle() {
    if (t->is_closing()) return;
    try {
      if (LoopCore* l = tls_loop; l && l->owner.get_debug() && !owned)
        l->owner.call_exception_handler(
            {"unclosed StreamWriter (connection with " + t->peer() + ")", nullptr, {}});
      t->close();
    } catch (...) {
      t->abort();
    }
  }
  std::shared_ptr<StreamTransport> t;
  bool owned = false;  // a subprocess's pipe: closing it with the Process is not a leak
};

// The options, owned: copied from the caller's views when the call is made.
struct ConnectConfig {
  explicit ConnectConfig(const ConnectOptions& o)
      : limit(o.limit),
        family(o.family),
        happy_eyeballs_delay(o.happy_eyeballs_delay),
        interleave(o.interleave),
        server_hostname(o.server_hostname),
        ssl_handshake_timeout(o.ssl_handshake_timeout),
        ssl_shutdown_timeout(o.ssl_shutdown_timeout) {
    if (o.local_addr) local_addr.emplace(std::string(o.local_addr->first), o.local_addr->second);
    if (o.ssl) ssl = *o.ssl;
  }
  std::size_t limit;
  int family;
  std::optional<std::pair<std::string, std::uint16_t>> local_addr;
  std::optional<double> happy_eyeballs_delay;
  int interleave;
  std::optional<ssl::SSLContext> ssl;
  std::string server_hostname;
  double ssl_handshake_timeout;
  double ssl_shutdown_timeout;
};

struct ServerConfig {
  explicit ServerConfig(const ServerOptions& o)
      : limit(o.limit),
        family(o.family),
        backlog(o.backlog),
        reuse_address(o.reuse_address),
        reuse_port(o.reuse_port),
        start_serving(o.start_serving),
        ssl_handshake_timeout(o.ssl_handshake_timeout),
        ssl_shutdown_timeout(o.ssl_shutdown_timeout) {
    if (o.ssl) ssl = *o.ssl;
  }
  std::size_t limit;
  int family;
  int backlog;
  bool reuse_address;
  bool reuse_port;
  bool start_serving;
  std::optional<ssl::SSLContext> ssl;
  double ssl_handshake_timeout;
  double ssl_shutdown_timeout;
};

// ---------------------------------------------------------------------------------------
// Servers (asyncio.Server).

class ServerCore final : public LoopResource,
                         public LoopBound,
                         public std::enable_shared_from_this<ServerCore> {
 public:
  using LoopBound::check_thread;
  ServerCore(LoopCore& loop, ClientConnected cb, ServerConfig options)
      : cb_(std::move(cb)), loop_(&loop), options_(options) {
    bind_to(loop);
    loop_->attach(this);
  }
  ~ServerCore() {
    if (loop_) loop_->detach(this);
    unlink_path();
  }

  void add_listener(Socket sock, SockAddr addr) {
    listeners_.push_back(std::make_unique<Listener>(Listener{std::move(sock), std::move(addr)}));
  }
  void set_unix_path(std::string path, dev_t dev, ino_t ino) {
    path_ = std::move(path);
    dev_ = dev;
    ino_ = ino;
  }

  bool is_serving() const noexcept { return serving_; }
  bool closed() const noexcept { return closed_; }
  void start_serving() {
    if (serving_ || closed_) return;
    serving_ = true;
    for (auto& l : listeners_)
      arm(*l);
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    serving_ = false;
    for (auto& l : listeners_) {
      std::error_code ignored;
      if (l->sock) l->sock->close(ignored);
    }
    listeners_.clear();
    unlink_path();
    if (WaitNode* f = std::exchange(forever_, nullptr)) f->set_done();
    maybe_wake_closed();
  }

  template <class Fn>
  void for_each_client(Fn fn) {
    std::vector<std::shared_ptr<StreamTransport>> all;
    for (StreamTransport* t : clients_)
      all.push_back(t->shared_from_this());
    for (auto& t : all)
      fn(*t);
  }

  std::size_t client_count() const noexcept { return clients_.size(); }
  void detach(StreamTransport* t) {
    clients_.erase(t);
    maybe_wake_closed();
  }

  std::vector<SockAddr> sockets() const {
    std::vector<SockAddr> out;
    if (closed_) return out;
    for (auto& l : listeners_)
      out.push_back(l->addr);
    return out;
  }

  void on_loop_close() noexcept override {
    loop_ = nullptr;
    closed_ = true;
    serving_ = false;
    listeners_.clear();  // Asio's sockets go while their io_context still exists
    unlink_path();
  }

  ClientConnected cb_;
  WaitList closed_waiters_;
  WaitNode* forever_ = nullptr;  // serve_forever()'s waiter

 private:
  struct Listener {
    std::optional<Socket> sock;
    SockAddr addr;
  };

  void maybe_wake_closed() {
    if (!closed_ || !clients_.empty()) return;
    closed_waiters_.wake_all();
  }

  void arm(Listener& l) {
    l.sock->async_wait(Socket::wait_read, [self = shared_from_this(), &l](std::error_code ec) {
      if (!self->serving_ || ec == asio::error::operation_aborted) return;
      self->accept_ready(l);
    });
  }

  // Accepts up to backlog connections per readiness (asyncio's _accept_connection).
  void accept_ready(Listener& l) {
    int lfd = l.sock->native_handle();
    for (int i = 0; i < std::max(options_.backlog, 1); ++i) {
      int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) break;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        // Out of descriptors or memory: say so, and try again in a second, as asyncio.
        loop_->owner.call_exception_handler(
            {"socket.accept() out of system resource",
             make_os_error(std::error_code(e, std::system_category()),
                           "accept() on " + l.addr.to_string()),
             {}});
        loop_->owner.call_later(1.0, [self = shared_from_this(), &l] {
          if (self->serving_) self->arm(l);
        });
        return;
      }
      try {
        connection_made(fd, l.addr.family);
      } catch (...) {  // this connection is lost; the server goes on accepting
        loop_->owner.call_exception_handler(
            {"Error setting up a connection accepted on " + l.addr.to_string(),
             std::current_exception(),
             {}});
      }
    }
    arm(l);
  }

  void connection_made(int fd, int family);

  LoopCore* loop_;
  ServerConfig options_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_set<StreamTransport*> clients_;
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  bool serving_ = false;
  bool closed_ = false;

  void unlink_path() noexcept {
    if (path_.empty() || path_[0] == '\0') return;
    struct stat st;
    // Only the socket file we made: another server may have replaced it since (3.13).
    if (::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
      ::unlink(path_.c_str());
    path_.clear();
  }

 public:
  void track(StreamTransport* t) { clients_.insert(t); }
};

StreamTransport::~StreamTransport() {
  if (reader_ && reader_->transport_ == this) reader_->transport_ = nullptr;
  if (loop_) loop_->detach(this);
  if (server_) server_->detach(this);  // gone without connection_lost (never, normally)
}

void StreamTransport::connection_lost(std::exception_ptr exc) {
  if (conn_lost_) return;
  conn_lost_ = true;
  closing_ = true;
  lost_exc_ = exc;
  auto keep = shared_from_this();
  if (sock_) {
    std::error_code ignored;
    sock_->close(ignored);  // aborts the pending waits
  }
  wbuf_.clear();
  woff_ = 0;
  if (reader_) {
    if (exc)
      reader_->set_exception(exc);
    else
      reader_->feed_eof();
    if (reader_->transport_ == this) reader_->transport_ = nullptr;
  }
  write_paused_ = false;
  drain_waiters_.wake_all();
  close_waiters_.wake_all();
  if (tls_handshaking() && !handshake_exc_)
    handshake_exc_ = exc ? exc
                         : std::make_exception_ptr(ConnectionResetError(
                               "Connection lost during the TLS handshake with " + peer_desc_));
  handshake_waiters_.wake_all();
  timer_.cancel();
  if (loop_) {
    loop_->detach(this);
    loop_ = nullptr;
  }
  if (auto s = std::move(server_)) s->detach(this);
}

// Waits on one of a transport's or server's wait lists until woken.
class ListWaiter : private WaitNode {
 public:
  explicit ListWaiter(WaitList& list) noexcept : list_(list) {}
  ListWaiter(const ListWaiter&) = delete;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    list_.push_back(*this);
    suspend(h);
  }
  void await_resume() {
    list_.remove(*this);
    if (resumed_cancelled()) throw_cancelled();
  }

 private:
  WaitList& list_;
};

// Waits for a TLS handshake to finish; raises why it failed.
Coro<void> await_handshake(std::shared_ptr<StreamTransport> t) {
  if (t->tls_handshaking() && !t->handshake_exc_) {
    try {
      co_await ListWaiter(t->handshake_waiters_);
    } catch (const CancelledError&) {
      if (t->tls_handshaking()) t->abort();  // a half-done handshake cannot be resumed
      throw;
    }
  }
  if (t->handshake_exc_) std::rethrow_exception(t->handshake_exc_);
  if (t->conn_lost_) {
    if (t->lost_exc_) std::rethrow_exception(t->lost_exc_);
    throw ConnectionResetError("Connection lost (with " + t->peer() + ")");
  }
}

// serve_forever()'s wait: woken by close().
class ForeverWaiter : private WaitNode {
 public:
  explicit ForeverWaiter(ServerCore& s) noexcept : s_(s) {}
  ForeverWaiter(const ForeverWaiter&) = delete;
  ~ForeverWaiter() {
    if (s_.forever_ == this) s_.forever_ = nullptr;
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    s_.forever_ = this;
    suspend(h);
  }
  // Cancelled or closed: serve_forever goes on the same way (taking the cancellation).
  void await_resume() noexcept {
    if (s_.forever_ == this) s_.forever_ = nullptr;
    (void)resumed_cancelled();
  }

 private:
  ServerCore& s_;
};

struct Streams {
  std::shared_ptr<StreamTransport> transport;
  StreamReader reader;
  StreamWriter writer;
};

Streams make_streams(LoopCore& loop, Socket sock, std::size_t limit,
                     std::shared_ptr<ServerCore> server = nullptr) {
  auto reader = std::make_shared<ReaderCore>(limit);
  auto t = std::make_shared<StreamTransport>(loop, std::move(sock), reader);
  if (server) {
    server->track(t.get());
    t->server_ = std::move(server);
  }
  t->start();
  return {t, StreamReader(std::move(reader)), StreamWriter(std::make_shared<WriterHandle>(t))};
}

// Wraps fd in an Asio socket of the loop (which then owns it); closes fd if that fails.
Socket adopt(LoopCore& loop, int fd, int family) {
  try {
    return Socket(loop.owner.io_context(),
                  asio::generic::stream_protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP), fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
}

Coro<void> run_client(std::shared_ptr<ServerCore> server, std::shared_ptr<StreamTransport> t,
                      StreamReader reader, StreamWriter writer) {
  if (t->tls_handshaking()) {
    // A client whose handshake fails never reaches the handler (asyncio logs it only in
    // debug mode).
    bool ok = true;
    try {
      co_await await_handshake(t);
    } catch (const CancelledError&) {
      throw;
    } catch (...) {
      ok = false;
    }
    if (!ok) co_return;
  }
  t.reset();
  std::exception_ptr error;
  try {
    co_await server->cb_(reader, writer);
  } catch (const CancelledError&) {
    throw;
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    get_running_loop().call_exception_handler(
        {"Unhandled exception in client_connected_cb", error, {}});
    writer.close();
  }
}

void ServerCore::connection_made(int fd, int family) {
  if (family != AF_UNIX) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  Socket sock = adopt(*loop_, fd, family);
  sock.non_blocking(true);
  Streams st = make_streams(*loop_, std::move(sock), options_.limit, shared_from_this());
  if (options_.ssl) {
    try {
      st.transport->start_tls(*options_.ssl, true, {}, options_.ssl_handshake_timeout,
                              options_.ssl_shutdown_timeout);
    } catch (...) {
      st.transport->abort();
      throw;
    }
  }
  Coro<void> c = run_client(shared_from_this(), std::move(st.transport), std::move(st.reader),
                            std::move(st.writer));
  Task<void> task = create_task(std::move(c));
}

// ---------------------------------------------------------------------------------------
// Connecting and listening.

std::string describe_addr(const SockAddr& a) {
  if (a.family == AF_UNIX) return "'" + a.to_string() + "'";
  return "('" + a.host + "', " + std::to_string(a.port) + ")";
}

// A new non-blocking, close-on-exec stream socket owned by the loop's io_context.
Socket new_socket(LoopCore& loop, int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) raise_os_error(std::error_code(errno, std::system_category()), "socket()");
  Socket sock = adopt(loop, fd, family);
  sock.non_blocking(true);
  return sock;
}

Coro<Socket> connect_one(SockAddr addr, std::vector<AddrInfo> locals) {
  LoopCore& loop = *tls_loop;
  Socket sock = new_socket(loop, addr.family);
  int fd = sock.native_handle();
  if (addr.family != AF_UNIX) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (!locals.empty()) {
    std::error_code last;
    bool bound = false;
    for (const AddrInfo& l : locals) {
      if (l.family != addr.family) continue;
      sockaddr_storage ss;
      socklen_t len = l.addr.to(ss);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
        bound = true;
        break;
      }
      last = std::error_code(errno, std::system_category());
    }
    if (!bound) {
      if (last) raise_os_error(last, "error while attempting to bind on the local address");
      throw OSError(EAFNOSUPPORT, "no local address of the family of " + describe_addr(addr));
    }
  }
  sockaddr_storage ss;
  socklen_t len = addr.to(ss);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  } while (rc < 0 && errno == EINTR);
  int err = rc == 0 ? 0 : errno;
  if (err == EINPROGRESS || err == EAGAIN) {
    co_await sock.async_wait(Socket::wait_write, use_coro);
    socklen_t elen = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  }
  if (err)
    raise_os_error(std::error_code(err, std::system_category()),
                   "Connect call failed " + describe_addr(addr));
  co_return sock;
}

// RFC 8305's interleaving: `first` addresses of the first family, then alternate.
std::vector<AddrInfo> interleave(std::vector<AddrInfo> infos, int first) {
  std::vector<int> families;
  for (auto& i : infos)
    if (std::find(families.begin(), families.end(), i.family) == families.end())
      families.push_back(i.family);
  if (families.size() < 2) return infos;
  std::vector<std::vector<AddrInfo>> by(families.size());
  for (auto& i : infos)
    by[std::find(families.begin(), families.end(), i.family) - families.begin()].push_back(i);
  std::vector<AddrInfo> out;
  std::size_t taken0 = 0;
  for (; taken0 < by[0].size() && int(taken0) < first - 1; ++taken0)
    out.push_back(by[0][taken0]);
  std::vector<std::size_t> pos(families.size(), 0);
  pos[0] = taken0;
  for (bool more = true; more;) {
    more = false;
    for (std::size_t f = 0; f < by.size(); ++f)
      if (pos[f] < by[f].size()) {
        out.push_back(by[f][pos[f]++]);
        more = true;
      }
  }
  return out;
}

[[noreturn]] void raise_connect_errors(std::vector<std::exception_ptr>& errors) {
  std::string first;
  bool same = true;
  std::string all;
  for (auto& e : errors) {
    std::string w;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      w = x.what();
    }
    if (first.empty()) first = w;
    same = same && w == first;
    all += (all.empty() ? "" : ", ") + w;
  }
  if (same) std::rethrow_exception(errors.front());
  throw OSError(0, "Multiple exceptions: " + all);
}

// Happy Eyeballs (RFC 8305): the attempts are staggered by `delay`; the first to connect
// wins and the others are cancelled.
Coro<Socket> staggered_connect(std::vector<AddrInfo> infos, std::vector<AddrInfo> locals,
                               double delay) {
  std::vector<Task<Socket>> attempts;
  std::vector<std::exception_ptr> errors;
  std::size_t next = 0;
  std::optional<Socket> winner;
  auto reap = [&] {
    for (auto& t : attempts) {
      if (!t || !t.done()) continue;
      if (!t.cancelled()) {
        if (auto e = t.exception())
          errors.push_back(e);
        else if (!winner)
          winner.emplace(std::move(t.result()));
      }
      t = Task<Socket>();
    }
  };
  try {
    while (!winner) {
      reap();
      if (winner) break;
      bool running = std::any_of(attempts.begin(), attempts.end(), [](auto& t) { return bool(t); });
      if (next == infos.size() && !running) break;
      if (next < infos.size()) {
        attempts.push_back(create_task(connect_one(infos[next++].addr, locals)));
        co_await sleep(0);  // let it start
      }
      std::vector<Task<Socket>> live;
      for (auto& t : attempts)
        if (t && !t.done()) live.push_back(t);
      if (live.empty()) continue;
      std::optional<std::chrono::duration<double>> timeout;
      if (next < infos.size()) timeout = std::chrono::duration<double>(delay);
      co_await kettle::wait(live, FIRST_COMPLETED, timeout);
    }
  } catch (...) {
    for (auto& t : attempts)
      if (t) t.cancel();
    throw;
  }
  // The losers are cancelled and awaited, so that none is left to fail unobserved.
  std::vector<Task<Socket>> losers;
  for (auto& t : attempts)
    if (t) {
      t.cancel();
      losers.push_back(t);
    }
  if (!losers.empty()) (void)co_await kettle::wait(losers);
  for (auto& t : losers)
    if (!t.cancelled()) (void)t.exception();
  if (winner) co_return std::move(*winner);
  raise_connect_errors(errors);
}

Coro<std::pair<StreamReader, StreamWriter>> connect_stream(std::vector<AddrInfo> infos,
                                                           ConnectConfig options) {
  std::vector<AddrInfo> locals;
  if (options.local_addr) {
    locals =
        co_await getaddrinfo(options.local_addr->first, std::to_string(options.local_addr->second),
                             options.family, SOCK_STREAM, 0, AI_PASSIVE);
    if (locals.empty()) throw OSError(EADDRNOTAVAIL, "getaddrinfo() returned empty list");
  }
  int il = options.interleave;
  if (options.happy_eyeballs_delay && il == 0) il = 1;
  if (il > 0) infos = interleave(std::move(infos), il);
  std::optional<Socket> sock;
  if (options.happy_eyeballs_delay && infos.size() > 1) {
    double delay = *options.happy_eyeballs_delay;
    if (std::isnan(delay) || delay < 0)
      throw ValueError("happy_eyeballs_delay must be a number >= 0");
    sock.emplace(co_await staggered_connect(std::move(infos), std::move(locals), delay));
  } else {
    std::vector<std::exception_ptr> errors;
    for (const AddrInfo& ai : infos) {
      try {
        sock.emplace(co_await connect_one(ai.addr, locals));
        break;
      } catch (const OSError&) {
        errors.push_back(std::current_exception());
      }
    }
    if (!sock) raise_connect_errors(errors);
  }
  Streams st = make_streams(*tls_loop, std::move(*sock), options.limit);
  if (options.ssl) {
    st.transport->start_tls(*options.ssl, false, options.server_hostname,
                            options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
    co_await await_handshake(st.transport);
  }
  co_return std::pair<StreamReader, StreamWriter>(std::move(st.reader), std::move(st.writer));
}

int listen_socket(const SockAddr& addr, const ServerConfig& o, Socket& out, LoopCore& loop) {
  out = new_socket(loop, addr.family);
  int fd = out.native_handle();
  int one = 1;
  if (addr.family != AF_UNIX) {
    if (o.reuse_address) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o.reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (addr.family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  sockaddr_storage ss;
  socklen_t len = addr.to(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0)
    raise_os_error(std::error_code(errno, std::system_category()),
                   "error while attempting to bind on address " + describe_addr(addr));
  if (::listen(fd, std::max(o.backlog, 1)) != 0)
    raise_os_error(std::error_code(errno, std::system_category()), "listen()");
  return fd;
}

SockAddr local_name(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return SockAddr::from(reinterpret_cast<sockaddr*>(&ss), len);
}

void check_options(const ServerConfig& o) {
  if (o.limit == 0) throw ValueError("start_server(): limit must be greater than 0");
  if (o.ssl && o.ssl->protocol() != ssl::PROTOCOL_TLS_SERVER)
    throw ValueError("start_server(): ssl needs a PROTOCOL_TLS_SERVER context");
  if (!(o.ssl_handshake_timeout > 0) || !(o.ssl_shutdown_timeout > 0))
    throw ValueError("start_server(): the ssl timeouts should be positive numbers");
}

PipeReader make_pipe_reader(LoopCore& loop, int fd, std::size_t limit, std::string desc) {
  auto core = std::make_shared<ReaderCore>(limit);
  auto t = std::make_shared<StreamTransport>(loop, adopt(loop, fd, AF_UNIX), core, std::move(desc));
  t->start();
  auto closer = std::make_shared<WriterHandle>(t);
  closer->owned = true;
  return {StreamReader(core), std::move(closer), core};
}

StreamWriter make_pipe_writer(LoopCore& loop, int fd, std::string desc) {
  auto t =
      std::make_shared<StreamTransport>(loop, adopt(loop, fd, AF_UNIX), nullptr, std::move(desc));
  auto h = std::make_shared<WriterHandle>(t);
  h->owned = true;
  return StreamWriter(std::move(h));
}

void set_unbounded(ReaderCore& reader, bool on) {
  reader.unbounded_ = on;
  if (on) reader.resume_for_wait();
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// StreamReader

using detail::ReaderCore;

StreamReader::StreamReader(std::size_t limit) : core_(std::make_shared<ReaderCore>(limit)) {}

namespace {

Coro<std::string> read_impl(std::shared_ptr<ReaderCore> r, std::ptrdiff_t n) {
  r->check_loop("StreamReader.read()");
  if (r->exc_) std::rethrow_exception(r->exc_);
  if (n == 0) co_return std::string();
  if (n < 0) {
    // Everything until EOF, taken only at the end: a cancelled read(-1) loses nothing.
    while (!r->eof_)
      co_await detail::DataWaiter(*r, "read");
    std::string all = r->take(r->size());
    r->maybe_resume_transport();
    co_return all;
  }
  if (r->size() == 0 && !r->eof_ && r->transport_ && r->transport_->likely_readable()) {
    std::string direct(std::min(std::size_t(n), detail::ReaderCore::kMaxRecv), '\0');
    if (std::size_t k = r->transport_->read_into(direct.data(), direct.size())) {
      direct.resize(k);
      co_return direct;
    }
    if (r->exc_) std::rethrow_exception(r->exc_);
  }
  if (r->size() == 0 && !r->eof_) co_await detail::DataWaiter(*r, "read");
  std::string data = r->take(std::min(r->size(), std::size_t(n)));
  r->maybe_resume_transport();
  co_return data;
}

Coro<std::string> readexactly_impl(std::shared_ptr<ReaderCore> r, std::ptrdiff_t n) {
  r->check_loop("StreamReader.readexactly()");
  if (n < 0) throw ValueError("readexactly size can not be less than zero");
  if (r->exc_) std::rethrow_exception(r->exc_);
  if (n == 0) co_return std::string();
  while (r->size() < std::size_t(n)) {
    if (r->eof_) {
      std::string partial = r->take(r->size());
      throw IncompleteReadError(std::move(partial), std::size_t(n));
    }
    co_await detail::DataWaiter(*r, "readexactly");
  }
  std::string data = r->take(std::size_t(n));
  r->maybe_resume_transport();
  co_return data;
}

Coro<std::string> readuntil_impl(std::shared_ptr<ReaderCore> r, std::vector<std::string> seps,
                                 std::optional<std::size_t> limit_arg) {
  r->check_loop("StreamReader.readuntil()");
  if (seps.empty()) throw ValueError("Separator should contain at least one element");
  std::sort(seps.begin(), seps.end(),
            [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
  std::size_t min_len = seps.front().size();
  std::size_t max_len = seps.back().size();
  if (min_len == 0) throw ValueError("Separator should be at least one-byte string");
  if (limit_arg && *limit_arg == 0) throw ValueError("readuntil(): limit must be greater than 0");
  std::size_t limit = limit_arg.value_or(r->limit_);
  if (r->exc_) std::rethrow_exception(r->exc_);
  std::size_t offset = 0;
  std::size_t match_start = 0;
  std::size_t match_end = 0;
  for (;;) {
    std::string_view buf = r->data();
    if (buf.size() - std::min(buf.size(), offset) >= min_len) {
      bool found = false;
      for (const std::string& sep : seps) {
        std::size_t i = buf.find(sep, offset);
        if (i != std::string_view::npos && (!found || i + sep.size() < match_end)) {
          found = true;
          match_start = i;
          match_end = i + sep.size();
        }
      }
      if (found) break;
      offset = buf.size() + 1 > max_len ? buf.size() + 1 - max_len : 0;
      if (offset > limit)
        throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
    }
    // A complete message may have come with the EOF: look at the data first.
    if (r->eof_) {
      std::string chunk = r->take(r->size());
      throw IncompleteReadError(std::move(chunk), std::nullopt);
    }
    co_await detail::DataWaiter(*r, "readuntil");
  }
  if (match_start > limit)
    throw LimitOverrunError("Separator is found, but chunk is too long", match_start);
  std::string chunk = r->take(match_end);
  r->maybe_resume_transport();
  co_return chunk;
}

Coro<std::string> readline_impl(std::shared_ptr<ReaderCore> r, std::optional<std::size_t> limit) {
  std::string line;
  std::exception_ptr overrun;
  std::size_t consumed = 0;
  try {
    std::vector<std::string> seps(1, std::string(1, '\n'));
    line = co_await readuntil_impl(r, std::move(seps), limit);
  } catch (IncompleteReadError& e) {
    co_return std::move(const_cast<std::string&>(e.partial()));
  } catch (const LimitOverrunError& e) {
    overrun = std::current_exception();
    consumed = e.consumed();
  }
  if (overrun) {
    std::string_view buf = r->data();
    if (buf.size() > consumed && buf[consumed] == '\n')
      r->consume(consumed + 1);
    else
      r->clear();
    r->maybe_resume_transport();
    try {
      std::rethrow_exception(overrun);
    } catch (const LimitOverrunError& e) {
      throw ValueError(e.what());
    }
  }
  co_return line;
}

Coro<std::optional<std::string>> next_line_impl(std::shared_ptr<ReaderCore> r) {
  std::string line = co_await readline_impl(std::move(r), std::nullopt);
  if (line.empty()) co_return std::nullopt;
  co_return line;
}

}  // namespace

Coro<std::string> StreamReader::read(std::ptrdiff_t n) {
  return read_impl(core_, n);
}
Coro<std::string> StreamReader::readexactly(std::ptrdiff_t n) {
  return readexactly_impl(core_, n);
}
Coro<std::string> StreamReader::readuntil(std::string_view separator,
                                          std::optional<std::size_t> limit) {
  std::vector<std::string> seps;
  seps.emplace_back(separator);
  return readuntil_impl(core_, std::move(seps), limit);
}
Coro<std::string> StreamReader::readuntil(std::vector<std::string> separators,
                                          std::optional<std::size_t> limit) {
  return readuntil_impl(core_, std::move(separators), limit);
}
Coro<std::string> StreamReader::readline(std::optional<std::size_t> limit) {
  return readline_impl(core_, limit);
}
Coro<std::optional<std::string>> StreamReader::next_line() {
  return next_line_impl(core_);
}

bool StreamReader::at_eof() const noexcept {
  return core_->eof_ && core_->size() == 0;
}
std::size_t StreamReader::limit() const noexcept {
  return core_->limit_;
}
std::exception_ptr StreamReader::exception() const noexcept {
  return core_->exc_;
}
std::string_view StreamReader::buffer() const noexcept {
  return core_->data();
}
void StreamReader::feed_data(std::string_view data) {
  core_->check_thread("StreamReader.feed_data()");
  core_->feed_data(data);
}
void StreamReader::feed_eof() {
  core_->check_thread("StreamReader.feed_eof()");
  core_->feed_eof();
}
void StreamReader::set_exception(std::exception_ptr e) {
  core_->check_thread("StreamReader.set_exception()");
  core_->set_exception(std::move(e));
}

// ---------------------------------------------------------------------------------------
// StreamWriter

detail::StreamTransport& StreamWriter::t() const noexcept {
  return *h_->t;
}

void StreamWriter::write(std::string_view data) {
  t().write(data.data(), data.size());
}
void StreamWriter::write(std::span<const std::byte> data) {
  t().write(reinterpret_cast<const char*>(data.data()), data.size());
}
void StreamWriter::write_eof() {
  t().write_eof();
}
bool StreamWriter::can_write_eof() const noexcept {
  return t().can_write_eof();
}
std::optional<ssl::SSLInfo> StreamWriter::ssl_object() const {
  return t().ssl_info();
}
void StreamWriter::close() {
  t().check_thread("StreamWriter.close()");
  t().close();
}
bool StreamWriter::is_closing() const noexcept {
  return t().is_closing();
}
void StreamWriter::abort() {
  t().check_thread("StreamWriter.abort()");
  t().abort();
}
void StreamWriter::set_write_buffer_limits(std::optional<std::size_t> high,
                                           std::optional<std::size_t> low) {
  t().set_write_buffer_limits(high, low);
}
std::size_t StreamWriter::get_write_buffer_size() const noexcept {
  return t().pending();
}
SockAddr StreamWriter::peername() const {
  return t().peer_name();
}
SockAddr StreamWriter::sockname() const {
  return t().sock_name();
}
int StreamWriter::fileno() const noexcept {
  return t().fileno();
}

namespace {

Coro<void> drain_impl(std::shared_ptr<detail::StreamTransport> t) {
  t->check_thread("StreamWriter.drain()");
  if (t->reader_ && t->reader_->exc_) std::rethrow_exception(t->reader_->exc_);
  // Let a closing connection finish going (asyncio: a sleep(0) here).
  if (t->is_closing() && !t->conn_lost_) co_await sleep(0);
  if (t->conn_lost_) {
    if (t->lost_exc_) std::rethrow_exception(t->lost_exc_);
    throw ConnectionResetError("Connection lost (with " + t->peer() + ")");
  }
  if (!t->write_paused_) {
    // While the kernel takes everything, asyncio's drain() never suspends: the writer
    // starves every other task and, with its reader on the same loop, fills the peer's
    // window, so that each read then also transmits the writer's queued bytes (bulk
    // transfers 3x slower). After 64 KiB, drain() lets the loop poll I/O once (as Asio's
    // completions do): nothing a small-message server notices.
    if (t->written_since_yield_ >= 64 * 1024) {
      t->written_since_yield_ = 0;
      co_await asio::post(get_running_loop().io_context(), use_coro);
    }
    co_return;
  }
  t->written_since_yield_ = 0;
  co_await detail::ListWaiter(t->drain_waiters_);
  if (t->conn_lost_ && t->lost_exc_) std::rethrow_exception(t->lost_exc_);
}

Coro<void> wait_closed_impl(std::shared_ptr<detail::StreamTransport> t) {
  if (!t->conn_lost_) co_await detail::ListWaiter(t->close_waiters_);
  if (t->lost_exc_) std::rethrow_exception(t->lost_exc_);
}

Coro<void> start_tls_impl(std::shared_ptr<detail::StreamTransport> t, ssl::SSLContext ctx,
                          std::string server_hostname, double timeout, bool server_side) {
  co_await drain_impl(t);
  t->start_tls(ctx, server_side, server_hostname, timeout, 5.0);
  co_await detail::await_handshake(t);
}

}  // namespace

Coro<void> StreamWriter::start_tls(ssl::SSLContext context, std::string server_hostname,
                                   double ssl_handshake_timeout, bool server_side) {
  return start_tls_impl(h_->t, std::move(context), std::move(server_hostname),
                        ssl_handshake_timeout, server_side);
}

Coro<void> StreamWriter::drain() {
  return drain_impl(h_->t);
}
Coro<void> StreamWriter::wait_closed() {
  return wait_closed_impl(h_->t);
}

// ---------------------------------------------------------------------------------------
// Server

Server& Server::operator=(Server&& o) noexcept {
  if (this != &o) {
    if (core_) core_->close();
    core_ = std::move(o.core_);
  }
  return *this;
}

Server::~Server() {
  if (core_) core_->close();
}

void Server::close() {
  core_->close();
}
void Server::close_clients() {
  core_->for_each_client([](detail::StreamTransport& t) { t.close(); });
}
void Server::abort_clients() {
  core_->for_each_client([](detail::StreamTransport& t) { t.abort(); });
}
bool Server::is_serving() const noexcept {
  return core_->is_serving();
}
void Server::start_serving() {
  core_->check_thread("Server.start_serving()");
  core_->start_serving();
}
std::vector<SockAddr> Server::sockets() const {
  return core_->sockets();
}

namespace {

Coro<void> server_wait_closed(std::shared_ptr<detail::ServerCore> s) {
  // As 3.12+: returns once the server is closed and its last client is gone.
  while (!s->closed() || s->client_count() > 0)
    co_await detail::ListWaiter(s->closed_waiters_);
}

Coro<void> serve_forever_impl(std::shared_ptr<detail::ServerCore> s) {
  if (s->forever_) throw RuntimeError("the server is already being awaited on serve_forever()");
  if (s->closed()) throw RuntimeError("the server is closed");
  s->start_serving();
  co_await detail::ForeverWaiter(*s);
  // Cancelled, or closed by someone else (asyncio cancels the serve_forever future then):
  // close, let the clients go, and raise CancelledError.
  s->close();
  s->for_each_client([](detail::StreamTransport& t) { t.close(); });
  co_await server_wait_closed(s);
  detail::TaskBase* task = detail::running_task();
  if (task) task->throw_cancelled();
  throw CancelledError();
}

}  // namespace

Coro<void> Server::serve_forever() {
  return serve_forever_impl(core_);
}
Coro<void> Server::wait_closed() {
  return server_wait_closed(core_);
}

// ---------------------------------------------------------------------------------------
// open_connection, start_server

namespace {

Coro<std::pair<StreamReader, StreamWriter>> open_connection_impl(std::string host,
                                                                 std::uint16_t port,
                                                                 detail::ConnectConfig options) {
  if (options.limit == 0) throw ValueError("open_connection(): limit must be greater than 0");
  std::vector<AddrInfo> infos =
      co_await getaddrinfo(host, std::to_string(port), options.family, SOCK_STREAM);
  if (infos.empty()) throw OSError(EADDRNOTAVAIL, "getaddrinfo() returned empty list");
  if (options.ssl && options.server_hostname.empty()) options.server_hostname = host;
  co_return co_await detail::connect_stream(std::move(infos), std::move(options));
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection_impl(
    std::string path, detail::ConnectConfig options) {
  if (options.limit == 0) throw ValueError("open_unix_connection(): limit must be greater than 0");
  AddrInfo ai;
  ai.family = AF_UNIX;
  ai.type = SOCK_STREAM;
  ai.addr.family = AF_UNIX;
  ai.addr.path = std::move(path);
  sockaddr_storage ss;
  ai.addr.to(ss);  // ValueError for a path too long
  options.happy_eyeballs_delay.reset();
  options.local_addr.reset();
  std::vector<AddrInfo> infos(1, std::move(ai));
  co_return co_await detail::connect_stream(std::move(infos), std::move(options));
}

Coro<Server> start_server_impl(ClientConnected client_connected, std::vector<std::string> hosts,
                               std::uint16_t port, detail::ServerConfig options) {
  detail::check_options(options);
  if (!client_connected) throw ValueError("start_server(): client_connected is empty");
  if (hosts.empty()) hosts.emplace_back();
  std::vector<SockAddr> addrs;
  for (const std::string& h : hosts) {
    std::vector<AddrInfo> infos =
        co_await getaddrinfo(h, std::to_string(port), options.family, SOCK_STREAM, 0, AI_PASSIVE);
    for (AddrInfo& ai : infos)
      if (std::find(addrs.begin(), addrs.end(), ai.addr) == addrs.end()) addrs.push_back(ai.addr);
  }
  if (addrs.empty()) throw OSError(EADDRNOTAVAIL, "getaddrinfo() returned empty list");
  detail::LoopCore& loop = *detail::tls_loop;
  auto core = std::make_shared<detail::ServerCore>(loop, std::move(client_connected), options);
  Server server(core);
  for (const SockAddr& a : addrs) {
    detail::Socket sock(loop.owner.io_context());
    int fd = detail::listen_socket(a, options, sock, loop);
    core->add_listener(std::move(sock), detail::local_name(fd));
  }
  if (options.start_serving) core->start_serving();
  co_return server;
}

Coro<Server> start_unix_server_impl(ClientConnected client_connected, std::string path,
                                    detail::ServerConfig options) {
  detail::check_options(options);
  if (!client_connected) throw ValueError("start_unix_server(): client_connected is empty");
  SockAddr a;
  a.family = AF_UNIX;
  a.path = path;
  if (!path.empty() && path[0] != '\0') {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  }
  detail::LoopCore& loop = *detail::tls_loop;
  auto core = std::make_shared<detail::ServerCore>(loop, std::move(client_connected), options);
  Server server(core);
  detail::Socket sock(loop.owner.io_context());
  detail::listen_socket(a, options, sock, loop);
  if (!path.empty() && path[0] != '\0') {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) core->set_unix_path(path, st.st_dev, st.st_ino);
  }
  core->add_listener(std::move(sock), a);
  if (options.start_serving) core->start_serving();
  co_return server;
}

}  // namespace

// The public entry points are plain functions: the options (views) are copied now, while
// what they point to is sure to exist.
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectOptions options) {
  return open_connection_impl(std::move(host), port, detail::ConnectConfig(options));
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectOptions options) {
  return open_unix_connection_impl(std::move(path), detail::ConnectConfig(options));
}

Coro<Server> start_server(ClientConnected client_connected, std::string host, std::uint16_t port,
                          ServerOptions options) {
  std::vector<std::string> hosts;
  hosts.push_back(std::move(host));
  return start_server_impl(std::move(client_connected), std::move(hosts), port,
                           detail::ServerConfig(options));
}

Coro<Server> start_server(ClientConnected client_connected, std::vector<std::string> hosts,
                          std::uint16_t port, ServerOptions options) {
  return start_server_impl(std::move(client_connected), std::move(hosts), port,
                           detail::ServerConfig(options));
}

Coro<Server> start_unix_server(ClientConnected client_connected, std::string path,
                               ServerOptions options) {
  return start_unix_server_impl(std::move(client_connected), std::move(path),
                                detail::ServerConfig(options));
}

}  // namespace kettle
