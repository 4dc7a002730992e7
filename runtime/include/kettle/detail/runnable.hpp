// Internal: what the ready queue holds.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

namespace kettle::detail {

// Something the loop can run: a task step or a callback. Tasks share this vtable pointer
// with their future part, so being runnable costs them no extra word.
class Runnable {
 public:
  virtual void run() noexcept = 0;
  // The loop closed with this still queued or armed: release what the queue held.
  virtual void drop() noexcept {}

 protected:
  ~Runnable() = default;
};

}  // namespace kettle::detail
