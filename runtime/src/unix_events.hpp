// Internal: a loop's signal handlers (asyncio's unix_events add_signal_handler).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include <asio/signal_set.hpp>

namespace kettle::detail {

// Whether this thread is the process's main thread (the one signal handlers belong to).
// Asked once per thread (two system calls), and again in a forked child.
bool on_main_thread() noexcept;

struct SignalHandlers {
  explicit SignalHandlers(asio::io_context& io) : set(io) {}
  struct Entry {
    std::function<void()> fn;
    std::uint64_t tag;
  };
  asio::signal_set set;
  std::map<int, Entry> handlers;
  bool waiting = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

}  // namespace kettle::detail
