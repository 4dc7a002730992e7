// What is every task waiting on? asyncio 3.14's introspection example: two albums play
// their tracks in nested TaskGroups.
//
//   async def play(track):
//       await asyncio.sleep(300)
//
//   async def album(name, tracks):
//       async with asyncio.TaskGroup() as tg:
//           for track in tracks:
//               tg.create_task(play(track), name=track)
//
//   async def main():
//       async with asyncio.TaskGroup() as tg:
//           tg.create_task(album("Sundowning", ["TNDNBTG", "Levitate"]), name="Sundowning")
//           tg.create_task(album("TMBTE", ["DYWTYLM", "Aqua Regia"]), name="TMBTE")
//
// Python asks from outside (`python -m asyncio pstree PID`); here one track prints its own
// call graph (asyncio.print_call_graph()) and another prints every task as a tree (and as
// `ps`'s table). A program run with RunOptions{.debug = true} prints the same tree to stderr
// when sent SIGUSR1.
#include <iostream>
#include <string>
#include <vector>

#include <kettle/kettle.hpp>

using namespace std::chrono_literals;
using kettle::Coro;

Coro<> play(std::string track) {
  if (track == "Levitate") {
    co_await kettle::sleep(50ms);
    kettle::print_call_graph();  // this task: its frames, and who awaits it, up to main
  } else if (track == "Aqua Regia") {
    co_await kettle::sleep(100ms);
    std::cout << "--- every task, as python -m asyncio pstree:\n";
    kettle::print_tasks();
    std::cout << "--- as python -m asyncio ps:\n";
    kettle::print_tasks(kettle::TaskListing::table);
  }
  co_await kettle::sleep(300ms);
}

Coro<> album(std::string name, std::vector<std::string> tracks) {
  auto body = [&](kettle::TaskGroup& tg) -> Coro<> {
    for (const std::string& track : tracks)
      tg.create_task(play(track), track);
    co_return;
  };
  co_await kettle::task_group(body);
}

Coro<> main_() {
  auto body = [](kettle::TaskGroup& tg) -> Coro<> {
    tg.create_task(album("Sundowning", {"TNDNBTG", "Levitate"}), "Sundowning");
    tg.create_task(album("TMBTE", {"DYWTYLM", "Aqua Regia"}), "TMBTE");
    co_return;
  };
  co_await kettle::task_group(body);
}

int main() {
  kettle::run(main_());
}
