// asyncio's "Get HTTP headers" example (docs: asyncio-stream.html):
//
//   async def print_http_headers(url):
//       url = urllib.parse.urlsplit(url)
//       if url.scheme == 'https':
//           reader, writer = await asyncio.open_connection(url.hostname, 443, ssl=True)
//       else:
//           reader, writer = await asyncio.open_connection(url.hostname, 80)
//       query = (f"HEAD {url.path or '/'} HTTP/1.0\r\n"
//                f"Host: {url.hostname}\r\n"
//                f"\r\n")
//       writer.write(query.encode('latin-1'))
//       while True:
//           line = await reader.readline()
//           if not line:
//               break
//           line = line.decode('latin1').rstrip()
//           if line:
//               print(f'HTTP header> {line}')
//       # Ignore the body, close the socket
//       writer.close()
//       await writer.wait_closed()
//
//   url = sys.argv[1]
//   asyncio.run(print_http_headers(url))
//
// Usage: http_headers [http://host[:port]/path]. Without a URL it asks a small HTTP server
// that it starts on loopback itself.
#include <iostream>
#include <string>

#include <kettle/kettle.hpp>

struct Url {
  std::string scheme, host, path;
  std::uint16_t port = 0;
};

Url urlsplit(const std::string& s) {
  Url u;
  auto colon = s.find("://");
  if (colon == std::string::npos) throw kettle::ValueError("not a URL: " + s);
  u.scheme = s.substr(0, colon);
  std::string rest = s.substr(colon + 3);
  auto slash = rest.find('/');
  std::string netloc = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto pc = netloc.rfind(':');
  if (pc != std::string::npos && netloc.find(']') == std::string::npos) {
    u.port = std::uint16_t(std::stoi(netloc.substr(pc + 1)));
    netloc.resize(pc);
  }
  u.host = netloc;
  if (u.scheme != "http")
    throw kettle::ValueError("only http:// URLs (TLS comes with kettle::ssl)");
  if (!u.port) u.port = 80;
  return u;
}

kettle::Coro<> print_http_headers(Url url) {
  auto [reader, writer] = co_await kettle::open_connection(url.host, url.port);
  std::string query = "HEAD " + url.path + " HTTP/1.0\r\nHost: " + url.host + "\r\n\r\n";
  writer.write(query);
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    line.erase(line.find_last_not_of(" \t\r\n") + 1);
    if (!line.empty()) std::cout << "HTTP header> " << line << std::endl;
  }
  // Ignore the body, close the socket
  writer.close();
  co_await writer.wait_closed();
}

// A tiny HTTP/1.0 server: reads the request head, answers with fixed headers.
kettle::Coro<> serve_http(kettle::StreamReader reader, kettle::StreamWriter writer) {
  std::string request_line = co_await reader.readline();
  while ((co_await reader.readline()).size() > 2) {
  }
  std::string body = "Hello, kettle!\n";
  writer.write(
      "HTTP/1.0 200 OK\r\nServer: kettle-example\r\nContent-Type: text/plain\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  if (request_line.rfind("HEAD ", 0) != 0) writer.write(body);
  co_await writer.drain();
  writer.close();
}

kettle::Coro<> amain(int argc, char** argv) {
  if (argc > 1) {
    co_await print_http_headers(urlsplit(argv[1]));
    co_return;
  }
  kettle::Server server = co_await kettle::start_server(serve_http, "127.0.0.1", 0);
  Url url{"http", "127.0.0.1", "/", server.sockets().at(0).port};
  co_await print_http_headers(url);
}

int main(int argc, char** argv) {
  kettle::run(amain(argc, argv));
}
