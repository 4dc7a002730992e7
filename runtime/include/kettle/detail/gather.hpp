// Internal: gather's state, a FutureCore that completes from its children
// (asyncio.tasks.gather and _GatheringFuture).
//
// Each child's outcome is taken into its slot the moment the child finishes, and the
// gather lets go of the child then, so that a gather of many short tasks frees their
// frames as it goes instead of holding every one of them until the end.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kettle/detail/future_core.hpp"

namespace kettle::detail {

class GatherBase : public FutureCore {
 public:
  bool cancel(std::string_view msg) override;

  // Set-up, in order: attach(i, future) for every child, then start().
  void attach(std::size_t i, CoreRef<FutureCore> f) noexcept;
  void start() noexcept;
  // Set-up failed half-way (a child could not be made): let go of the children so far.
  void abort_setup() noexcept;

 protected:
  GatherBase(LoopCore& loop, std::size_t n, bool return_exceptions);
  ~GatherBase() override;
  std::exception_ptr& exception_slot() noexcept override { return exception_; }

  // Takes finished child i's outcome into its slot (a value, or with return_exceptions
  // the exception). May throw if copying the value does.
  virtual void take(std::size_t i, FutureCore& f) = 0;
  // Builds the result from the slots, every one taken.
  virtual void collect() = 0;

 private:
  struct Child : Waiter {
    Child() noexcept : Waiter(&GatherBase::on_child) {}
    GatherBase* gather = nullptr;
    FutureCore* future = nullptr;  // a counted reference until the child is done
  };

  static void on_child(Waiter* w, bool abandoned) noexcept;
  void child_done(std::size_t i) noexcept;
  void let_go(std::size_t i) noexcept;
  void waited_one() noexcept;
  void settle_all() noexcept;

  std::unique_ptr<Child[]> children_;
  std::size_t n_;
  std::size_t nfinished_ = 0;
  // Children still waited for. While nonzero the gather holds a reference to itself, so
  // that, as with asyncio's done callbacks, it sees every child finish (and marks late
  // exceptions as retrieved) even if nobody awaits the gather any more.
  std::size_t nwaiting_ = 0;
  std::exception_ptr exception_;
  std::string cancel_message_;
  bool return_exceptions_;
  bool cancel_requested_ = false;
  bool cancelled_child_last_ = false;
};

template <class T>
using gather_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <bool ReturnExceptions, class T>
using gather_slot_t = std::conditional_t<ReturnExceptions, Result<T>, gather_value_t<T>>;

// Child f's outcome as gather reports it. Steal: move the value (the gather made the child).
template <bool ReturnExceptions, class T>
gather_slot_t<ReturnExceptions, T> gather_slot(FutureCore& f, bool steal) {
  if constexpr (ReturnExceptions) {
    if (f.cancelled()) return Result<T>(f.cancelled_error());
    if (std::exception_ptr e = f.raw_exception()) {
      f.mark_retrieved();
      return Result<T>(std::move(e));
    }
  }
  if constexpr (std::is_void_v<T>) {
    f.check_result();
    return std::monostate{};
  } else {
    return future_take<T>(&f, steal);
  }
}

template <bool ReturnExceptions, class T, bool Owned>
class GatherRange final : public GatherBase {
 public:
  using slot_type = gather_slot_t<ReturnExceptions, T>;
  using value_type = std::vector<slot_type>;
  GatherRange(LoopCore& loop, std::size_t n) : GatherBase(loop, n, ReturnExceptions), slots_(n) {}
  void* value_address() noexcept override { return &*value_; }

