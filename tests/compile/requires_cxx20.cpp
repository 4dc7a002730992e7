// Compiled with -std=c++17 by the compile.requires_cxx20 test: the first error must be
// kettle's own, naming -std=c++20.
#include <kettle/kettle.hpp>

int main() {}
