// kettle/detail/requires_cxx20.hpp — the first thing every kettle header includes: a clear
// error, naming the flag, when the compiler is not in C++20 mode (g++ 12 and clang++ 14
// default to C++17, where <coroutine> fails with a message that names the wrong flag).
#pragma once

#if __cplusplus < 202002L || !defined(__cpp_impl_coroutine)
#error \
    "kettle needs C++20 coroutines: compile with -std=c++20 (or later); in CMake, link kettle::kettle, which asks for cxx_std_20"
#endif
