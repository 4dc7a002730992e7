// asyncio's "TCP echo client using streams" (docs: asyncio-stream.html):
//
//   async def tcp_echo_client(message):
//       reader, writer = await asyncio.open_connection('127.0.0.1', 8888)
//       print(f'Send: {message!r}')
//       writer.write(message.encode())
//       await writer.drain()
//       data = await reader.read(100)
//       print(f'Received: {data.decode()!r}')
//       print('Close the connection')
//       writer.close()
//       await writer.wait_closed()
//
//   asyncio.run(tcp_echo_client('Hello World!'))
//
// Usage: echo_client [port]   (default 8888), with echo_server running.
#include <cstdlib>
#include <iostream>
#include <string>

#include <kettle/kettle.hpp>

kettle::Coro<> tcp_echo_client(std::string message, std::uint16_t port) {
  auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", port);
  std::cout << "Send: '" << message << "'" << std::endl;
  writer.write(message);
  co_await writer.drain();
  std::string data = co_await reader.read(100);
  std::cout << "Received: '" << data << "'" << std::endl;
  std::cout << "Close the connection" << std::endl;
  writer.close();
  co_await writer.wait_closed();
}

int main(int argc, char** argv) {
  kettle::run(tcp_echo_client("Hello World!", argc > 1 ? std::uint16_t(std::atoi(argv[1])) : 8888));
}
