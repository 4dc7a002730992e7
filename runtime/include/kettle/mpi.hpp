/// @file
/// kettle/mpi.hpp — mpi4py.futures for C++, and awaitable MPI operations on the loop.
/// Built when CMake finds MPI; link `kettle::kettle_mpi`.
///
/// @code
/// double crunch(int n);                                // plain function: every rank has it
///
/// kettle::mpi::MPIPoolExecutor pool;                   // the other ranks of mpiexec
/// kettle::Future<double> f = pool.submit(crunch, 7);   // fn, args...
/// double v = co_await f;                               // or f.result() from a thread
/// std::vector<double> all = co_await pool.map(crunch, inputs, 256);  // chunksize 256
/// @endcode
///
/// **Launch.** `mpiexec -n 4 ./program` runs `main` on rank 0 only; ranks 1..3 become the
/// workers of the program's MPIPoolExecutors (as `mpiexec -n 4 python -m mpi4py.futures`):
/// kettle initializes MPI (MPI_THREAD_MULTIPLE) before main on every rank, and finalizes it
/// when rank 0's main returns, telling the workers to exit. Started without mpiexec (or with
/// one rank), an MPIPoolExecutor has no worker and its constructor raises RuntimeError
/// (MPI_Comm_spawn is not used). One MPIPoolExecutor at a time uses the workers: a second
/// one, while the first is not shut down, raises RuntimeError; after shutdown(wait=false)
/// the second waits until the first's work is done.
///
/// SPMD programs, where every rank runs main, say so with `KETTLE_MPI_SPMD;` at namespace
/// scope in one source file; then `MPICommExecutor(comm, root)` makes rank `root` the
/// master and the others its workers (mpi4py.futures.MPICommExecutor), and every rank can use
/// the awaitable operations below. MPI is then the program's to initialize (kettle::mpi::init
/// does it, with MPI_THREAD_MULTIPLE, and finalizes at exit).
///
/// **Work** has the process pools' rules: fn is a plain function or a captureless lambda,
/// found in the worker at the same place in the same executable; arguments and results
/// travel through cereal. An exception thrown by fn comes back as itself (the standard
/// types, kettle's ValueError, RuntimeError, TimeoutError) or as a RemoteError whose what()
/// names the worker: "Worker 3 of 4 on node7". A worker's reply that breaks the protocol
/// breaks the executor (BrokenExecutor) rather than be believed.
///
/// **Failures.** MPI errors on kettle's communicators are returned, not fatal
/// (MPI_ERRORS_RETURN), and raised as MPIError. A rank that dies, though, takes the whole
/// job down under standard MPI: mpiexec kills every rank, the root included, and reports the
/// dead one (MPICH: "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES"). A future whose
/// worker died therefore never completes in a rank that survives: wait with a timeout
/// (`f.result(30s)`, `kettle::wait_for`) where a worker may crash.
///
/// **Progress** costs no core: requests are tested (MPI_Testsome, MPI_Improbe) on a timer
/// whose interval backs off from 0 to 1 ms while nothing completes — on the loop for the
/// awaitable operations, on a thread of the executor for its work, and in the workers'
/// receive loop — never in MPI_Wait, which spins in both MPICH and Open MPI.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <mpi.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kettle/coro.hpp"
#include "kettle/detail/task_state.hpp"
#include "kettle/exceptions.hpp"
#include "kettle/executors/process_pool.hpp"
#include "kettle/futures.hpp"
#include "kettle/tasks.hpp"

/// Put `KETTLE_MPI_SPMD;` at namespace scope in one source file of a program where every
/// rank runs main (for MPICommExecutor and the awaitable operations). Without it, a program
/// linked with kettle::kettle_mpi and started by mpiexec runs main on rank 0 only.
#define KETTLE_MPI_SPMD extern "C" const int kettle_mpi_spmd_main = 1