 private:
  void take(std::size_t i, FutureCore& f) override {
    slots_[i].emplace(gather_slot<ReturnExceptions, T>(f, Owned));
  }
  void collect() override {
    value_type v;
    v.reserve(slots_.size());
    for (auto& s : slots_)
      v.push_back(std::move(*s));
    slots_ = {};
    value_.emplace(std::move(v));
  }
  std::vector<std::optional<slot_type>> slots_;
  std::optional<value_type> value_;
};

template <bool ReturnExceptions, class Owned, class... Ts>
class GatherTuple;

template <bool ReturnExceptions, bool... Owned, class... Ts>
class GatherTuple<ReturnExceptions, std::integer_sequence<bool, Owned...>, Ts...> final
    : public GatherBase {
 public:
  using value_type = std::tuple<gather_slot_t<ReturnExceptions, Ts>...>;
  explicit GatherTuple(LoopCore& loop) : GatherBase(loop, sizeof...(Ts), ReturnExceptions) {}
  void* value_address() noexcept override { return &*value_; }

 private:
  void take(std::size_t i, FutureCore& f) override {
    take_(i, f, std::index_sequence_for<Ts...>{});
  }
  template <std::size_t... I>
  void take_(std::size_t i, FutureCore& f, std::index_sequence<I...>) {
    ((i == I ? (void)std::get<I>(slots_).emplace(gather_slot<ReturnExceptions, Ts>(f, Owned))
             : void()),
     ...);
  }
  void collect() override { collect_(std::index_sequence_for<Ts...>{}); }
  template <std::size_t... I>
  void collect_(std::index_sequence<I...>) {
    value_.emplace(std::move(*std::get<I>(slots_))...);
    slots_ = {};
  }
  std::tuple<std::optional<gather_slot_t<ReturnExceptions, Ts>>...> slots_;
  std::optional<value_type> value_;
};

template <class Aw>
concept gather_range = std::ranges::input_range<Aw> && !requires(Aw && a) {
  std::forward<Aw>(a).operator co_await();
};

// Whether gather makes the child itself (from a Coro or another awaitable), rather than
// sharing a Task or future that the caller holds.
template <class Aw>
inline constexpr bool gather_makes_child =
    !std::is_base_of_v<TaskRef, std::remove_cvref_t<Aw>> && !requires(Aw && a) {
  a.state();
};

template <class State, class F>
void set_up_gather(State* s, F&& attach_all) {
  try {
    attach_all();
  } catch (...) {
    s->abort_setup();
    throw;
  }
  s->start();
}

template <bool ReturnExceptions, class... Aws>
auto gather_tuple(Aws&&... aws) {
  LoopCore& loop = running_loop_core();
  using State =
      GatherTuple<ReturnExceptions, std::integer_sequence<bool, gather_makes_child<Aws>...>,
                  await_value_t<Aws>...>;
  using R = typename State::value_type;
  LoopFuture<R> g(new State(loop));
  auto* s = static_cast<State*>(g.state());
  set_up_gather(s, [&] {
    std::size_t i = 0;
    (s->attach(i++, ensure_future(loop, std::forward<Aws>(aws))), ...);
  });
  return g;
}

template <bool ReturnExceptions, class Range>
auto gather_over(Range&& range) {
  LoopCore& loop = running_loop_core();
  using Elem = std::ranges::range_reference_t<Range>;
  using T = await_value_t<Elem>;
  // Coros (and other move-only awaitables) are consumed; tasks and futures are shared.
  constexpr bool consume = !std::is_copy_constructible_v<std::remove_cvref_t<Elem>>;
  using State = GatherRange<ReturnExceptions, T, consume && gather_makes_child<Elem>>;
  using R = typename State::value_type;
  auto make = [&](auto&& elem) {
    if constexpr (consume)
      return ensure_future(loop, std::move(elem));
    else
      return ensure_future(loop, elem);
  };
  if constexpr (std::ranges::sized_range<Range>) {
    LoopFuture<R> g(new State(loop, std::ranges::size(range)));
    auto* s = static_cast<State*>(g.state());
    set_up_gather(s, [&] {
      std::size_t i = 0;
      for (auto&& elem : range)
        s->attach(i++, make(elem));
    });
    return g;
  } else {
    std::vector<CoreRef<FutureCore>> futures;
    for (auto&& elem : range)
      futures.push_back(make(elem));
    LoopFuture<R> g(new State(loop, futures.size()));
    auto* s = static_cast<State*>(g.state());
    set_up_gather(s, [&] {
      for (std::size_t i = 0; i < futures.size(); ++i)
        s->attach(i, std::move(futures[i]));
    });
    return g;
  }
}

template <bool ReturnExceptions, class... Aws>
auto gather_any(Aws&&... aws) {
  if constexpr (sizeof...(Aws) == 1 && (gather_range<Aws> && ...))
    return gather_over<ReturnExceptions>(std::forward<Aws>(aws)...);
  else
    return gather_tuple<ReturnExceptions>(std::forward<Aws>(aws)...);
}

}  // namespace kettle::detail

namespace kettle {

template <class... Aws>
auto gather(Aws&&... aws) {
  return detail::gather_any<false>(std::forward<Aws>(aws)...);
}

template <class... Aws>
auto gather(return_exceptions_t, Aws&&... aws) {
  return detail::gather_any<true>(std::forward<Aws>(aws)...);
}

}  // namespace kettle
