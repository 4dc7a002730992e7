#include "kettle/executors/process_pool.hpp"

#include <signal.h>

#include "../interrupts.hpp"

namespace kettle {

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options) {
  init(options, {});
}

void ProcessPoolExecutor::init(ProcessPoolOptions options, std::string init_frame) {
  if (options.max_workers && *options.max_workers == 0)
    throw ValueError("kettle: ProcessPoolExecutor needs max_workers >= 1");
  if (options.max_tasks_per_child && *options.max_tasks_per_child == 0)
    throw ValueError("kettle: ProcessPoolExecutor needs max_tasks_per_child >= 1 (or none)");
  detail::proc::PoolConfig c;
  c.max_workers = options.max_workers.value_or(detail::proc::usable_cpus());
  c.method = options.start_method == StartMethod::fork    ? detail::proc::Method::fork
             : options.start_method == StartMethod::spawn ? detail::proc::Method::spawn
                                                          : detail::proc::Method::forkserver;
  c.policy = options.on_worker_crash == OnWorkerCrash::break_pool
                 ? detail::proc::CrashPolicy::break_pool
                 : detail::proc::CrashPolicy::replace_worker;
  c.max_tasks_per_child = options.max_tasks_per_child.value_or(0);
  c.init_frame = std::move(init_frame);
  core_ = std::make_shared<detail::proc::PoolCore>(std::move(c));
  core_->start();
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  if (detail::run_interrupted) terminate_workers();  // Ctrl-C: no waiting for their work
  core_->shutdown(true, false);
  core_->release();
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  core_->shutdown(wait, cancel_futures);
}

void ProcessPoolExecutor::terminate_workers() {
  core_->shutdown(false, true);
  core_->signal_workers(SIGTERM);
}

void ProcessPoolExecutor::kill_workers() {
  core_->shutdown(false, true);
  core_->signal_workers(SIGKILL);
}

}  // namespace kettle
