// Internal: what travels between a process pool and its workers.
//
// A frame is a u32 length and a body; the body starts with a MessageKind. A body is at most
// kMaxFrame bytes: a longer one (an argument or a result of 4 GiB) is refused with
// ValueError where it is built, never wrapped.
//
// Bytes from a worker are not trusted: the parent reads them with a Reader, which checks
// every length against what the frame holds, and cereal values with InputArchive, which
// also refuses a size prefix larger than what is left of the frame (so a 30-byte reply that
// claims a 3e9-element vector allocates nothing). Functions travel
// as FnRefs: the module (the program itself or a named shared library) and the offset in
// it, so that a worker whose modules are loaded at other addresses (spawn, or any exec)
// finds the same code. A task names two functions: the user's, and a typed trampoline
// instantiated where the task was submitted, which reads the arguments, calls the user's
// function and writes the result, all through cereal.
#pragma once

#include "kettle/detail/requires_cxx20.hpp"

#include <cstdint>
#include <cstring>
#include <exception>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

namespace kettle::detail::proc {

enum class MessageKind : std::uint8_t {
  // parent -> worker
  init = 1,  // the initializer: FnRef trampoline, FnRef fn, arguments
  task = 2,  // u64 id, u32 count, FnRef trampoline, FnRef fn, count x arguments
  exit = 3,  // finish and exit(0)
  // worker -> parent
  ready = 10,        // started (and initialized)
  init_failed = 11,  // error
  result = 12,       // u64 id, results
  error = 13,        // u64 id, error
  // forkserver <-> parent
  fork = 20,    // u64 request (and the worker's socket, as SCM_RIGHTS)
  forked = 21,  // u64 request, i32 pid
  exited = 22,  // i32 pid, i32 wait status
};

// Appends to a byte string.
class Writer {
 public:
  explicit Writer(std::string& out) noexcept : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { raw(&v, sizeof v); }
  void i32(std::int32_t v) { raw(&v, sizeof v); }
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  void raw(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }

 private:
  std::string& out_;
};

inline constexpr std::size_t kMaxFrame = 0xFFFFFFFFu;

[[noreturn]] void throw_truncated();
[[noreturn]] void throw_frame_too_large(std::size_t n);
[[noreturn]] void throw_bad_size(std::uint64_t n, std::size_t left);
[[noreturn]] void throw_bad_bool();

// Reads a byte span; throws on reading past its end.
class Reader {
 public:
  Reader(const char* p, std::size_t n) noexcept : p_(p), end_(p + n) {}
  std::uint8_t u8() {
    need(1);
    return static_cast<std::uint8_t>(*p_++);
  }
  std::uint32_t u32() { return get<std::uint32_t>(); }
  std::int32_t i32() { return get<std::int32_t>(); }
  std::uint64_t u64() { return get<std::uint64_t>(); }
  std::string str() {
    std::uint32_t n = u32();
    need(n);
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  const char* data() const noexcept { return p_; }
  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  void skip(std::size_t n) {
    need(n);
    p_ += n;
  }
  // The next n bytes (checked), consumed.
  const char* take(std::size_t n) {
    need(n);
    const char* at = p_;
    p_ += n;
    return at;
  }

 private:
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  void need(std::size_t n) const {
    if (static_cast<std::size_t>(end_ - p_) < n) throw_truncated();
  }
  const char* p_;
  const char* end_;
};

// cereal writes through std::ostream; this stream buffer puts it straight into our bytes,
// and gives up (ValueError) as soon as they could no longer fit one frame, rather than
// after copying gigabytes that end_frame would refuse.
class AppendBuf final : public std::streambuf {
 public:
  explicit AppendBuf(std::string& out) noexcept : out_(out), limit_(out.size() + kMaxFrame) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (out_.size() + static_cast<std::size_t>(n) > limit_)
      throw_frame_too_large(out_.size() + static_cast<std::size_t>(n));
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return c;
    char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }

 private:
  std::string& out_;
  std::size_t limit_;
};

// cereal output over our bytes (cereal's binary format).
class OutArchive {
 public:
  explicit OutArchive(std::string& out) : buf_(out), os_(&buf_), ar_(os_) {}
  template <class... T>
  void operator()(T&&... v) {
    if constexpr (sizeof...(T) > 0) ar_(std::forward<T>(v)...);
  }

 private:
  AppendBuf buf_;
  std::ostream os_;
  cereal::BinaryOutputArchive ar_;
};

// cereal input over a Reader, reading cereal's binary format, that trusts nothing: every
// read is bounds-checked, a container's size prefix may not exceed the bytes left (each
// element takes at least one byte on the wire, so nothing is allocated for a lie), and a
// bool must be 0 or 1.
class InputArchive final
    : public cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit InputArchive(Reader& r)
      : cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision>(this), r_(r) {}
  void loadBinary(void* data, std::size_t n) { std::memcpy(data, r_.take(n), n); }
  void check_size(std::uint64_t n) const {
    if (n > r_.left()) throw_bad_size(n, r_.left());
  }

 private:
  Reader& r_;
};

// Reads values with an InputArchive.
class InArchive {
 public:
  explicit InArchive(Reader& r) : ar_(r) {}
  template <class... T>
  void operator()(T&... v) {
    if constexpr (sizeof...(T) > 0) ar_(v...);
  }

