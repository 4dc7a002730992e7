// The awaitable MPI operations' engine: a poller per loop that tests the requests and
// probes the loop's tasks wait on, on a loop timer whose interval backs off from 0 to 1 ms
// while nothing completes (MPI_Wait would spin a core).
#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "kettle/detail/loop_core.hpp"
#include "kettle/detail/task_state.hpp"
#include "kettle/mpi.hpp"

namespace kettle::mpi::detail {

namespace kd = kettle::detail;

namespace {

class Poller;

// A task waiting for one request.
class RequestWaiter : private kd::CancelHook {
 public:
  static constexpr const char* kettle_name = "kettle::mpi request";
  RequestWaiter(MPI_Request* req, OnCancel on_cancel) noexcept
      : CancelHook{&hook}, req_(req), on_cancel_(on_cancel) {}
  RequestWaiter(const RequestWaiter&) = delete;
  RequestWaiter& operator=(const RequestWaiter&) = delete;
  ~RequestWaiter();

  bool await_ready() {
    int done = 0;
    int rc = MPI_Test(req_, &done, &status_);
    if (rc != MPI_SUCCESS) {  // completed with an error: await_resume raises it
      error_ = rc;
      return true;
    }
    return done != 0;
  }
  void await_suspend(std::coroutine_handle<> h);
  MPI_Status await_resume() {
    bool taken = task_ && task_->take_cancel();
    if (error_ != MPI_SUCCESS) {
      int cls = error_;
      MPI_Error_class(error_, &cls);
      if (cls == MPI_ERR_TRUNCATE)
        throw ValueError("kettle::mpi: the message is longer than the receive's type (" +
                         std::string(MPIError("a receive", error_).what()) +
                         "): the sender sent another type");
      throw MPIError("a nonblocking operation", error_);
    }
    switch (on_cancel_) {
      case OnCancel::finish:
        if (taken || cancelled_) task_->throw_cancelled();
        break;
      case OnCancel::mpi_cancel:
        if (cancelled_) {
          int flag = 0;
          MPI_Test_cancelled(&status_, &flag);
          if (flag) task_->throw_cancelled();
          task_->defer_cancel();  // it completed all the same: its value stands
        } else if (taken) {
          task_->defer_cancel();  // cancelled once it had completed: its value stands
        }
        break;
      case OnCancel::deliver:
        if (taken) task_->defer_cancel();
        break;
    }
    return status_;
  }

  // From the poller: the request completed (with `error`, or MPI_SUCCESS).
  void complete(const MPI_Status& st, int error) noexcept {
    status_ = st;
    error_ = error;
    *req_ = MPI_REQUEST_NULL;
    poller_ = nullptr;
    task_->wake();
  }
  // The poller goes (its loop closes) with this still waiting.
  void orphan() noexcept { poller_ = nullptr; }

 private:
  static bool hook(kd::CancelHook* h) {
    auto* w = static_cast<RequestWaiter*>(h);
    if (!w->poller_) return false;  // completed: the task runs next
    switch (w->on_cancel_) {
      case OnCancel::deliver:
        return false;  // the task is cancelled at its next await
      case OnCancel::mpi_cancel:
        if (!w->cancelled_) MPI_Cancel(w->req_);
        w->cancelled_ = true;
        return true;
      case OnCancel::finish:
        w->cancelled_ = true;
        return true;
    }
    return false;
  }

  MPI_Request* req_;
  OnCancel on_cancel_;
  bool cancelled_ = false;
  int error_ = MPI_SUCCESS;
  MPI_Status status_{};
  kd::TaskBase* task_ = nullptr;
  Poller* poller_ = nullptr;  // while registered
};

// A task waiting for a message to match.
class ProbeWaiter : private kd::CancelHook {
 public:
  static constexpr const char* kettle_name = "kettle::mpi::recv()";
  ProbeWaiter(int source, int tag, MPI_Comm comm) noexcept
      : CancelHook{&hook}, source_(source), tag_(tag), comm_(comm) {}
  ProbeWaiter(const ProbeWaiter&) = delete;
  ProbeWaiter& operator=(const ProbeWaiter&) = delete;
  ~ProbeWaiter();

  bool await_ready() { return poll_once(); }
  void await_suspend(std::coroutine_handle<> h);
  Probed await_resume() {
    bool taken = task_ && task_->take_cancel();
    if (error_ != MPI_SUCCESS) throw MPIError("MPI_Improbe", error_);
    if (cancelled_) task_->throw_cancelled();
    if (taken) task_->defer_cancel();  // matched: the message is received, then cancelled
    matched_ = false;                  // the caller receives it
    return got_;
  }
  // From the poller: true once matched (or failed).
  bool poll() noexcept {
    if (!poll_once()) return false;
    poller_ = nullptr;
    task_->wake();
    return true;
  }
  void orphan() noexcept { poller_ = nullptr; }

