// Loads the plugin with dlopen, as a host program would, and runs kettle inside it.
#include <dlfcn.h>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  void* lib = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::cerr << ::dlerror() << "\n";
    return 1;
  }
  auto run = reinterpret_cast<int (*)()>(::dlsym(lib, "kettle_plugin_run"));
  const int result = run ? run() : -1;
  std::cout << "plugin: " << result << "\n";
  ::dlclose(lib);
  return result == 42 ? 0 : 1;
}
