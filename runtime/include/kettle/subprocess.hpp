/// @file
/// kettle/subprocess.hpp — asyncio.subprocess: child processes whose pipes are streams.
///
/// @code
/// using namespace kettle::subprocess;
/// Process p = co_await kettle::create_subprocess_exec("ls", "-l", "/tmp",
///                                                    Options{.stdout_ = PIPE});
/// auto [out, err] = co_await p.communicate();   // out: ls's output; p.returncode() == 0
///
/// Process sh = co_await kettle::create_subprocess_shell("sleep 1; echo done",
///                                                      {.stdout_ = PIPE});
/// std::string line = co_await sh.stdout_->readline();
/// int rc = co_await sh.wait();
/// @endcode
///
/// Children are started with posix_spawn (no fork of a threaded program); every descriptor
/// except 0-2 and pass_fds is closed in the child. A failed start raises the OSError Python
/// raises (FileNotFoundError, PermissionError) from create_subprocess_*. Each child is reaped
/// through a pidfd on the loop (never waitpid(-1), which would take other libraries'
/// children), also when its Process is dropped while it runs.
///
/// Beyond asyncio: wait() returns when the child exits even if a grandchild still holds its
/// pipes (gh-119710), and never deadlocks on a full pipe (the pipes are read while it waits);
/// communicate(input, timeout) raises TimeoutExpired carrying what was read so far, and a
/// later communicate() continues from there (gh-139373); kill_on_drop (as Tokio's), and
/// kill_group()/terminate_group() for start_new_session or process_group children.
///
/// Thread safety: loop-local, as streams.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <sys/types.h>

#include <csignal>
#include <cstddef>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/streams.hpp"

namespace kettle {

namespace detail {
struct ProcessState;
}

/// Child processes (asyncio.subprocess): Process, Options and the stdio constants.
namespace subprocess {

///@{
/// What a child's stdin/stdout/stderr is (asyncio's values; INHERIT is Python's None). Any
/// other value >= 0 is a descriptor of ours the child gets. PIPE: a pipe to a stream of the
/// Process; STDOUT (stderr only): into the same place as stdout; DEVNULL: /dev/null;
/// INHERIT: ours.
inline constexpr int PIPE = -1;
inline constexpr int STDOUT = -2;  // stderr only: into the same place as stdout
inline constexpr int DEVNULL = -3;
inline constexpr int INHERIT = -4;
///@}

/// create_subprocess_*'s keyword arguments. Views, copied when the call is made (see
/// ConnectOptions for why: g++ 12 and aggregate temporaries in a co_await).
struct Options {
  ///@{
  /// The child's stdin, stdout and stderr: PIPE, STDOUT (stderr only), DEVNULL, INHERIT or
  /// a descriptor.
  int stdin_ = INHERIT;
  int stdout_ = INHERIT;
  int stderr_ = INHERIT;
  ///@}
  std::string_view cwd = {};  ///< The child's working directory; empty: ours.
  /// The child's whole environment (empty map: none); null: ours. Also where PATH is
  /// looked up for a program name without a '/', as Python does.
  const std::map<std::string, std::string>* env = nullptr;
  std::span<const int> pass_fds = {};  ///< Kept open in the child, at the same numbers.
  bool start_new_session = false;      ///< setsid() in the child.
  /// setpgid() in the child: the group to join; 0: a new group of its own.
  std::optional<pid_t> process_group = std::nullopt;
  std::size_t limit = kStreamLimit;  ///< The stdout/stderr readers' limit.
  bool kill_on_drop = false;         ///< SIGKILL it when its Process is dropped.
};

/// subprocess.TimeoutExpired: communicate(input, timeout) ran out of time. What the child
/// wrote so far is kept in the exception and in the Process: a later communicate() returns
/// it with the rest.
class TimeoutExpired : public TimeoutError {
 public:
  /// The timeout, in seconds, and the output so far.
  TimeoutExpired(double timeout, std::string out, std::string err);
  const std::string& output() const noexcept { return out_; }  ///< Stdout so far.
  const std::string& errors() const noexcept { return err_; }  ///< Stderr so far.
  /// The timeout that passed, in seconds.
  double timeout() const noexcept { return timeout_; }

 private:
  double timeout_;
  std::string out_, err_;
};

/// asyncio.subprocess.Process: a child process started by create_subprocess_exec() or
/// create_subprocess_shell().
class Process {
 public:
  /// Takes o's child over.
  Process(Process&&) noexcept;
  /// Drops this Process's child (as the destructor does) and takes o's over.
  Process& operator=(Process&&) noexcept;
  /// A child still running is reaped in the background (killed first with kill_on_drop);
  /// its pipes close.
  ~Process();

