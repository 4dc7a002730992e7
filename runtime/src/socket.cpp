#include "kettle/socket.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "kettle/executors/thread_pool.hpp"
#include "kettle/futures.hpp"

namespace kettle {

namespace {

class GaiCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};

std::string quoted(const std::string& s) {
  return s.empty() ? "None" : "'" + s + "'";
}

std::vector<AddrInfo> blocking_getaddrinfo(std::string host, std::string port, int family, int type,
                                           int proto, int flags) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = type;
  hints.ai_protocol = proto;
  hints.ai_flags = flags;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                         port.empty() ? nullptr : port.c_str(), &hints, &res);
  std::string what = "getaddrinfo(" + quoted(host) + ", " + quoted(port) + ")";
  if (rc == EAI_SYSTEM) raise_os_error(std::error_code(errno, std::system_category()), what);
  if (rc != 0) throw gaierror(rc, what);
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, ::freeaddrinfo);
  std::vector<AddrInfo> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    AddrInfo r;
    r.family = ai->ai_family;
    r.type = ai->ai_socktype;
    r.proto = ai->ai_protocol;
    if (ai->ai_canonname) r.canonname = ai->ai_canonname;
    r.addr = SockAddr::from(ai->ai_addr, ai->ai_addrlen);
    out.push_back(std::move(r));
  }
  return out;
}

std::pair<std::string, std::string> blocking_getnameinfo(SockAddr addr, int flags) {
  if (addr.family != AF_INET && addr.family != AF_INET6)
    throw ValueError("getnameinfo(): only AF_INET and AF_INET6 addresses have names");
  sockaddr_storage ss;
  socklen_t len = addr.to(ss);
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  int rc = ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, serv,
                         sizeof serv, flags);
  if (rc == EAI_SYSTEM)
    raise_os_error(std::error_code(errno, std::system_category()), "getnameinfo()");
  if (rc != 0) throw gaierror(rc, "getnameinfo(" + addr.to_string() + ")");
  return {host, serv};
}

// Lookups can block for seconds and cannot be interrupted: they get threads of their own,
// which are never joined (a stuck lookup must not hold up the program's exit).
ThreadPoolExecutor& resolver_pool() {
  static ThreadPoolExecutor* pool = new ThreadPoolExecutor(4, "kettle-resolve");
  return *pool;
}

bool is_numeric_host(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return host.empty() || ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool is_numeric_port(const std::string& port) {
  return port.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

const std::error_category& gai_category() noexcept {
  static const GaiCategory c;
  return c;
}

gaierror::gaierror(int eai_code, const std::string& what)
    : OSError(std::error_code(eai_code, gai_category()), what) {}

std::string SockAddr::to_string() const {
  switch (family) {
    case AF_INET:
      return host + ":" + std::to_string(port);
    case AF_INET6:
      return "[" + host + "]:" + std::to_string(port);
    case AF_UNIX:
      if (path.empty()) return "<unnamed>";
      if (path[0] == '\0') return std::string(1, '@').append(path, 1);
      return path;
    default:
      return "<unknown address>";
  }
}

socklen_t SockAddr::to(sockaddr_storage& ss) const {
  std::memset(&ss, 0, sizeof ss);
  if (family == AF_INET || family == AF_INET6) {
    bool v4 = family == AF_INET;
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ss.ss_family = sa_family_t(family);
    (v4 ? s4->sin_port : s6->sin6_port) = htons(port);
    void* dst = v4 ? static_cast<void*>(&s4->sin_addr) : static_cast<void*>(&s6->sin6_addr);
    if (::inet_pton(family, host.c_str(), dst) != 1)
      throw ValueError("'" + host + "' is not an " + (v4 ? "IPv4" : "IPv6") + " address");
    return v4 ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }
  if (family != AF_UNIX) throw ValueError("unknown address family " + std::to_string(family));
  auto* su = reinterpret_cast<sockaddr_un*>(&ss);
  su->sun_family = AF_UNIX;
  if (path.size() >= sizeof su->sun_path)
    throw ValueError("Unix socket path too long (" + std::to_string(path.size()) +
                     " bytes, at most " + std::to_string(sizeof su->sun_path - 1) + ")");
  std::memcpy(su->sun_path, path.data(), path.size());
  return socklen_t(offsetof(sockaddr_un, sun_path) + path.size() +
                   (path.empty() || path[0] != '\0' ? 1 : 0));
}

SockAddr SockAddr::from(const sockaddr* sa, unsigned len) {
  SockAddr a;
  if (!sa || len < sizeof(sa_family_t)) return a;
  a.family = sa->sa_family;
  char buf[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    auto* s4 = reinterpret_cast<const sockaddr_in*>(sa);
    a.host = ::inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
    a.port = ntohs(s4->sin_port);
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    a.host = ::inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    a.port = ntohs(s6->sin6_port);
  } else if (sa->sa_family == AF_UNIX) {
    auto* su = reinterpret_cast<const sockaddr_un*>(sa);
    std::size_t n = len - offsetof(sockaddr_un, sun_path);
    if (n > 0 && su->sun_path[0] != '\0')
      a.path = std::string(su->sun_path, ::strnlen(su->sun_path, n));
    else
      a.path = std::string(su->sun_path, n);  // abstract (or unnamed when n == 0)
  }
  return a;
}

Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port, int family, int type,
                                        int proto, int flags) {
  if (is_numeric_host(host) && is_numeric_port(port))
    co_return blocking_getaddrinfo(std::move(host), std::move(port), family, type, proto,
                                   flags | AI_NUMERICHOST | AI_NUMERICSERV);
  Future<std::vector<AddrInfo>> f =
      resolver_pool().submit(blocking_getaddrinfo, host, port, family, type, proto, flags);
  co_return co_await f;
}

Coro<std::pair<std::string, std::string>> getnameinfo(SockAddr addr, int flags) {
  Future<std::pair<std::string, std::string>> f =
      resolver_pool().submit(blocking_getnameinfo, addr, flags);
  co_return co_await f;
}

}  // namespace kettle