namespace kettle::mpi {

/// An MPI call that failed: what() names the call and MPI's error string.
class MPIError : public Error {
 public:
  /// `call` failed with MPI error code `code`.
  MPIError(const char* call, int code);
  /// MPI's error code.
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// Initializes MPI with MPI_THREAD_MULTIPLE if it is not yet (and finalizes it at exit);
/// RuntimeError if MPI was initialized with less, which kettle's threads cannot work with.
void init();
/// This process's rank in comm.
int rank(MPI_Comm comm = MPI_COMM_WORLD);
/// The number of processes in comm.
int size(MPI_Comm comm = MPI_COMM_WORLD);

/// MPIPoolExecutor's keyword arguments.
struct MPIPoolOptions {
  /// At most this many workers (default and upper bound: the worker ranks there are).
  std::optional<std::size_t> max_workers = std::nullopt;
};

template <class V>
class UnorderedMapResult;

namespace detail {
class ExecCore;
}

/// mpi4py.futures.MPIPoolExecutor: runs calls on other MPI ranks, each giving a Future.
/// Thread safety: submit, map and shutdown from any thread. See kettle/mpi.hpp.
class MPIPoolExecutor {
 public:
  /// Uses the worker ranks of mpiexec (see kettle/mpi.hpp). ValueError for max_workers 0;
  /// RuntimeError when there is no worker rank or another MPIPoolExecutor holds them.
  explicit MPIPoolExecutor(MPIPoolOptions options = {});
  /// initializer(initargs...) runs first on every worker; if it throws, the executor breaks:
  /// pending and later tasks fail with BrokenExecutor naming the error.
  template <class F, class... Args>
  MPIPoolExecutor(MPIPoolOptions options, F initializer, Args&&... initargs);
  MPIPoolExecutor(MPIPoolExecutor&&) noexcept = default;  ///< Moves the executor.
  MPIPoolExecutor& operator=(MPIPoolExecutor&&) = delete;
  ~MPIPoolExecutor();  ///< shutdown(wait = true).

  /// Schedules fn(args...) on a worker and returns its Future. RuntimeError after shutdown,
  /// BrokenExecutor once broken. An argument that fails to serialize fails the future.
  template <class F, class... Args>
  auto submit(F fn, Args&&... args);
  /// fn over the range, results in input order; chunksize items travel per message.
  template <class F, class Range>
  auto map(F fn, Range&& range, std::size_t chunksize = 1) {
    return ChunkedMapResult(chunks<false>(fn, std::forward<Range>(range), chunksize));
  }
  /// map(..., unordered=True): the same results in the order they complete.
  template <class F, class Range>
  auto map_unordered(F fn, Range&& range, std::size_t chunksize = 1) {
    return UnorderedMapResult(chunks<false>(fn, std::forward<Range>(range), chunksize));
  }
  /// fn(std::get<0>(t), std::get<1>(t), ...) over a range of argument tuples, in order.
  template <class F, class Range>
  auto starmap(F fn, Range&& range, std::size_t chunksize = 1) {
    return ChunkedMapResult(chunks<true>(fn, std::forward<Range>(range), chunksize));
  }

  /// No new work. cancel_futures: tasks not yet sent to a worker are cancelled. wait:
  /// returns once every task sent has its result.
  void shutdown(bool wait = true, bool cancel_futures = false);
  /// The workers start (and run the initializer) when the executor is made; wait: returns
  /// once every one is ready (BrokenExecutor if an initializer failed). Returns *this.
  MPIPoolExecutor& bootup(bool wait = true);
  /// The number of worker ranks this executor uses (0 once moved from).
  std::size_t num_workers() const noexcept;

 private:
  friend class MPICommExecutor;
  explicit MPIPoolExecutor(std::shared_ptr<detail::ExecCore> core) noexcept
      : core_(std::move(core)) {}
  void start(MPIPoolOptions options, std::string init_frame);
  detail::ExecCore& core() const;  // RuntimeError once moved from
  void submit_task(kettle::detail::proc::Task task);
  void submit_tasks(std::vector<kettle::detail::proc::Task> tasks);
  // map's chunks sent, their futures returned.
  template <bool Star, class F, class Range>
  auto chunks(F fn, Range&& range, std::size_t chunksize) {
    auto [futures, tasks] =
        kettle::detail::proc::map_tasks<Star>(fn, std::forward<Range>(range), chunksize);
    submit_tasks(std::move(tasks));
    return std::move(futures);
  }

