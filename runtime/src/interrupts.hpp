// Internal: whether kettle::run is unwinding after Ctrl-C (or SIGTERM with handle_sigterm).
#pragma once

#include <atomic>

namespace kettle::detail {

// Set by the first interrupting signal, cleared when that run() returns. A process pool
// destroyed meanwhile terminates its workers instead of waiting for their work: the user
// asked the program to stop.
inline std::atomic<bool> run_interrupted{false};

// Interrupting signals delivered that no loop has dispatched yet (kettle::run's escalation:
// at the second one, a loop that does not run is not waited for).
inline std::atomic<int> unseen_interrupts{0};

}  // namespace kettle::detail
