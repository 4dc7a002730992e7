// kettle/ssl.hpp — TLS for streams: the parts of Python's ssl module that asyncio uses,
// on asio::ssl::context and OpenSSL 3.
//
//   // client: system CA store, peer and hostname verification on
//   auto ctx = kettle::ssl::create_default_context();
//   auto [r, w] = co_await kettle::open_connection("example.org", 443, {.ssl = &ctx});
//
//   // server
//   kettle::ssl::SSLContext server_ctx(kettle::ssl::PROTOCOL_TLS_SERVER);
//   server_ctx.load_cert_chain("cert.pem", "key.pem");
//   auto server = co_await kettle::start_server(handle, "0.0.0.0", 8443, {.ssl = &server_ctx});
//
// A context is a handle: copies share one OpenSSL SSL_CTX. Configure it before use.
// Thread safety: a configured context may be shared by loops on several threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kettle/exceptions.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace kettle::ssl {

enum class Purpose { SERVER_AUTH, CLIENT_AUTH };
enum class Protocol { PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER };
inline constexpr Protocol PROTOCOL_TLS_CLIENT = Protocol::PROTOCOL_TLS_CLIENT;
inline constexpr Protocol PROTOCOL_TLS_SERVER = Protocol::PROTOCOL_TLS_SERVER;
enum VerifyMode { CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED };

// ssl.SSLError: what() is "[reason] details"; code() is EPROTO.
class SSLError : public OSError {
 public:
  SSLError(const std::string& reason, const std::string& what);
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

// ssl.SSLCertVerificationError: the peer's certificate was refused.
class SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(long verify_code, const std::string& verify_message,
                           const std::string& what);
  long verify_code() const noexcept { return verify_code_; }
  const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  long verify_code_;
  std::string verify_message_;
};

class SSLContext {
 public:
  // PROTOCOL_TLS_CLIENT: CERT_REQUIRED and check_hostname on (no CA loaded yet);
  // PROTOCOL_TLS_SERVER: CERT_NONE. TLS 1.2 at least.
  explicit SSLContext(Protocol protocol);

  // The certificate chain (PEM) and its private key (PEM; default: in certfile).
  // FileNotFoundError for a missing file, SSLError for a bad one or a key that does not
  // match.
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = {});
  // CA certificates to verify peers with (a PEM file and/or a hashed directory).
  void load_verify_locations(const std::string& cafile = {}, const std::string& capath = {});
  // The system's CA store (Debian: /etc/ssl/certs).
  void load_default_certs();
  void set_default_verify_paths() { load_default_certs(); }

  bool check_hostname() const noexcept;
  // ValueError to turn it on while verify_mode is CERT_NONE; turning it on sets CERT_REQUIRED.
  void check_hostname(bool on);
  VerifyMode verify_mode() const noexcept;
  // ValueError for CERT_NONE while check_hostname is on (as Python).
  void verify_mode(VerifyMode mode);
  // ALPN protocols to offer (client) or accept (server), in preference order.
  void set_alpn_protocols(const std::vector<std::string>& protocols);

  Protocol protocol() const noexcept;
  SSL_CTX* native_handle() const noexcept;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

// ssl.create_default_context: SERVER_AUTH gives a client context that verifies servers
// against the system CA store (or cafile); CLIENT_AUTH a server context.
SSLContext create_default_context(Purpose purpose = Purpose::SERVER_AUTH,
                                  const std::string& cafile = {});

// What a TLS connection negotiated (writer.ssl_object()).
struct PeerCert {
  std::string subject;  // "CN=localhost,O=kettle" (RFC 2253)
  std::string issuer;
  std::vector<std::string> subject_alt_names;  // "DNS:localhost", "IP Address:127.0.0.1"
  std::string not_before, not_after;
  std::string der;  // the certificate itself (getpeercert(binary_form=True))
};

struct SSLInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_256_GCM_SHA384"
  std::string selected_alpn_protocol;
  std::string server_hostname;
  std::optional<PeerCert> peercert;  // none if the peer sent no certificate
};

}  // namespace kettle::ssl
