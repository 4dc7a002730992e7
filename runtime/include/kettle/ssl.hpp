/// @file
/// kettle/ssl.hpp — TLS for streams: the parts of Python's ssl module that asyncio uses,
/// on asio::ssl::context and OpenSSL 3.
///
/// @code
/// // client: system CA store, peer and hostname verification on
/// auto ctx = kettle::ssl::create_default_context();
/// auto [r, w] = co_await kettle::open_connection("example.org", 443, {.ssl = &ctx});
///
/// // server
/// kettle::ssl::SSLContext server_ctx(kettle::ssl::PROTOCOL_TLS_SERVER);
/// server_ctx.load_cert_chain("cert.pem", "key.pem");
/// auto server = co_await kettle::start_server(handle, "0.0.0.0", 8443, {.ssl = &server_ctx});
/// @endcode
///
/// A context is a handle: copies share one OpenSSL SSL_CTX. Configure it before use.
/// Thread safety: a configured context may be shared by loops on several threads.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kettle/exceptions.hpp"

/// OpenSSL's SSL_CTX (declared here so that this header needs no OpenSSL header).
typedef struct ssl_ctx_st SSL_CTX;
/// OpenSSL's SSL (declared here so that this header needs no OpenSSL header).
typedef struct ssl_st SSL;

/// TLS for streams: the parts of Python's ssl module that asyncio uses (see ssl.hpp).
namespace kettle::ssl {

/// ssl.Purpose, for create_default_context().
enum class Purpose {
  SERVER_AUTH,  ///< A client context, that authenticates servers.
  CLIENT_AUTH   ///< A server context, that may authenticate clients.
};
/// The side of the connection a context is for (ssl.PROTOCOL_TLS_CLIENT / _SERVER).
enum class Protocol {
  PROTOCOL_TLS_CLIENT,  ///< Client side.
  PROTOCOL_TLS_SERVER   ///< Server side.
};
/// ssl.PROTOCOL_TLS_CLIENT.
inline constexpr Protocol PROTOCOL_TLS_CLIENT = Protocol::PROTOCOL_TLS_CLIENT;
/// ssl.PROTOCOL_TLS_SERVER.
inline constexpr Protocol PROTOCOL_TLS_SERVER = Protocol::PROTOCOL_TLS_SERVER;
/// ssl.VerifyMode: whether the peer's certificate is asked for and verified.
enum VerifyMode {
  CERT_NONE,      ///< No verification.
  CERT_OPTIONAL,  ///< Verified if the peer sends one.
  CERT_REQUIRED   ///< Required and verified.
};

/// ssl.SSLError: what() is "[reason] details"; code() is EPROTO.
class SSLError : public OSError {
 public:
  /// what() is "[reason] what".
  SSLError(const std::string& reason, const std::string& what);
  /// OpenSSL's reason ("SSL" when it gave none).
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

/// ssl.SSLCertVerificationError: the peer's certificate was refused.
class SSLCertVerificationError : public SSLError {
 public:
  /// OpenSSL's verification result (X509_V_ERR_*) and its message.
  SSLCertVerificationError(long verify_code, const std::string& verify_message,
                           const std::string& what);
  /// OpenSSL's verification result (X509_V_ERR_*).
  long verify_code() const noexcept { return verify_code_; }
  /// Its message, e.g. "self-signed certificate".
  const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  long verify_code_;
  std::string verify_message_;
};

/// ssl.SSLContext: TLS settings and certificates. A handle: copies share one OpenSSL
/// SSL_CTX.
class SSLContext {
 public:
  /// PROTOCOL_TLS_CLIENT: CERT_REQUIRED and check_hostname on (no CA loaded yet);
  /// PROTOCOL_TLS_SERVER: CERT_NONE. TLS 1.2 at least.
  explicit SSLContext(Protocol protocol);

  /// The certificate chain (PEM) and its private key (PEM; default: in certfile).
  /// FileNotFoundError for a missing file, SSLError for a bad one or a key that does not
  /// match.
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = {});
  /// CA certificates to verify peers with (a PEM file and/or a hashed directory).
  /// ValueError if neither is given, FileNotFoundError for a missing one, SSLError for a
  /// bad one.
  void load_verify_locations(const std::string& cafile = {}, const std::string& capath = {});
  ///@{
  /// The system's CA store (Debian: /etc/ssl/certs).
  void load_default_certs();
  void set_default_verify_paths() { load_default_certs(); }
  ///@}

  /// Whether the peer's certificate must match the server hostname.
  bool check_hostname() const noexcept;
  /// Turning it on while verify_mode is CERT_NONE sets CERT_REQUIRED (as Python does).
  void check_hostname(bool on);
  /// Whether and how the peer's certificate is verified.
  VerifyMode verify_mode() const noexcept;
  /// ValueError for CERT_NONE while check_hostname is on (as Python).
  void verify_mode(VerifyMode mode);
  /// ALPN protocols to offer (client) or accept (server), in preference order.
  void set_alpn_protocols(const std::vector<std::string>& protocols);

  /// The side it was made for.
  Protocol protocol() const noexcept;
  /// The OpenSSL context, for settings kettle has no method for.
  SSL_CTX* native_handle() const noexcept;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

/// ssl.create_default_context: SERVER_AUTH gives a client context that verifies servers
/// against the system CA store (or cafile); CLIENT_AUTH a server context.
SSLContext create_default_context(Purpose purpose = Purpose::SERVER_AUTH,
                                  const std::string& cafile = {});

/// The peer's certificate (ssl.SSLObject.getpeercert()).
struct PeerCert {
  std::string subject;  ///< "CN=localhost,O=kettle" (RFC 2253).
  std::string issuer;   ///< The issuer's name, in the same form.
  /// "DNS:localhost", "IP Address:127.0.0.1".
  std::vector<std::string> subject_alt_names;
  ///@{
  /// The validity period: its start and its end.
  std::string not_before, not_after;
  ///@}
  std::string der;  ///< The certificate itself (getpeercert(binary_form=True)).
};

/// What a TLS connection negotiated (writer.ssl_object()).
struct SSLInfo {
  std::string version;                 ///< "TLSv1.3".
  std::string cipher;                  ///< "TLS_AES_256_GCM_SHA384".
  std::string selected_alpn_protocol;  ///< Empty if none was agreed.
  std::string server_hostname;         ///< The server_hostname it was set up with.
  std::optional<PeerCert> peercert;    ///< None if the peer sent no certificate.
};

}  // namespace kettle::ssl