  /// The child's process id.
  pid_t pid() const noexcept;
  /// None while it runs; its exit status, or -N when signal N killed it.
  std::optional<int> returncode() const noexcept;

  ///@{
  /// The parent's ends of the pipes asked for with PIPE (asyncio's proc.stdin etc.; the
  /// trailing _ because stdin/stdout/stderr are C macros).
  std::optional<StreamWriter> stdin_;
  std::optional<StreamReader> stdout_;
  std::optional<StreamReader> stderr_;
  ///@}

  /// Waits until it exits; its returncode. Reads its stdout/stderr pipes meanwhile without
  /// bound (into their readers), so that a child blocked on a full pipe cannot deadlock it.
  /// Cancellation: the child runs on.
  [[nodiscard]] Coro<int> wait();
  /// Sends input to stdin (then closes it), reads stdout and stderr to their end, waits for
  /// the exit: {stdout, stderr} ("" for a stream that is not a PIPE). BrokenPipeError and
  /// ConnectionResetError while sending the input are ignored, as in asyncio. After
  /// `timeout` seconds: TimeoutExpired with the output so far (the child runs on).
  /// Cancellation: what was read so far stays in the Process; the input is not sent twice:
  /// a later communicate() continues.
  [[nodiscard]] Coro<std::pair<std::string, std::string>> communicate(
      std::string input = {}, std::optional<double> timeout = std::nullopt);

  ///@{
  /// Sends sig (terminate: SIGTERM, kill: SIGKILL) through the pidfd, so never to a
  /// process that reused its pid. ProcessLookupError once it has exited and been reaped
  /// (asyncio's transport is closed by then).
  void send_signal(int sig);
  void terminate() { send_signal(SIGTERM); }
  void kill() { send_signal(SIGKILL); }
  ///@}
  ///@{
  /// The same to its whole process group (it must lead one: start_new_session or
  /// process_group = 0); ValueError otherwise.
  void send_signal_group(int sig);
  void terminate_group() { send_signal_group(SIGTERM); }
  void kill_group() { send_signal_group(SIGKILL); }
  ///@}

  /// Implementation: a Process on the child's state st.
  explicit Process(std::shared_ptr<detail::ProcessState> st) noexcept;

 private:
  std::shared_ptr<detail::ProcessState> st_;
};

}  // namespace subprocess

/// asyncio.create_subprocess_exec(program, *args, ...). A program name without '/' is
/// searched in PATH. FileNotFoundError / PermissionError / OSError if it cannot start;
/// ValueError for inconsistent options (STDOUT anywhere but stderr, both
/// start_new_session and process_group).
[[nodiscard]] Coro<subprocess::Process> create_subprocess_exec(std::string_view program,
                                                               const std::vector<std::string>& args,
                                                               subprocess::Options options = {});
/// The same with the arguments one by one, as Python's *args: strings, ranges of strings
/// (spliced in), and the Options last (ValueError for Options given twice or not last):
/// @code
/// create_subprocess_exec("sleep", "30"), create_subprocess_exec("ls", dirs, Options{...})
/// @endcode
/// (g++ 12 cannot compile a braced list of arguments inside a co_await, hence no {"-l"}.)
template <class... A>
[[nodiscard]] Coro<subprocess::Process> create_subprocess_exec(std::string_view program,
                                                               const A&... args);
/// asyncio.create_subprocess_shell(cmd, ...): /bin/sh -c cmd.
[[nodiscard]] Coro<subprocess::Process> create_subprocess_shell(std::string_view cmd,
                                                                subprocess::Options options = {});

// ---------------------------------------------------------------------------------------
// Implementation

namespace detail {
struct ExecArgs {
  std::vector<std::string> args;
  subprocess::Options options;
  bool has_options = false;
  void add(std::string_view a) {
    if (has_options) throw ValueError("create_subprocess_exec(): the Options come last");
    args.emplace_back(a);
  }
  void add(const subprocess::Options& o) {
    if (has_options) throw ValueError("create_subprocess_exec(): Options given twice");
    options = o;
    has_options = true;
  }
  template <class R>
  requires(!std::is_convertible_v<const R&, std::string_view> &&
           std::is_convertible_v<decltype(*std::begin(std::declval<const R&>())),
                                 std::string_view>) void add(const R& range) {
    for (const auto& a : range)
      add(std::string_view(a));
  }
};
}  // namespace detail

template <class... A>
Coro<subprocess::Process> create_subprocess_exec(std::string_view program, const A&... args) {
  detail::ExecArgs e;
  (e.add(args), ...);
  return create_subprocess_exec(program, e.args, e.options);
}

}  // namespace kettle
