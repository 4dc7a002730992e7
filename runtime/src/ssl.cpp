#include "kettle/ssl.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <mutex>

#include <asio/ssl/context.hpp>

#include "ssl_detail.hpp"

namespace kettle::ssl {

namespace {

void require_file(const std::string& path, const char* what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    raise_os_error(std::error_code(errno, std::system_category()),
                   std::string(what) + ": '" + path + "'");
}

}  // namespace

struct SSLContext::State {
  explicit State(Protocol p)
      : protocol(p),
        ctx(p == PROTOCOL_TLS_CLIENT ? asio::ssl::context::tls_client
                                     : asio::ssl::context::tls_server) {}
  Protocol protocol;
  asio::ssl::context ctx;
  bool check_hostname = false;
  VerifyMode verify = CERT_NONE;
  std::string alpn_wire;  // ALPN list in wire format (length-prefixed names)
  std::mutex mu;          // configuration may race with a handshake on another thread
};

SSLError::SSLError(const std::string& reason, const std::string& what)
    : OSError(EPROTO, "[" + reason + "] " + what), reason_(reason) {}

SSLCertVerificationError::SSLCertVerificationError(long verify_code,
                                                   const std::string& verify_message,
                                                   const std::string& what)
    : SSLError("CERTIFICATE_VERIFY_FAILED", what),
      verify_code_(verify_code),
      verify_message_(verify_message) {}

namespace {
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned inlen, void* arg) {
  const std::string& ours = *static_cast<const std::string*>(arg);
  unsigned char* o = nullptr;
  if (SSL_select_next_proto(&o, outlen, reinterpret_cast<const unsigned char*>(ours.data()),
                            unsigned(ours.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}
}  // namespace

SSLContext::SSLContext(Protocol protocol) : s_(std::make_shared<State>(protocol)) {
  SSL_CTX* c = s_->ctx.native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (protocol == PROTOCOL_TLS_CLIENT) {
    s_->check_hostname = true;
    s_->verify = CERT_REQUIRED;
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
}

void SSLContext::load_cert_chain(const std::string& certfile, const std::string& keyfile) {
  require_file(certfile, "load_cert_chain()");
  if (!keyfile.empty()) require_file(keyfile, "load_cert_chain()");
  std::lock_guard lock(s_->mu);
  SSL_CTX* c = s_->ctx.native_handle();
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(c, certfile.c_str()) != 1)
    throw detail::ssl_error_from_queue("load_cert_chain('" + certfile + "')");
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  if (SSL_CTX_use_PrivateKey_file(c, key.c_str(), SSL_FILETYPE_PEM) != 1)
    throw detail::ssl_error_from_queue("load_cert_chain(): the private key in '" + key + "'");
  if (SSL_CTX_check_private_key(c) != 1)
    throw detail::ssl_error_from_queue("load_cert_chain(): the key does not match the certificate");
}

void SSLContext::load_verify_locations(const std::string& cafile, const std::string& capath) {
  if (cafile.empty() && capath.empty())
    throw ValueError("load_verify_locations(): cafile or capath must be given");
  if (!cafile.empty()) require_file(cafile, "load_verify_locations()");
  if (!capath.empty()) require_file(capath, "load_verify_locations()");
  std::lock_guard lock(s_->mu);
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(s_->ctx.native_handle(),
                                    cafile.empty() ? nullptr : cafile.c_str(),
                                    capath.empty() ? nullptr : capath.c_str()) != 1)
    throw detail::ssl_error_from_queue("load_verify_locations()");
}

void SSLContext::load_default_certs() {
  std::lock_guard lock(s_->mu);
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(s_->ctx.native_handle()) != 1)
    throw detail::ssl_error_from_queue("load_default_certs()");
}

bool SSLContext::check_hostname() const noexcept {
  return s_->check_hostname;
}

void SSLContext::check_hostname(bool on) {
  std::lock_guard lock(s_->mu);
  if (on && s_->verify == CERT_NONE) {
    s_->verify = CERT_REQUIRED;
    SSL_CTX_set_verify(s_->ctx.native_handle(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  }
  s_->check_hostname = on;
}

VerifyMode SSLContext::verify_mode() const noexcept {
  return s_->verify;
}

void SSLContext::verify_mode(VerifyMode mode) {
  std::lock_guard lock(s_->mu);
  if (mode == CERT_NONE && s_->check_hostname)
    throw ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.");
  int flags = mode == CERT_NONE       ? SSL_VERIFY_NONE
              : mode == CERT_OPTIONAL ? SSL_VERIFY_PEER
                                      : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(s_->ctx.native_handle(), flags, nullptr);
  s_->verify = mode;
}

void SSLContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255)
      throw ValueError("set_alpn_protocols(): a protocol name has 1 to 255 bytes");
    wire.push_back(char(p.size()));
    wire += p;
  }
  std::lock_guard lock(s_->mu);
  s_->alpn_wire = wire;
  SSL_CTX* c = s_->ctx.native_handle();
  if (s_->protocol == PROTOCOL_TLS_CLIENT)
    SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(s_->alpn_wire.data()),
                            unsigned(s_->alpn_wire.size()));
  else
    SSL_CTX_set_alpn_select_cb(c, select_alpn, &s_->alpn_wire);
}

