// The seed's fetch_data coroutines doing real network fetches:
//
//   async def fetch_data(task_id):
//       print(f"Fetching data for task {task_id}...")
//       await asyncio.sleep(2)                       # here: an HTTP request on loopback
//       print(f"Data fetched for task {task_id}.")
//
//   async def main():
//       tasks = [fetch_data(i) for i in range(3)]
//       await asyncio.gather(*tasks)
//
// A tiny HTTP server on loopback answers /data/<id>?delay=<ms> after that delay. Three
// fetches, gathered under a 5 s timeout, take as long as the slowest (1.5 s), not the sum.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;

// GET /data/<id>?delay=<ms>: waits, then answers "data for task <id>".
kettle::Coro<> serve(kettle::StreamReader reader, kettle::StreamWriter writer) {
  std::string request = co_await reader.readline();  // "GET /data/1?delay=1000 HTTP/1.0"
  while ((co_await reader.readline()).size() > 2) {  // the rest of the head
  }
  int id = 0, delay_ms = 0;
  std::sscanf(request.c_str(), "GET /data/%d?delay=%d", &id, &delay_ms);
  co_await kettle::sleep(std::chrono::milliseconds(delay_ms));
  std::string body = "data for task " + std::to_string(id);
  writer.write("HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
               body);
  co_await writer.drain();
  writer.close();
}

kettle::Coro<std::string> fetch_data(int task_id, std::uint16_t port) {
  std::cout << "Fetching data for task " << task_id << "..." << std::endl;
  auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", port);
  int delay_ms = 500 * (task_id + 1);
  writer.write("GET /data/" + std::to_string(task_id) + "?delay=" + std::to_string(delay_ms) +
               " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  std::string response = co_await reader.read();  // HTTP/1.0: the server closes at the end
  writer.close();
  co_await writer.wait_closed();
  std::string body = response.substr(response.find("\r\n\r\n") + 4);
  std::cout << "Data fetched for task " << task_id << ": " << body << std::endl;
  co_return body;
}

kettle::Coro<> amain() {
  kettle::Server server = co_await kettle::start_server(serve, "127.0.0.1", 0);
  std::uint16_t port = server.sockets().at(0).port;
  auto start = std::chrono::steady_clock::now();
  std::vector<kettle::Coro<std::string>> tasks;
  for (int i = 0; i < 3; ++i)
    tasks.push_back(fetch_data(i, port));
  std::vector<std::string> results = co_await kettle::wait_for(kettle::gather(tasks), 5s);
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("%zu results in %.1f s (the slowest fetch alone takes 1.5 s)\n", results.size(),
              took.count());
}

int main() {
  kettle::run(amain());
}
