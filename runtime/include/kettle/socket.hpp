/// @file
/// kettle/socket.hpp — addresses and name resolution on the loop (Python's socket module and
/// loop.getaddrinfo / loop.getnameinfo).
///
/// @code
/// for (const kettle::AddrInfo& ai : co_await kettle::getaddrinfo("localhost", "8888"))
///   std::cout << ai.addr.to_string() << "\n";               // 127.0.0.1:8888, [::1]:8888
/// auto [host, service] = co_await kettle::getnameinfo(addr);
/// @endcode
///
/// Resolution runs on a small pool of threads of its own (four), never on the loop and not
/// on Asio's resolver thread: a cancelled task walks away at once, and the lookup's result is
/// dropped when it comes. A numeric host and port are resolved on the spot, without a thread.
/// Cancellation: nothing is left behind.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/exceptions.hpp"

struct sockaddr;

namespace kettle {

/// A socket address: an IP endpoint or a Unix socket path.
struct SockAddr {
  int family = AF_UNSPEC;  ///< AF_INET, AF_INET6 or AF_UNIX.
  std::string host;        ///< Numeric ("127.0.0.1", "::1"), for AF_INET and AF_INET6.
  std::uint16_t port = 0;  ///< The port, for AF_INET and AF_INET6.
  /// AF_UNIX; empty for an unnamed socket; an abstract name starts with '\0'.
  std::string path;

  /// "127.0.0.1:8888", "[::1]:8888", "/tmp/chat.sock", "@abstract", "<unnamed>".
  std::string to_string() const;
  /// Equal when every field is.
  bool operator==(const SockAddr&) const = default;

  ///@{
  /// Implementation: from and to the system's form. to() raises ValueError for a host that
  /// is not a numeric address of its family or a Unix path too long.
  static SockAddr from(const sockaddr* sa, unsigned len);
  socklen_t to(sockaddr_storage& ss) const;
  ///@}
};

/// One result of getaddrinfo (Python's (family, type, proto, canonname, sockaddr)).
struct AddrInfo {
  int family = 0;         ///< AF_INET, AF_INET6, ...
  int type = 0;           ///< SOCK_STREAM, SOCK_DGRAM, ...
  int proto = 0;          ///< IPPROTO_TCP, IPPROTO_UDP, ...
  std::string canonname;  ///< The canonical name, if AI_CANONNAME asked for it.
  SockAddr addr;          ///< The address.
};

/// socket.gaierror: resolution failed. code().value() is the EAI_* code (negative), what()
/// names the host: "getaddrinfo('nosuch.invalid', '80'): Name or service not known".
class gaierror : public OSError {
 public:
  /// The EAI_* code eai_code, in gai_category(); what is what() before ": <message>".
  gaierror(int eai_code, const std::string& what);
};
/// The error category of gaierror's codes ("getaddrinfo"; messages from gai_strerror).
const std::error_category& gai_category() noexcept;

/// loop.getaddrinfo: an empty host means none (with AI_PASSIVE: the wildcard address), an
/// empty port none. family/type/proto/flags as getaddrinfo(3).
[[nodiscard]] Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port,
                                                      int family = 0, int type = 0, int proto = 0,
                                                      int flags = 0);
/// loop.getnameinfo: (host, service) of an IP address.
[[nodiscard]] Coro<std::pair<std::string, std::string>> getnameinfo(SockAddr addr, int flags = 0);

}  // namespace kettle
