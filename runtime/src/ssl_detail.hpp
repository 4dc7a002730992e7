// Internal: what streams.cpp needs from ssl.cpp.
#pragma once

#include <exception>
#include <string>

#include "kettle/ssl.hpp"

namespace kettle::ssl::detail {

// An SSLError from OpenSSL's error queue (which it clears): "[REASON] what: reason".
SSLError ssl_error_from_queue(const std::string& what);
// Why a handshake failed: SSLCertVerificationError if the peer's certificate was refused.
std::exception_ptr handshake_error(SSL* ssl, const std::string& peer);
// What a connection negotiated, after its handshake.
SSLInfo info_of(SSL* ssl, const std::string& server_hostname);

}  // namespace kettle::ssl::detail
