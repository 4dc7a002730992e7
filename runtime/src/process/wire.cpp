#include "kettle/detail/process/wire.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <typeinfo>
#include <unordered_map>

#include "kettle/exceptions.hpp"

namespace kettle::detail::proc {

void throw_truncated() {
  throw RuntimeError("kettle: a truncated message from a worker process");
}

void throw_frame_too_large(std::size_t n) {
  throw ValueError("kettle: " + std::to_string(n) +
                   " bytes of arguments or results do not fit a process pool message (at most " +
                   std::to_string(kMaxFrame) + "); pass a smaller piece, or a path to the data");
}

void throw_bad_size(std::uint64_t n, std::size_t left) {
  throw RuntimeError("kettle: a message from a worker process claims " + std::to_string(n) +
                     " elements with " + std::to_string(left) + " bytes left");
}

void throw_bad_bool() {
  throw RuntimeError("kettle: a message from a worker process holds a bool that is not 0 or 1");
}

// Functions -------------------------------------------------------------------------------

namespace {
struct ModuleHit {
  const void* address;
  std::uintptr_t base = 0;
  std::string name;
  bool found = false;
};

int find_module(dl_phdr_info* info, std::size_t, void* data) {
  auto* hit = static_cast<ModuleHit*>(data);
  auto a = reinterpret_cast<std::uintptr_t>(hit->address);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (a >= start && a < start + ph.p_memsz) {
      hit->base = info->dlpi_addr;
      hit->name = info->dlpi_name ? info->dlpi_name : "";
      hit->found = true;
      return 1;
    }
  }
  return 0;
}

struct BaseHit {
  const std::string* name;
  std::uintptr_t base = 0;
  bool found = false;
  bool first = true;
};

int find_base(dl_phdr_info* info, std::size_t, void* data) {
  auto* hit = static_cast<BaseHit*>(data);
  // The program itself comes first, with an empty name.
  const char* n = info->dlpi_name ? info->dlpi_name : "";
  bool match = hit->name->empty() ? hit->first : *hit->name == n;
  hit->first = false;
  if (!match) return 0;
  hit->base = info->dlpi_addr;
  hit->found = true;
  return 1;
}

std::mutex refs_mutex;
std::unordered_map<const void*, FnRef>& ref_cache() {
  static auto* m = new std::unordered_map<const void*, FnRef>();
  return *m;
}
}  // namespace

FnRef fn_ref(const void* address) {
  {
    std::lock_guard lock(refs_mutex);
    auto it = ref_cache().find(address);
    if (it != ref_cache().end()) return it->second;
  }
  ModuleHit hit{address, 0, {}, false};
  dl_iterate_phdr(&find_module, &hit);
  if (!hit.found) throw RuntimeError("kettle: cannot locate this function in any loaded module");
  // The first module dl_iterate_phdr reports is the program: name it "" (its path may
  // differ between processes); shared libraries by their path.
  BaseHit program{nullptr};
  std::string empty;
  program.name = &empty;
  dl_iterate_phdr(&find_base, &program);
  FnRef r;
  if (!(program.found && program.base == hit.base)) r.module = hit.name;
  r.offset = reinterpret_cast<std::uintptr_t>(address) - hit.base;
  std::lock_guard lock(refs_mutex);
  ref_cache().emplace(address, r);
  return r;
}

const void* resolve(const FnRef& ref) {
  static std::unordered_map<std::string, std::uintptr_t>* bases =
      new std::unordered_map<std::string, std::uintptr_t>();
  auto it = bases->find(ref.module);
  if (it == bases->end()) {
    BaseHit hit{&ref.module};
    dl_iterate_phdr(&find_base, &hit);
    if (!hit.found)
      throw RuntimeError("kettle: the worker has not loaded " + ref.module +
                         ", which holds the function to run");
    it = bases->emplace(ref.module, hit.base).first;
  }
  return reinterpret_cast<const void*>(it->second + ref.offset);
}

void write_ref(Writer& w, const FnRef& r) {
  w.str(r.module);
  w.u64(r.offset);
}

FnRef read_ref(Reader& r) {
  FnRef f;
  f.module = r.str();
  f.offset = r.u64();
  return f;
}

// Errors ----------------------------------------------------------------------------------

namespace {
enum class ErrorCode : std::uint8_t {
  remote = 0,
  runtime_error,
  logic_error,
  invalid_argument,
  domain_error,
  length_error,
  out_of_range,
  range_error,
  overflow_error,
  underflow_error,
  bad_alloc,
  exception,
  kettle_value_error,
  kettle_runtime_error,
  kettle_timeout_error,
  kettle_remote_error,
};

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                           std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

template <class T>
bool is(const std::type_info& t) {
  return t == typeid(T);
}
}  // namespace

