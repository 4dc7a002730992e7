/// @file
/// kettle/kettle.hpp — everything: asyncio for C++20.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include "kettle/coro.hpp"
#include "kettle/event_loop.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/executors/process_pool.hpp"
#include "kettle/executors/thread_pool.hpp"
#include "kettle/futures.hpp"
#include "kettle/graph.hpp"
#include "kettle/locks.hpp"
#include "kettle/multiprocessing.hpp"
#include "kettle/queues.hpp"
#include "kettle/runners.hpp"
#include "kettle/socket.hpp"
#include "kettle/streams.hpp"
#include "kettle/subprocess.hpp"
#include "kettle/taskgroups.hpp"
#include "kettle/tasks.hpp"
#include "kettle/threads.hpp"
#include "kettle/timeouts.hpp"
#include "kettle/use_coro.hpp"
#include "kettle/version.hpp"

/// @namespace kettle
/// asyncio for C++20: coroutines (Coro), tasks, the event loop, synchronization
/// primitives, queues, streams, subprocesses, thread and process pools, with asyncio's
/// names and meaning. The README's "Python → kettle" table maps each Python name to its
/// kettle one.