Protocol SSLContext::protocol() const noexcept {
  return s_->protocol;
}
SSL_CTX* SSLContext::native_handle() const noexcept {
  return s_->ctx.native_handle();
}

SSLContext create_default_context(Purpose purpose, const std::string& cafile) {
  if (purpose == Purpose::SERVER_AUTH) {
    SSLContext ctx(PROTOCOL_TLS_CLIENT);
    if (cafile.empty())
      ctx.load_default_certs();
    else
      ctx.load_verify_locations(cafile);
    return ctx;
  }
  SSLContext ctx(PROTOCOL_TLS_SERVER);
  if (!cafile.empty()) ctx.load_verify_locations(cafile);
  return ctx;
}

// ---------------------------------------------------------------------------------------

namespace detail {

SSLError ssl_error_from_queue(const std::string& what) {
  unsigned long e = ERR_get_error();
  std::string reason = "SSL";
  std::string detail;
  if (e != 0) {
    const char* r = ERR_reason_error_string(e);
    detail = r ? r : "unknown error";
    reason.clear();
    for (char ch : detail)
      reason.push_back(ch == ' ' ? '_' : char(std::toupper(static_cast<unsigned char>(ch))));
  }
  ERR_clear_error();
  return SSLError(reason, what + (detail.empty() ? "" : ": " + detail));
}

std::exception_ptr handshake_error(SSL* ssl, const std::string& peer) {
  long v = SSL_get_verify_result(ssl);
  if (v != X509_V_OK && SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE) {
    ERR_clear_error();
    std::string msg = X509_verify_cert_error_string(v);
    return std::make_exception_ptr(SSLCertVerificationError(
        v, msg, "certificate verify failed: " + msg + " (peer " + peer + ")"));
  }
  return std::make_exception_ptr(ssl_error_from_queue("TLS handshake with " + peer));
}

namespace {
std::string name_line(X509_NAME* n) {
  BIO* b = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  long len = BIO_get_mem_data(b, &p);
  std::string s(p, std::size_t(len));
  BIO_free(b);
  return s;
}
std::string time_line(const ASN1_TIME* t) {
  BIO* b = BIO_new(BIO_s_mem());
  ASN1_TIME_print(b, t);
  char* p = nullptr;
  long len = BIO_get_mem_data(b, &p);
  std::string s(p, std::size_t(len));
  BIO_free(b);
  return s;
}
}  // namespace

SSLInfo info_of(SSL* ssl, const std::string& server_hostname) {
  SSLInfo info;
  info.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) info.cipher = SSL_CIPHER_get_name(c);
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn) info.selected_alpn_protocol.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  info.server_hostname = server_hostname;
  if (X509* cert = SSL_get1_peer_certificate(ssl)) {
    PeerCert pc;
    pc.subject = name_line(X509_get_subject_name(cert));
    pc.issuer = name_line(X509_get_issuer_name(cert));
    pc.not_before = time_line(X509_get0_notBefore(cert));
    pc.not_after = time_line(X509_get0_notAfter(cert));
    if (auto* names = static_cast<GENERAL_NAMES*>(
            X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
      for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
          pc.subject_alt_names.push_back(
              "DNS:" +
              std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                          std::size_t(ASN1_STRING_length(g->d.dNSName))));
        } else if (g->type == GEN_IPADD) {
          const unsigned char* ip = ASN1_STRING_get0_data(g->d.iPAddress);
          int len = ASN1_STRING_length(g->d.iPAddress);
          char buf[64] = {};
          if (len == 4) std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
          pc.subject_alt_names.push_back(std::string("IP Address:") + (len == 4 ? buf : "<IPv6>"));
        }
      }
      GENERAL_NAMES_free(names);
    }
    int len = i2d_X509(cert, nullptr);
    if (len > 0) {
      pc.der.resize(std::size_t(len));
      auto* p = reinterpret_cast<unsigned char*>(pc.der.data());
      i2d_X509(cert, &p);
    }
    X509_free(cert);
    info.peercert = std::move(pc);
  }
  return info;
}

}  // namespace detail
}  // namespace kettle::ssl
