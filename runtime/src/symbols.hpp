// Internal: program addresses to file, line and function (libbacktrace, from the program's
// debug information), for call graphs and debug-mode reports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kettle/coro.hpp"

namespace kettle::detail {

struct CodeLocation {
  std::string file;      // empty if unknown
  unsigned line = 0;     // 0 if unknown
  std::string function;  // demangled, without the compiler's clone suffixes; may be empty
};

// A demangled C++ name (the name itself if it is not a mangled one).
std::string demangle(const char* name);

// Where `pc` is. A return address points after its call: `return_address` looks one byte
// back, so that the line is the call's.
CodeLocation locate(const void* pc, bool return_address);

// The function of a coroutine frame (from its resume function), e.g. "fetch(int)".
std::string coroutine_function(const void* frame);

// How the call graph names what a coroutine awaits.
std::string awaited_name(const AwaitedInfo& info);

// The stack of the calling thread, innermost first, without the `skip` innermost frames.
std::vector<std::uintptr_t> capture_stack(int skip, int max_frames = 32);

// Python's "(most recent call last)" listing: `  File "f.cpp", line 12, in main()` lines,
// outermost first.
std::string format_stack(const std::vector<std::uintptr_t>& pcs);

// "f.cpp:12" or "f.cpp" or "?"
std::string short_location(const CodeLocation& where);

// A demangled name without its parameter list: "ns::f" for "ns::f(int)".
std::string without_parameters(const std::string& function);

// What a listing shows of a function, as Python's qualified names: no parameters, no
// template arguments, no qualifiers ("ns::run_group" for "ns::run_group<int>(F) const").
std::string short_function(std::string function);

}  // namespace kettle::detail
