#include "symbols.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#if KETTLE_HAS_BACKTRACE
#include "backtrace.h"  // libgcc's libbacktrace, copied into the build tree by CMake
#endif

namespace kettle::detail {

std::string demangle(const char* name) {
  if (!name) return {};
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                           std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size()))
    s.replace(i, from.size(), to);
}

// "fetch(int) [clone .actor]" (g++) or "fetch(int) (.resume)" (clang): "fetch(int)".
std::string clean(std::string f) {
  replace_all(f, "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >",
              "std::string");
  // In this order: a demangled name ends in " [clone .actor]", an undemangled one in ".actor".
  for (const char* suffix :
       {" [clone .actor]", " [clone .resume]", " [clone .destroy]", " (.resume)", " (.destroy)",
        " (.cleanup)", " [clone .cold]", ".actor", ".resume", ".destroy"}) {
    std::size_t n = std::strlen(suffix);
    if (f.size() > n && f.compare(f.size() - n, n, suffix) == 0) f.resize(f.size() - n);
  }
  // g++ names a coroutine's body after the coroutine, taking a pointer to its frame type:
  // "play(play(std::string)::_Z4playNSt…E.Frame*)" is play(std::string)'s.
  if (f.size() > 8 && f.compare(f.size() - 8, 8, ".Frame*)") == 0) {
    std::size_t end = f.rfind("::_Z");
    for (std::size_t i = f.find('('); end != std::string::npos && i != std::string::npos && i < end;
         i = f.find('(', i + 1))
      if (i > 0 && f.compare(i + 1, i, f, 0, i) == 0) {
        f = f.substr(i + 1, end - i - 1);
        break;
      }
  }
  return f;
}

#if KETTLE_HAS_BACKTRACE
void ignore_error(void*, const char*, int) {}

backtrace_state* state() {
  static backtrace_state* s = backtrace_create_state(nullptr, 1, &ignore_error, nullptr);
  return s;
}

std::string symbol_name(std::uintptr_t pc) {
  std::string out;
  if (!state()) return out;
  backtrace_syminfo(
      state(), pc,
      [](void* data, std::uintptr_t, const char* symname, std::uintptr_t, std::uintptr_t) {
        if (symname) *static_cast<std::string*>(data) = symname;
      },
      &ignore_error, &out);
  return out;
}
#endif

}  // namespace

CodeLocation locate(const void* pc, bool return_address) {
  CodeLocation where;
  if (!pc) return where;
#if KETTLE_HAS_BACKTRACE
  if (!state()) return where;  // libbacktrace could not start: addresses stay unnamed
  std::uintptr_t at = reinterpret_cast<std::uintptr_t>(pc) - (return_address ? 1 : 0);
  struct Out {
    CodeLocation* where;
    std::string raw_function;
  } out{&where, {}};
  // Called once per inlined level, innermost first: the last one is the real function, at
  // the line that called the inlined code (the co_await itself).
  backtrace_pcinfo(
      state(), at,
      [](void* data, std::uintptr_t, const char* file, int line, const char* function) {
        auto* o = static_cast<Out*>(data);
        if (file) {
          o->where->file = file;
          o->where->line = line > 0 ? static_cast<unsigned>(line) : 0;
        }
        if (function) o->raw_function = function;
        return 0;
      },
      &ignore_error, &out);
  if (out.raw_function.empty()) out.raw_function = symbol_name(at);
  where.function = clean(demangle(out.raw_function.c_str()));
#else
  (void)return_address;
#endif
  return where;
}

std::string coroutine_function(const void* frame) {
  if (!frame) return {};
  // g++ and clang both begin a coroutine frame with its resume function's address.
  void* resume;
  std::memcpy(&resume, frame, sizeof resume);
#if KETTLE_HAS_BACKTRACE
  return clean(demangle(symbol_name(reinterpret_cast<std::uintptr_t>(resume)).c_str()));
#else
  return {};
#endif
}

std::string awaited_name(const AwaitedInfo& info) {
  if (info.name) return info.name;
  return demangle(info.type->name());
}

std::vector<std::uintptr_t> capture_stack(int skip, int max_frames) {
  std::vector<std::uintptr_t> pcs;
#if KETTLE_HAS_BACKTRACE
  struct Out {
    std::vector<std::uintptr_t>* pcs;
    int max;
  } out{&pcs, max_frames};
  if (!state()) return pcs;
  backtrace_simple(
      state(), skip + 1,
      [](void* data, std::uintptr_t pc) {
        auto* o = static_cast<Out*>(data);
        o->pcs->push_back(pc);
        return static_cast<int>(o->pcs->size()) >= o->max ? 1 : 0;
      },
      &ignore_error, &out);
#else
  (void)skip;
  (void)max_frames;
#endif
  return pcs;
}

std::string format_stack(const std::vector<std::uintptr_t>& pcs) {
  std::string out;
  for (auto it = pcs.rbegin(); it != pcs.rend(); ++it) {
    CodeLocation w = locate(reinterpret_cast<const void*>(*it), true);
    if (w.function.empty() && w.file.empty()) continue;  // libc's start-up frames
    out += "  File \"" + (w.file.empty() ? std::string("?") : w.file) + "\", line " +
           std::to_string(w.line) + ", in " + (w.function.empty() ? "?" : w.function) + "\n";
  }
  return out;
}

std::string short_location(const CodeLocation& where) {
  if (where.file.empty()) return "?";
  return where.line ? where.file + ":" + std::to_string(where.line) : where.file;
}

std::string short_function(std::string f) {
  for (const char* q : {" const", " &&", " &", " volatile"}) {
    std::size_t n = std::strlen(q);
    if (f.size() > n && f.compare(f.size() - n, n, q) == 0) f.resize(f.size() - n);
  }
  f = without_parameters(f);
  // A template's return type, which the demangler shows ("kettle::Coro<void> ns::f<int>").
  std::size_t space = f.find(' ');
  if (space != std::string::npos && f.find('(') > space && f.find('{') > space &&
      f.compare(0, 9, "operator ") != 0) {
    int depth = 0;
    std::size_t cut = std::string::npos;
    for (std::size_t i = 0; i < f.size(); ++i) {
      if (f[i] == '<') ++depth;
      if (f[i] == '>') --depth;
      if (f[i] == ' ' && depth == 0) {
        cut = i;
        break;
      }
    }
    if (cut != std::string::npos) f = f.substr(cut + 1);
  }
  // Template arguments go too (the file and line say which instance).
  std::string out;
  int depth = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    bool is_operator = i >= 8 && f.compare(i - 8, 8, "operator") == 0;
    if (c == '<' && !is_operator)
      ++depth;
    else if (c == '>' && depth > 0)
      --depth;
    else if (depth == 0)
      out += c;
  }
  return out;
}

std::string without_parameters(const std::string& f) {
  if (f.empty() || f.back() != ')') return f;
  int depth = 0;
  for (std::size_t i = f.size(); i-- > 0;) {
    if (f[i] == ')')
      ++depth;
    else if (f[i] == '(' && --depth == 0)
      return f.substr(0, i);
  }
  return f;
}

}  // namespace kettle::detail
