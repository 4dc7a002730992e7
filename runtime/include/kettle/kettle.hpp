// kettle/kettle.hpp — everything: asyncio for C++20.
#pragma once

#include "kettle/coro.hpp"
#include "kettle/event_loop.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/executors/process_pool.hpp"
#include "kettle/executors/thread_pool.hpp"
#include "kettle/futures.hpp"
#include "kettle/locks.hpp"
#include "kettle/multiprocessing.hpp"
#include "kettle/queues.hpp"
#include "kettle/runners.hpp"
#include "kettle/taskgroups.hpp"
#include "kettle/tasks.hpp"
#include "kettle/threads.hpp"
#include "kettle/timeouts.hpp"
#include "kettle/use_coro.hpp"