 private:
  InputArchive ar_;
};

template <class T>
inline constexpr bool serializable =
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value&&
        cereal::traits::is_input_serializable<T, InputArchive>::value&&
            std::is_default_constructible_v<T>;

// A function's place: in the program (module empty) or in a named shared library.
struct FnRef {
  std::string module;
  std::uint64_t offset = 0;
};
FnRef fn_ref(const void* address);      // in the parent
const void* resolve(const FnRef& ref);  // in a worker; throws if the module is not loaded
void write_ref(Writer& w, const FnRef& r);
FnRef read_ref(Reader& r);

// Reads `count` sets of arguments, calls fn on each, writes each result.
using Trampoline = void (*)(const void* fn, Reader& in, std::uint32_t count, std::string& out);

template <class R, class... Params>
void trampoline(const void* fnp, Reader& in, std::uint32_t count, std::string& out) {
  auto fn = reinterpret_cast<R (*)(Params...)>(const_cast<void*>(fnp));
  InArchive ia(in);
  OutArchive oa(out);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::tuple<std::decay_t<Params>...> args;
    std::apply([&](auto&... a) { ia(a...); }, args);
    auto call = [&]<std::size_t... I>(std::index_sequence<I...>)->decltype(auto) {
      return fn(static_cast<Params&&>(std::get<I>(args))...);
    };
    if constexpr (std::is_void_v<R>) {
      call(std::index_sequence_for<Params...>{});
    } else {
      R r = call(std::index_sequence_for<Params...>{});
      oa(r);
    }
  }
}

// An exception from a worker, as it travels: which standard type (if any), its type name,
// what(), the pid.
void write_error(Writer& w, std::exception_ptr e, int pid);
std::exception_ptr read_error(Reader& r);

// In a worker: runs one task or initializer frame's body (after its kind) and appends the
// reply frame — result, or error (init_failed for an initializer) with this process's pid.
// *running, if given, is set to the task's id before the call.
void run_call(Reader& r, MessageKind kind, std::string& out, std::uint64_t* running = nullptr);

// Starts a frame (its length is filled in by end_frame).
inline std::size_t begin_frame(std::string& out, MessageKind kind) {
  std::size_t at = out.size();
  out.append(4, '\0');
  out.push_back(static_cast<char>(kind));
  return at;
}
// Fills in the frame's length; ValueError if the body is longer than kMaxFrame.
inline void end_frame(std::string& out, std::size_t at) {
  std::size_t body = out.size() - at - 4;
  if (body > kMaxFrame) throw_frame_too_large(body);
  auto n = static_cast<std::uint32_t>(body);
  std::memcpy(out.data() + at, &n, 4);
}

}  // namespace kettle::detail::proc

// How cereal reads each primitive through kettle's InputArchive (as cereal's binary.hpp
// does for its own archive).
namespace cereal {
template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(
    kettle::detail::proc::InputArchive& ar, T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    unsigned char b;
    ar.loadBinary(&b, 1);
    if (b > 1) kettle::detail::proc::throw_bad_bool();
    t = b != 0;
  } else {
    ar.loadBinary(std::addressof(t), sizeof t);
  }
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(kettle::detail::proc::InputArchive& ar, NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(kettle::detail::proc::InputArchive& ar, SizeTag<T>& t) {
  ar(t.size);
  ar.check_size(static_cast<std::uint64_t>(t.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(kettle::detail::proc::InputArchive& ar, BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}
// Sequences grow as their elements are read, rather than being resized to the size their
// prefix claims first (cereal's way): a claim of n elements of a large type would allocate
// n x sizeof(T) before a single element is checked. (Arithmetic elements, read in one block
// that must be there, still are resized: at most sizeof(T) bytes per byte received.)
namespace kettle_detail {
template <class Seq>
void load_grown(kettle::detail::proc::InputArchive& ar, Seq& seq) {
  size_type n;
  ar(make_size_tag(n));
  seq.clear();
  for (size_type i = 0; i < n; ++i)
    ar(seq.emplace_back());
}
}  // namespace kettle_detail
template <class T, class A>
requires(!std::is_same_v<T, bool>) void CEREAL_LOAD_FUNCTION_NAME(
    kettle::detail::proc::InputArchive& ar, std::vector<T, A>& v) {
  if constexpr (std::is_arithmetic_v<T>) {
    size_type n;
    ar(make_size_tag(n));
    v.resize(static_cast<std::size_t>(n));
    ar(binary_data(v.data(), static_cast<std::size_t>(n) * sizeof(T)));
  } else {
    kettle_detail::load_grown(ar, v);
  }
}
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(kettle::detail::proc::InputArchive& ar, std::deque<T, A>& d) {
  kettle_detail::load_grown(ar, d);
}
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(kettle::detail::proc::InputArchive& ar, std::list<T, A>& l) {
  kettle_detail::load_grown(ar, l);
}
namespace traits::detail {
template <>
struct get_output_from_input<kettle::detail::proc::InputArchive> {
  using type = BinaryOutputArchive;
};
}  // namespace traits::detail
}  // namespace cereal

CEREAL_REGISTER_ARCHIVE(kettle::detail::proc::InputArchive)
