// The seeds' "chat servers": every line a client sends goes to all the other clients.
//
//   clients = set()
//   async def handle(reader, writer):
//       name = (await reader.readline()).decode().strip()
//       broadcast(f"* {name} joined\n", writer); clients.add(writer)
//       async for line in reader:
//           broadcast(f"{name}: {line.decode()}", writer)
//       clients.discard(writer); broadcast(f"* {name} left\n", writer)
//       writer.close()
//
// Usage: chat_server [port]  serves until stopped (default port 8888; try two `nc` sessions:
//                            the first line you type is your name).
//        chat_server --demo  the same server on a free port, and three clients in this
//                            process that join, chat and leave one event at a time; prints
//                            what each one heard.
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <kettle/kettle.hpp>

class ChatServer {
 public:
  kettle::Coro<> handle(kettle::StreamReader reader, kettle::StreamWriter writer) {
    std::string name = co_await reader.readline();
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r'))
      name.pop_back();
    if (name.empty()) co_return;
    broadcast("* " + name + " joined\n", writer);
    clients_.push_back(writer);
    while (auto line = co_await reader.next_line())
      broadcast(name + ": " + *line, writer);
    std::erase(clients_, writer);
    broadcast("* " + name + " left\n", writer);
    writer.close();
  }

 private:
  void broadcast(const std::string& message, const kettle::StreamWriter& from) {
    for (kettle::StreamWriter& w : clients_)
      if (w != from) w.write(message);  // buffered; a slow client lags alone
  }
  std::vector<kettle::StreamWriter> clients_;

 public:
  std::size_t size() const { return clients_.size(); }
};

// The demo's clients: each one's listener records what it hears.
struct Client {
  std::string name;
  kettle::StreamWriter writer;
  std::vector<std::string> heard;
  kettle::Task<> listener;
};

kettle::Coro<> listen(kettle::StreamReader reader, Client& me, std::size_t& heard_total) {
  while (auto line = co_await reader.next_line()) {
    me.heard.push_back(*line);
    ++heard_total;
  }
}

// Waits until cond() holds (the demo steps one event at a time, so its output is fixed).
template <class Cond>
kettle::Coro<> until(Cond cond) {
  while (!cond())
    co_await kettle::sleep(0.005);
}

kettle::Coro<> demo() {
  ChatServer chat;
  kettle::ClientConnected handler = [&](kettle::StreamReader r, kettle::StreamWriter w) {
    return chat.handle(std::move(r), std::move(w));
  };
  kettle::Server server = co_await kettle::start_server(handler, "127.0.0.1", 0);
  std::uint16_t port = server.sockets().at(0).port;
  std::vector<std::unique_ptr<Client>> clients;
  std::size_t heard = 0, expected = 0;
  for (std::string name : {"alice", "bob", "carol"}) {
    auto [reader, writer] = co_await kettle::open_connection("127.0.0.1", port);
    writer.write(name + "\n");
    clients.push_back(std::make_unique<Client>(Client{name, writer, {}, {}}));
    clients.back()->listener = kettle::create_task(listen(reader, *clients.back(), heard));
    expected += clients.size() - 1;  // everyone already there hears the join
    co_await until([&] { return chat.size() == clients.size() && heard == expected; });
  }
  const std::pair<int, const char*> script[] = {{0, "hi all"}, {1, "hello alice"},
                                                {2, "hey"},    {0, "how is the tea?"},
                                                {1, "strong"}, {2, "bye"}};
  for (auto [who, text] : script) {
    clients[who]->writer.write(std::string(text) + "\n");
    expected += clients.size() - 1;
    co_await until([&] { return heard == expected; });
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {  // they leave in turn
    clients[i]->writer.write_eof();
    co_await clients[i]->listener;  // the server closes the connection after the goodbye
    expected += clients.size() - 1 - i;
    co_await until([&] { return heard == expected; });
    clients[i]->writer.close();
  }
  for (auto& c : clients) {
    std::cout << c->name << " heard:" << std::endl;
    for (const std::string& line : c->heard)
      std::cout << "  " << line;
  }
  server.close();
  co_await server.wait_closed();
}

kettle::Coro<> serve(std::uint16_t port) {
  ChatServer chat;
  kettle::ClientConnected handler = [&](kettle::StreamReader r, kettle::StreamWriter w) {
    return chat.handle(std::move(r), std::move(w));
  };
  kettle::Server server = co_await kettle::start_server(handler, "127.0.0.1", port);
  std::cout << "Chat server on 127.0.0.1:" << server.sockets().at(0).port << std::endl;
  co_await server.serve_forever();
}

int main(int argc, char** argv) {
  std::string arg = argc > 1 ? argv[1] : "";
  if (arg == "--demo")
    kettle::run(demo());
  else
    kettle::run(serve(arg.empty() ? 8888 : std::uint16_t(std::atoi(arg.c_str()))));
}