void write_error(Writer& w, std::exception_ptr e, int pid) {
  ErrorCode code = ErrorCode::remote;
  std::string type = "unknown exception";
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const RemoteError& x) {  // from a nested pool: keep the original
    code = ErrorCode::kettle_remote_error;
    type = x.type_name();
    what = x.message();
    pid = x.pid();
  } catch (const std::exception& x) {
    const std::type_info& t = typeid(x);
    type = demangle(t.name());
    what = x.what();
    if (is<std::runtime_error>(t))
      code = ErrorCode::runtime_error;
    else if (is<std::logic_error>(t))
      code = ErrorCode::logic_error;
    else if (is<std::invalid_argument>(t))
      code = ErrorCode::invalid_argument;
    else if (is<std::domain_error>(t))
      code = ErrorCode::domain_error;
    else if (is<std::length_error>(t))
      code = ErrorCode::length_error;
    else if (is<std::out_of_range>(t))
      code = ErrorCode::out_of_range;
    else if (is<std::range_error>(t))
      code = ErrorCode::range_error;
    else if (is<std::overflow_error>(t))
      code = ErrorCode::overflow_error;
    else if (is<std::underflow_error>(t))
      code = ErrorCode::underflow_error;
    else if (is<std::bad_alloc>(t))
      code = ErrorCode::bad_alloc;
    else if (is<std::exception>(t))
      code = ErrorCode::exception;
    else if (is<ValueError>(t))
      code = ErrorCode::kettle_value_error;
    else if (is<RuntimeError>(t))
      code = ErrorCode::kettle_runtime_error;
    else if (is<TimeoutError>(t))
      code = ErrorCode::kettle_timeout_error;
  } catch (const CancelledError& x) {
    type = "kettle::CancelledError";
    what = x.message();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    if (t) type = demangle(t->name());
  }
  w.u8(static_cast<std::uint8_t>(code));
  w.i32(pid);
  w.str(type);
  w.str(what);
}

void run_call(Reader& r, MessageKind kind, std::string& out, std::uint64_t* running) {
  std::uint64_t id = r.u64();
  if (running) *running = id;
  std::size_t at = out.size();
  try {
    std::uint32_t count = r.u32();
    auto tramp = reinterpret_cast<Trampoline>(const_cast<void*>(resolve(read_ref(r))));
    const void* fn = resolve(read_ref(r));
    std::size_t f = begin_frame(out, MessageKind::result);
    Writer(out).u64(id);
    tramp(fn, r, count, out);
    end_frame(out, f);
  } catch (...) {
    out.resize(at);
    std::size_t f =
        begin_frame(out, kind == MessageKind::init ? MessageKind::init_failed : MessageKind::error);
    Writer w(out);
    w.u64(id);
    write_error(w, std::current_exception(), static_cast<int>(::getpid()));
    end_frame(out, f);
  }
}

std::exception_ptr read_error(Reader& r) {
  auto code = static_cast<ErrorCode>(r.u8());
  int pid = r.i32();
  std::string type = r.str();
  std::string what = r.str();
  switch (code) {
    case ErrorCode::runtime_error:
      return std::make_exception_ptr(std::runtime_error(what));
    case ErrorCode::logic_error:
      return std::make_exception_ptr(std::logic_error(what));
    case ErrorCode::invalid_argument:
      return std::make_exception_ptr(std::invalid_argument(what));
    case ErrorCode::domain_error:
      return std::make_exception_ptr(std::domain_error(what));
    case ErrorCode::length_error:
      return std::make_exception_ptr(std::length_error(what));
    case ErrorCode::out_of_range:
      return std::make_exception_ptr(std::out_of_range(what));
    case ErrorCode::range_error:
      return std::make_exception_ptr(std::range_error(what));
    case ErrorCode::overflow_error:
      return std::make_exception_ptr(std::overflow_error(what));
    case ErrorCode::underflow_error:
      return std::make_exception_ptr(std::underflow_error(what));
    case ErrorCode::bad_alloc:
      return std::make_exception_ptr(std::bad_alloc());
    case ErrorCode::kettle_value_error:
      return std::make_exception_ptr(ValueError(what));
    case ErrorCode::kettle_runtime_error:
      return std::make_exception_ptr(RuntimeError(what));
    case ErrorCode::kettle_timeout_error:
      return std::make_exception_ptr(TimeoutError(what));
    default:
      return std::make_exception_ptr(RemoteError(type, what, pid));
  }
}

}  // namespace kettle::detail::proc
