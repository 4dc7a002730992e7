// asyncio's subprocess docs example: shell commands run concurrently, each one's output
// collected with communicate(); the whole takes about as long as the slowest command.
//
//   async def run(cmd):
//       proc = await asyncio.create_subprocess_shell(
//           cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
//       stdout, stderr = await proc.communicate()
//       print(f'[{cmd!r} exited with {proc.returncode}]')
//       if stdout:
//           print(f'[stdout]\n{stdout.decode()}')
//       if stderr:
//           print(f'[stderr]\n{stderr.decode()}')
//
//   async def main():
//       await asyncio.gather(run('ls /zzz'), run('sleep 0.5; echo "half"'),
//                            run('sleep 1; echo "hello"'))
#include <iostream>
#include <string>

#include <kettle/kettle.hpp>

using kettle::subprocess::PIPE;

kettle::Coro<> run(std::string cmd) {
  auto proc = co_await kettle::create_subprocess_shell(cmd, {.stdout_ = PIPE, .stderr_ = PIPE});
  auto [out, err] = co_await proc.communicate();
  std::cout << "['" << cmd << "' exited with " << *proc.returncode() << "]\n";
  if (!out.empty()) std::cout << "[stdout]\n" << out << "\n";
  if (!err.empty()) std::cout << "[stderr]\n" << err << "\n";
}

kettle::Coro<> amain() {
  co_await kettle::gather(run("ls /zzz"), run("sleep 0.5; echo \"half\""),
                          run("sleep 1; echo \"hello\""));
}

int main() {
  kettle::run(amain());
}