  std::shared_ptr<detail::ExecCore> core_;
};

/// mpi4py.futures.MPICommExecutor: in an SPMD program (KETTLE_MPI_SPMD), every rank of comm
/// constructs it (it is collective). On rank `root` it holds an MPIPoolExecutor whose
/// workers are the other ranks; on those, the constructor serves the root's work and returns
/// when the root's executor shuts down (at its destruction), holding nothing.
///
/// @code
/// kettle::mpi::MPICommExecutor ex(MPI_COMM_WORLD, 0);
/// if (ex) std::cout << ex->submit(crunch, 7).result();   // the root; workers skip
/// @endcode
class MPICommExecutor {
 public:
  /// Collective over comm. ValueError for a root outside comm or a comm of one process;
  /// RuntimeError in a program that is not SPMD (KETTLE_MPI_SPMD). With max_workers, that
  /// many of the other ranks get work (the rest wait for the stop all the same).
  explicit MPICommExecutor(MPI_Comm comm = MPI_COMM_WORLD, int root = 0,
                           MPIPoolOptions options = {});
  MPICommExecutor(const MPICommExecutor&) = delete;
  MPICommExecutor& operator=(const MPICommExecutor&) = delete;
  ~MPICommExecutor() = default;  ///< The root's executor shuts down, releasing the workers.

  /// True on the root: there is an executor.
  explicit operator bool() const noexcept { return pool_.has_value(); }
  ///@{
  /// The root's executor (RuntimeError on a worker).
  MPIPoolExecutor& operator*();
  MPIPoolExecutor* operator->() { return &**this; }
  ///@}

 private:
  std::optional<MPIPoolExecutor> pool_;
};

/// The results of map_unordered(): in the order their chunks complete (mpi4py's
/// map(unordered=True)). Iterate (blocking, each result as its chunk completes), get()
/// (blocking) or co_await (every result) from a task. The first error is raised where its
/// chunk comes, and the chunks not yet done are cancelled. Iterate it in place: once begun,
/// it must not move.
template <class V>
class UnorderedMapResult {
 public:
  /// The results of these chunks.
  explicit UnorderedMapResult(std::vector<Future<std::vector<V>>> chunks)
      : chunks_(std::move(chunks)) {}
  /// Every chunk's future, in input order.
  const std::vector<Future<std::vector<V>>>& futures() const noexcept { return chunks_; }
  /// Every result, in completion order (blocking).
  std::vector<V> get() {
    std::vector<V> out;
    for (V& v : *this)
      out.push_back(std::move(v));
    return out;
  }
  /// From a task: every result, in completion order.
  auto operator co_await() && { return kettle::detail::OwningAwaiter<std::vector<V>>(collect()); }

  /// An input iterator over the results, in completion order; it waits for the next chunk
  /// as it reaches it (rethrowing the chunk's error).
  class iterator {
   public:
    using value_type = V;                    ///< A result.
    using difference_type = std::ptrdiff_t;  ///< For std::input_iterator.
    iterator() = default;                    ///< Past the last result.
    /// The first result of m (blocking).
    explicit iterator(UnorderedMapResult* m) : m_(m) { advance(); }
    /// The current result.
    V& operator*() { return cur_[i_]; }
    ///@{
    /// The next result (blocking when it is in the next chunk).
    iterator& operator++() {
      if (++i_ >= cur_.size()) advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    ///@}
    /// Whether both are past the last result (the only comparison an input iterator needs).
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.m_ == b.m_; }

   private:
    void advance() {  // to the next completed chunk that has results, or past the end
      i_ = 0;
      cur_.clear();
      while (m_->taken_ < m_->chunks_.size()) {
        Future<std::vector<V>> f = m_->next_done();
        try {
          cur_ = f.result();
        } catch (...) {
          m_->cancel_rest();
          throw;
        }
        if (!cur_.empty()) return;
      }
      m_ = nullptr;
    }
    UnorderedMapResult* m_ = nullptr;
    std::vector<V> cur_;
    std::size_t i_ = 0;
  };
  /// The first result (blocking until a chunk with one completes).
  iterator begin() { return iterator(this); }
  /// Past the last result.
  iterator end() { return iterator(); }

