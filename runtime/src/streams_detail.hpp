// Internal: streams over a subprocess's pipes (subprocess.cpp makes them).
#pragma once

#include <memory>
#include <string>

#include "kettle/streams.hpp"

namespace kettle::detail {

class LoopCore;

// The reading end `fd` (non-blocking; owned from now on, closed on error) as a reader,
// with the handle that closes it when the Process goes.
struct PipeReader {
  StreamReader reader;
  std::shared_ptr<WriterHandle> closer;
  std::shared_ptr<ReaderCore> core;
};
PipeReader make_pipe_reader(LoopCore& loop, int fd, std::size_t limit, std::string desc);
// The writing end `fd` (non-blocking; owned from now on) as a writer; write_eof() closes it.
StreamWriter make_pipe_writer(LoopCore& loop, int fd, std::string desc);
// While on, the reader never pauses reading (wait() must not leave the child blocked on a
// full pipe).
void set_unbounded(ReaderCore& reader, bool on);

}  // namespace kettle::detail
