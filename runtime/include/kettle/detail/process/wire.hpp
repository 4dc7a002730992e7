// Internal: what travels between a process pool and its workers.
//
// A frame is a u32 length and a body; the body starts with a MessageKind. Functions travel
// as FnRefs: the module (the program itself or a named shared library) and the offset in
// it, so that a worker whose modules are loaded at other addresses (spawn, or any exec)
// finds the same code. A task names two functions: the user's, and a typed trampoline
// instantiated where the task was submitted, which reads the arguments, calls the user's
// function and writes the result, all through cereal.
#pragma once

#include <cstdint>
#include <cstring>
#include <exception>
#include <istream>
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

[[noreturn]] void throw_truncated();

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

// cereal writes through std::ostream; these stream buffers put it straight into our bytes.
class AppendBuf final : public std::streambuf {
 public:
  explicit AppendBuf(std::string& out) noexcept : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof()))
      out_.push_back(traits_type::to_char_type(c));
    return c;
  }

 private:
  std::string& out_;
};

class SpanBuf final : public std::streambuf {
 public:
  SpanBuf(const char* p, std::size_t n) noexcept {
    char* b = const_cast<char*>(p);
    setg(b, b, b + n);
  }
  std::size_t consumed() const noexcept { return static_cast<std::size_t>(gptr() - eback()); }
};

// cereal output and input archives over our bytes.
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

class InArchive {
 public:
  explicit InArchive(Reader& r) : r_(r), buf_(r.data(), r.left()), is_(&buf_), ar_(is_) {}
  ~InArchive() { r_.skip(buf_.consumed()); }
  template <class... T>
  void operator()(T&... v) {
    if constexpr (sizeof...(T) > 0) ar_(v...);
  }

 private:
  Reader& r_;
  SpanBuf buf_;
  std::istream is_;
  cereal::BinaryInputArchive ar_;
};

template <class T>
inline constexpr bool serializable =
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value&&
        cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value&&
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

// Starts a frame (its length is filled in by end_frame).
inline std::size_t begin_frame(std::string& out, MessageKind kind) {
  std::size_t at = out.size();
  out.append(4, '\0');
  out.push_back(static_cast<char>(kind));
  return at;
}
inline void end_frame(std::string& out, std::size_t at) {
  auto n = static_cast<std::uint32_t>(out.size() - at - 4);
  std::memcpy(out.data() + at, &n, 4);
}

}  // namespace kettle::detail::proc
