#include "kettle/version.hpp"

#define KETTLE_STR2(x) #x
#define KETTLE_STR(x) KETTLE_STR2(x)

namespace kettle {

const char* version() noexcept {
  return KETTLE_STR(KETTLE_VERSION_MAJOR) "." KETTLE_STR(KETTLE_VERSION_MINOR) "." KETTLE_STR(
      KETTLE_VERSION_PATCH);
}

}  // namespace kettle