 private:
  bool poll_once() noexcept {
    int flag = 0;
    int rc = MPI_Improbe(source_, tag_, comm_, &flag, &got_.message, &got_.status);
    if (rc != MPI_SUCCESS) {
      error_ = rc;
      return true;
    }
    matched_ = flag != 0;
    return matched_;
  }
  static bool hook(kd::CancelHook* h);

  int source_;
  int tag_;
  MPI_Comm comm_;
  Probed got_{};
  int error_ = MPI_SUCCESS;
  bool cancelled_ = false;
  bool matched_ = false;  // a message is ours and not yet handed to the caller
  kd::TaskBase* task_ = nullptr;
  Poller* poller_ = nullptr;
};

class Poller final : public kd::LoopResource, private kd::Runnable {
 public:
  static Poller& of(kd::LoopCore& loop) {
    std::lock_guard lock(registry_mutex());
    auto& p = registry()[&loop];
    if (!p) p = new Poller(loop);
    return *p;
  }

  void add(RequestWaiter* w, MPI_Request req) {
    reqs_.push_back(req);
    owners_.push_back(w);
    arm_now();
  }
  // Takes w's request back (it is still active).
  void remove(RequestWaiter* w) noexcept {
    for (std::size_t i = 0; i < owners_.size(); ++i)
      if (owners_[i] == w) {
        reqs_.erase(reqs_.begin() + static_cast<std::ptrdiff_t>(i));
        owners_.erase(owners_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
  }
  void add(ProbeWaiter* w) {
    probes_.push_back(w);
    arm_now();
  }
  void remove(ProbeWaiter* w) noexcept { std::erase(probes_, w); }

 private:
  explicit Poller(kd::LoopCore& loop) : loop_(loop) {
    timer_.set_inline_target(this);
    loop.attach(this);
  }
  // Process-wide: a loop may be closed on another thread than the one it ran on.
  static std::unordered_map<kd::LoopCore*, Poller*>& registry() {
    static auto* map = new std::unordered_map<kd::LoopCore*, Poller*>;
    return *map;
  }
  static std::mutex& registry_mutex() {
    static auto* m = new std::mutex;
    return *m;
  }

  void arm_now() {
    idle_ = 0;
    if (timer_.armed()) {
      if (timer_.when <= kd::now_ns()) return;
      loop_.timers.remove(&timer_);
    }
    timer_.when = kd::now_ns();
    loop_.timers.push(&timer_);
  }

  void run() noexcept override {
    bool any = false;
    if (!reqs_.empty()) {
      int n = 0;
      std::size_t size = reqs_.size();
      indices_.resize(size);
      statuses_.resize(size);
      int rc =
          MPI_Testsome(static_cast<int>(size), reqs_.data(), &n, indices_.data(), statuses_.data());
      if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
        // Nothing says which request failed: each is asked on its own. One that is still
        // active stays (its buffers are in use until it completes).
        for (std::size_t i = 0; i < size; ++i) {
          int done = 0;
          MPI_Status st{};
          int e = MPI_Test(&reqs_[i], &done, &st);
          if (done || e != MPI_SUCCESS) {
            RequestWaiter* w = owners_[i];
            owners_[i] = nullptr;
            w->complete(st, e);
            any = true;
          }
        }
        compact(size);
      } else if (n != MPI_UNDEFINED && n > 0) {
        any = true;
        for (int k = 0; k < n; ++k) {
          auto i = static_cast<std::size_t>(indices_[static_cast<std::size_t>(k)]);
          const MPI_Status& st = statuses_[static_cast<std::size_t>(k)];
          RequestWaiter* w = owners_[i];
          owners_[i] = nullptr;
          w->complete(st, rc == MPI_ERR_IN_STATUS ? st.MPI_ERROR : MPI_SUCCESS);
        }
        compact(size);
      }
    }
    for (std::size_t i = 0; i < probes_.size();) {
      if (probes_[i]->poll()) {
        probes_.erase(probes_.begin() + static_cast<std::ptrdiff_t>(i));
        any = true;
      } else {
        ++i;
      }
    }
    if (reqs_.empty() && probes_.empty()) return;
    // Back off while nothing completes: 0 for a few rounds (other work on the loop runs in
    // between), then 1 µs doubling to 1 ms.
    idle_ = any ? 0 : idle_ + 1;
    std::int64_t delay = idle_ < 16 ? 0 : std::int64_t(1000) << std::min(idle_ - 16, 10u);
    timer_.when = kd::now_ns() + std::min<std::int64_t>(delay, 1000000);
    loop_.timers.push(&timer_);
  }

  void compact(std::size_t size) noexcept {
    std::size_t j = 0;
    for (std::size_t i = 0; i < size; ++i)
      if (owners_[i]) {
        owners_[j] = owners_[i];
        reqs_[j] = reqs_[i];
        ++j;
      }
    owners_.resize(j);
    reqs_.resize(j);
  }

  void on_loop_close() noexcept override {
    for (RequestWaiter* w : owners_)
      w->orphan();
    for (ProbeWaiter* w : probes_)
      w->orphan();
    if (timer_.armed()) loop_.timers.remove(&timer_);
    {
      std::lock_guard lock(registry_mutex());
      registry().erase(&loop_);
    }
    delete this;
  }

  kd::LoopCore& loop_;
  kd::TimerNode timer_;
  std::vector<MPI_Request> reqs_;
  std::vector<RequestWaiter*> owners_;
  std::vector<ProbeWaiter*> probes_;
  std::vector<int> indices_;
  std::vector<MPI_Status> statuses_;
  unsigned idle_ = 0;
};

void RequestWaiter::await_suspend(std::coroutine_handle<> h) {
  task_ = &kd::current_task_for_await();
  poller_ = &Poller::of(*task_->loop());
  poller_->add(this, *req_);
  task_->suspend(h, this);
}

RequestWaiter::~RequestWaiter() {
  if (*req_ == MPI_REQUEST_NULL) return;
  // The task's frame goes with the operation still active (its loop closed under it): the
  // buffers must outlive the request, so a receive is withdrawn, and any request waited
  // for here, polled with backoff (MPI_Wait would spin). A send or a collective that the
  // other ranks never match blocks here: MPI gives no way to abandon one.
  if (poller_) poller_->remove(this);
  if (on_cancel_ == OnCancel::mpi_cancel) MPI_Cancel(req_);
  for (unsigned idle = 0;; ++idle) {
    int done = 0;
    if (MPI_Test(req_, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) return;
    std::this_thread::sleep_for(std::chrono::microseconds(idle < 10 ? 1 << idle : 1000));
  }
}

void ProbeWaiter::await_suspend(std::coroutine_handle<> h) {
  task_ = &kd::current_task_for_await();
  poller_ = &Poller::of(*task_->loop());
  poller_->add(this);
  task_->suspend(h, this);
}

ProbeWaiter::~ProbeWaiter() {
  if (poller_) poller_->remove(this);
  if (matched_) {  // matched, never handed over (the frame goes): receive it, to nothing
    int n = 0;
    MPI_Get_count(&got_.status, MPI_BYTE, &n);
    std::string sink(static_cast<std::size_t>(std::max(n, 0)), '\0');
    MPI_Mrecv(sink.data(), n, MPI_BYTE, &got_.message, MPI_STATUS_IGNORE);
  }
}

bool ProbeWaiter::hook(kd::CancelHook* h) {
  auto* w = static_cast<ProbeWaiter*>(h);
  if (!w->poller_) return false;  // matched: the message is received first
  w->poller_->remove(w);
  w->poller_ = nullptr;
  w->cancelled_ = true;
  w->task_->wake();
  return true;
}

}  // namespace

Coro<MPI_Status> wait_request(MPI_Request* req, OnCancel on_cancel) {
  RequestWaiter w(req, on_cancel);
  co_return co_await w;
}

Coro<Probed> probe(int source, int tag, MPI_Comm comm) {
  ProbeWaiter w(source, tag, comm);
  co_return co_await w;
}

Coro<void> receive_probed(Probed& m, void* p, int bytes) {
  MPI_Request req;
  check("MPI_Imrecv", MPI_Imrecv(p, bytes, MPI_BYTE, &m.message, &req));
  co_await wait_request(&req, OnCancel::deliver);
}

}  // namespace kettle::mpi::detail

namespace kettle::mpi {

Coro<void> barrier(MPI_Comm comm) {
  MPI_Request req;
  detail::check("MPI_Ibarrier", MPI_Ibarrier(comm, &req));
  co_await detail::wait_request(&req, detail::OnCancel::finish);
}

}  // namespace kettle::mpi