 private:
  using Completion =
      decltype(concurrent::as_completed(std::declval<std::vector<Future<std::vector<V>>>&>()));
  Future<std::vector<V>> next_done() {
    if (!completion_) {
      completion_.emplace(concurrent::as_completed(chunks_));
      at_ = completion_->begin();
    }
    Future<std::vector<V>> f = *at_;
    ++at_;
    ++taken_;
    return f;
  }
  void cancel_rest() noexcept {
    for (auto& c : chunks_)
      c.cancel();
  }
  Coro<std::vector<V>> collect() {
    std::vector<V> out;
    try {
      for (auto next : kettle::as_completed(chunks_))
        for (V& v : co_await next)
          out.push_back(std::move(v));
    } catch (...) {
      cancel_rest();
      throw;
    }
    co_return out;
  }
  std::vector<Future<std::vector<V>>> chunks_;
  std::optional<Completion> completion_;
  decltype(std::declval<Completion&>().begin()) at_{};
  std::size_t taken_ = 0;
};

// ---------------------------------------------------------------------------------------
// Awaitable operations. Each returns a Coro (so wait_for, gather, create_task ... take it)
// and must run in a task on a loop. Values travel as their bytes when T is trivially
// copyable, or a std::vector / std::basic_string of such (zero-copy: sent from and received
// into the container itself); any other T through cereal. Both sides use the same T. A
// message is at most INT_MAX bytes (ValueError beyond). comm is any communicator of the
// program: errors on it raise MPIError only if its error handler returns them
// (MPI_ERRORS_RETURN; kettle::mpi::init sets it on MPI_COMM_WORLD when it initializes MPI).

namespace detail {

template <class T>
inline constexpr bool trivial_value =
    std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T>;
template <class T>
struct contiguous_of : std::false_type {};
template <class U, class A>
struct contiguous_of<std::vector<U, A>>
    : std::bool_constant<trivial_value<U> && !std::is_same_v<U, bool>> {
  using element = U;
};
template <class C, class Tr, class A>
struct contiguous_of<std::basic_string<C, Tr, A>> : std::true_type {
  using element = C;
};
// How T travels: raw (its object bytes), contiguous (a container's element bytes), cereal.
enum class Wire { raw, contiguous, cereal };
template <class T>
inline constexpr Wire wire_of = contiguous_of<T>::value ? Wire::contiguous
                                : trivial_value<T>      ? Wire::raw
                                                        : Wire::cereal;

int checked_count(std::size_t bytes);  // ValueError above INT_MAX
template <class T>
std::string encode_cereal(const T& value) {
  static_assert(kettle::detail::proc::serializable<T>,
                "kettle::mpi: T is neither trivially copyable nor serializable with cereal");
  std::string out;
  {
    kettle::detail::proc::OutArchive oa(out);
    oa(value);
  }
  return out;
}
void decode_failed(const char* what);
template <class T>
T decode_cereal(const std::string& bytes) {
  kettle::detail::proc::Reader r(bytes.data(), bytes.size());
  T value{};
  try {
    kettle::detail::proc::InArchive ia(r);
    ia(value);
  } catch (const std::exception& e) {
    decode_failed(e.what());
  }
  if (r.left() != 0) decode_failed("bytes left over after the value");
  return value;
}

// What a cancelled wait_request does.
enum class OnCancel : std::uint8_t {
  mpi_cancel,  // MPI_Cancel, wait for it; if the operation completed all the same, its
               // result stands and the task is cancelled at its next await
  finish,      // wait for the operation to complete, then raise CancelledError
  deliver      // wait for the operation, deliver its result; cancelled at the next await
};
// Awaits *req (which becomes MPI_REQUEST_NULL); the status of the completed request.
Coro<MPI_Status> wait_request(MPI_Request* req, OnCancel on_cancel);
// Awaits a message matching (source, tag) on comm: MPI_Improbe's message and status.
struct Probed {
  MPI_Message message;
  MPI_Status status;
};
Coro<Probed> probe(int source, int tag, MPI_Comm comm);
// Receives a probed message of `bytes` bytes into p (deliver semantics).
Coro<void> receive_probed(Probed& m, void* p, int bytes);
int count_bytes(const MPI_Status& s);
void check(const char* call, int rc);
[[noreturn]] void wrong_size(int got, std::size_t element, const char* what);

template <class T>
const void* bytes_of(const T& v) {
  if constexpr (wire_of<T> == Wire::contiguous)
    return v.data();
  else
    return &v;
}
template <class T>
std::size_t size_of(const T& v) {
  if constexpr (wire_of<T> == Wire::contiguous)
    return v.size() * sizeof(typename contiguous_of<T>::element);
  else
    return sizeof(T);
}

template <class T>
Coro<void> send_owned(T value, int dest, int tag, MPI_Comm comm) {
  std::string bytes;  // the value, serialized, when it travels through cereal
  const void* p = nullptr;
  std::size_t n = 0;
  if constexpr (wire_of<T> == Wire::cereal) {
    bytes = encode_cereal(value);
    p = bytes.data();
    n = bytes.size();
  } else {
    p = bytes_of(value);
    n = size_of(value);
  }
  MPI_Request req;
  check("MPI_Isend", MPI_Isend(p, checked_count(n), MPI_BYTE, dest, tag, comm, &req));
  co_await wait_request(&req, OnCancel::finish);
}

template <class T>
Coro<T> recv_impl(int source, int tag, MPI_Comm comm, MPI_Status* status) {
  if constexpr (wire_of<T> == Wire::raw) {
    T value;
    MPI_Request req;
    check("MPI_Irecv", MPI_Irecv(&value, sizeof(T), MPI_BYTE, source, tag, comm, &req));
    MPI_Status st = co_await wait_request(&req, OnCancel::mpi_cancel);
    if (count_bytes(st) != static_cast<int>(sizeof(T)))
      wrong_size(count_bytes(st), sizeof(T), "a value of this type");
    if (status) *status = st;
    co_return value;
  } else {
    Probed m = co_await probe(source, tag, comm);
    int n = count_bytes(m.status);
    if (status) *status = m.status;
    if constexpr (wire_of<T> == Wire::contiguous) {
      using E = typename contiguous_of<T>::element;
      if (n % sizeof(E) != 0) {
        std::string sink(static_cast<std::size_t>(n), '\0');
        co_await receive_probed(m, sink.data(), n);
        wrong_size(n, sizeof(E), "whole elements of this container");
      }
      T value(static_cast<std::size_t>(n) / sizeof(E), E{});
      co_await receive_probed(m, value.data(), n);
      co_return value;
    } else {
      std::string bytes(static_cast<std::size_t>(n), '\0');
      co_await receive_probed(m, bytes.data(), n);
      co_return decode_cereal<T>(bytes);
    }
  }
}

template <class T>
Coro<T> bcast_impl(T value, int root, MPI_Comm comm) {
  MPI_Request req;
  if constexpr (wire_of<T> == Wire::raw) {
    check("MPI_Ibcast", MPI_Ibcast(&value, sizeof(T), MPI_BYTE, root, comm, &req));
    co_await wait_request(&req, OnCancel::finish);
    co_return value;
  } else {
    const bool is_root = rank(comm) == root;
    std::string bytes;
    if constexpr (wire_of<T> == Wire::cereal) {
      if (is_root) bytes = encode_cereal(value);
    }
    std::uint64_t n = 0;
    if (is_root) n = wire_of<T> == Wire::cereal ? bytes.size() : size_of(value);
    // Two collectives that every rank must take part in: a cancellation during the first
    // waits for the second (which then raises it), so that no rank is left in it alone.
    check("MPI_Ibcast", MPI_Ibcast(&n, 1, MPI_UINT64_T, root, comm, &req));
    co_await wait_request(&req, OnCancel::deliver);
    int count = checked_count(n);  // the root's claim: at most INT_MAX bytes
    void* at;
    if constexpr (wire_of<T> == Wire::contiguous) {
      using E = typename contiguous_of<T>::element;
      if (n % sizeof(E) != 0) wrong_size(count, sizeof(E), "whole elements of this container");
      if (!is_root) value = T(n / sizeof(E), E{});
      at = value.data();
    } else {
      if (!is_root) bytes.assign(n, '\0');
      at = bytes.data();
    }
    check("MPI_Ibcast", MPI_Ibcast(at, count, MPI_BYTE, root, comm, &req));
    co_await wait_request(&req, OnCancel::finish);
    if constexpr (wire_of<T> == Wire::cereal) {
      if (!is_root) value = decode_cereal<T>(bytes);
    }
    co_return value;
  }
}

template <class T>
MPI_Datatype datatype() {
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, long double>)
    return MPI_LONG_DOUBLE;
  else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if constexpr (sizeof(T) == 1)
      return std::is_signed_v<T> ? MPI_INT8_T : MPI_UINT8_T;
    else if constexpr (sizeof(T) == 2)
      return std::is_signed_v<T> ? MPI_INT16_T : MPI_UINT16_T;
    else if constexpr (sizeof(T) == 4)
      return std::is_signed_v<T> ? MPI_INT32_T : MPI_UINT32_T;
    else
      return std::is_signed_v<T> ? MPI_INT64_T : MPI_UINT64_T;
  } else {
    static_assert(sizeof(T) == 0, "kettle::mpi::allreduce: T must be an arithmetic type");
  }
}

template <class T>
Coro<T> allreduce_impl(T value, MPI_Op op, MPI_Comm comm) {
  T out = value;
  MPI_Request req;
  if constexpr (std::is_arithmetic_v<T>) {
    check("MPI_Iallreduce", MPI_Iallreduce(&value, &out, 1, datatype<T>(), op, comm, &req));
  } else {
    using E = typename T::value_type;
    check("MPI_Iallreduce", MPI_Iallreduce(value.data(), out.data(), checked_count(value.size()),
                                           datatype<E>(), op, comm, &req));
  }
  co_await wait_request(&req, OnCancel::finish);
  co_return out;
}

}  // namespace detail

