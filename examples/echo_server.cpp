// asyncio's "TCP echo server using streams" (docs: asyncio-stream.html):
//
//   async def handle_echo(reader, writer):
//       data = await reader.read(100)
//       message = data.decode()
//       addr = writer.get_extra_info('peername')
//       print(f"Received {message!r} from {addr!r}")
//       print(f"Send: {message!r}")
//       writer.write(data)
//       await writer.drain()
//       print("Close the connection")
//       writer.close()
//       await writer.wait_closed()
//
//   async def main():
//       server = await asyncio.start_server(handle_echo, '127.0.0.1', 8888)
//       addrs = ', '.join(str(sock.getsockname()) for sock in server.sockets)
//       print(f'Serving on {addrs}')
//       async with server:
//           await server.serve_forever()
//
//   asyncio.run(main())
//
// Usage: echo_server [port]   (default 8888; 0 picks a free port). Try it with echo_client.
#include <cstdlib>
#include <iostream>
#include <string>

#include <kettle/kettle.hpp>

kettle::Coro<> handle_echo(kettle::StreamReader reader, kettle::StreamWriter writer) {
  std::string message = co_await reader.read(100);
  kettle::SockAddr addr = writer.peername();
  std::cout << "Received '" << message << "' from ('" << addr.host << "', " << addr.port << ")"
            << std::endl;
  std::cout << "Send: '" << message << "'" << std::endl;
  writer.write(message);
  co_await writer.drain();
  std::cout << "Close the connection" << std::endl;
  writer.close();
  co_await writer.wait_closed();
}

kettle::Coro<> amain(std::uint16_t port) {
  kettle::Server server = co_await kettle::start_server(handle_echo, "127.0.0.1", port);
  std::string addrs;
  for (const kettle::SockAddr& a : server.sockets())
    addrs += (addrs.empty() ? "" : ", ") + ("('" + a.host + "', " + std::to_string(a.port) + ")");
  std::cout << "Serving on " << addrs << std::endl;
  co_await server.serve_forever();
}

int main(int argc, char** argv) {
  kettle::run(amain(argc > 1 ? std::uint16_t(std::atoi(argv[1])) : 8888));
}