/// Sends value to rank dest (MPI_Isend). The value is moved (or copied) into the operation,
/// which sends from it. Cancellation: a send is not withdrawn; the task waits until it
/// completes (the receiver took it, or MPI buffered it), then raises CancelledError.
template <class T>
Coro<void> send(T value, int dest, int tag = 0, MPI_Comm comm = MPI_COMM_WORLD) {
  return detail::send_owned<T>(std::move(value), dest, tag, comm);
}
/// Receives a T from source (MPI_ANY_SOURCE) with tag (MPI_ANY_TAG); status, if given, is
/// filled in. A message of another size than T's raises ValueError. Cancellation: no message is
/// lost: a receive not yet matched is withdrawn (MPI_Cancel, or a probe that stops); one
/// matched already completes and returns its value, and the task is cancelled at its next
/// await.
template <class T>
Coro<T> recv(int source = MPI_ANY_SOURCE, int tag = MPI_ANY_TAG, MPI_Comm comm = MPI_COMM_WORLD,
             MPI_Status* status = nullptr) {
  return detail::recv_impl<T>(source, tag, comm, status);
}
/// send() started now in a task of its own (mpi4py's isend): await it when it matters.
/// Cancellation: cancelling the task is cancelling the send (see send).
template <class T>
Task<void> isend(T value, int dest, int tag = 0, MPI_Comm comm = MPI_COMM_WORLD) {
  return create_task(send<T>(std::move(value), dest, tag, comm));
}
/// recv() started now in a task of its own (mpi4py's irecv). Cancellation: the task ends
/// cancelled; a message it had received already is dropped with it (as asyncio's Task).
template <class T>
Task<T> irecv(int source = MPI_ANY_SOURCE, int tag = MPI_ANY_TAG, MPI_Comm comm = MPI_COMM_WORLD) {
  return create_task(recv<T>(source, tag, comm));
}
/// MPI_Ibarrier. Cancellation: a collective cannot be abandoned (the other ranks take part
/// in it): the task waits for it to complete, then raises CancelledError.
Coro<void> barrier(MPI_Comm comm = MPI_COMM_WORLD);
/// The root's value on every rank (MPI_Ibcast; non-root ranks pass any value, e.g. T{}).
/// Cancellation: as barrier.
template <class T>
Coro<T> bcast(T value, int root = 0, MPI_Comm comm = MPI_COMM_WORLD) {
  return detail::bcast_impl<T>(std::move(value), root, comm);
}
/// op (MPI_SUM, MPI_MAX, ...) over every rank's value (MPI_Iallreduce): T is arithmetic,
/// or a std::vector of arithmetic of the same size on every rank (element-wise).
/// Cancellation: as barrier.
template <class T>
Coro<T> allreduce(T value, MPI_Op op, MPI_Comm comm = MPI_COMM_WORLD) {
  return detail::allreduce_impl<T>(std::move(value), op, comm);
}

// ---------------------------------------------------------------------------------------
// Implementation

template <class F, class... Args>
MPIPoolExecutor::MPIPoolExecutor(MPIPoolOptions options, F initializer, Args&&... initargs) {
  start(options, kettle::detail::proc::init_frame(initializer, std::forward<Args>(initargs)...));
}

template <class F, class... Args>
auto MPIPoolExecutor::submit(F fn, Args&&... args) {
  auto [f, task] = kettle::detail::proc::call_task(fn, std::forward<Args>(args)...);
  if (task) submit_task(std::move(*task));
  return f;
}

}  // namespace kettle::mpi
