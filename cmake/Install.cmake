# Install rules, the CMake package (kettleConfig.cmake, also exported from the build tree),
# the pkg-config file and the Debian package (cpack -G DEB).
include(CMakePackageConfigHelpers)

set(KETTLE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kettle)

set(_kettle_targets kettle kettle_main)
if(TARGET kettle_mpi)
  list(APPEND _kettle_targets kettle_mpi)
endif()
install(TARGETS ${_kettle_targets} EXPORT kettleTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/kettle
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
install(FILES ${PROJECT_BINARY_DIR}/runtime/generated/include/kettle/version.hpp
              ${PROJECT_BINARY_DIR}/runtime/generated/include/kettle/config.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kettle)
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The package config: Asio has no CMake config of its own, so kettle's find module for it
# travels with the package.
install(EXPORT kettleTargets NAMESPACE kettle:: DESTINATION ${KETTLE_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kettleConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/kettleConfig.cmake
                              INSTALL_DESTINATION ${KETTLE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kettleConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kettleConfig.cmake
              ${PROJECT_BINARY_DIR}/kettleConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindAsio.cmake
        DESTINATION ${KETTLE_CMAKE_DIR})
# The same from the build tree: find_package(kettle) with kettle_DIR=<build dir>.
export(EXPORT kettleTargets NAMESPACE kettle:: FILE ${PROJECT_BINARY_DIR}/kettleTargets.cmake)
configure_file(${PROJECT_SOURCE_DIR}/cmake/FindAsio.cmake ${PROJECT_BINARY_DIR}/FindAsio.cmake
               COPYONLY)

# pkg-config. Relocatable: the prefix is found from where kettle.pc lies.
file(RELATIVE_PATH KETTLE_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" KETTLE_PC_TO_PREFIX "${KETTLE_PC_TO_PREFIX}")
set(KETTLE_PC_CFLAGS "")
foreach(dir IN ITEMS ${Asio_INCLUDE_DIR} ${cereal_INCLUDE_DIRS})
  if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES AND NOT dir STREQUAL "/usr/include")
    string(APPEND KETTLE_PC_CFLAGS " -I${dir}")
  endif()
endforeach()
set(KETTLE_PC_BACKTRACE "")
if(KETTLE_BACKTRACE_LIB AND NOT BUILD_SHARED_LIBS)
  set(KETTLE_PC_BACKTRACE " ${KETTLE_BACKTRACE_LIB}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/kettle.pc.in ${PROJECT_BINARY_DIR}/kettle.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kettle.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# cpack -G DEB (from the build directory): libkettle-dev_<version>_<arch>.deb.
set(CPACK_PACKAGE_NAME libkettle-dev)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "kettle: asyncio for C++20 (headers, library, CMake and pkg-config files)")
set(CPACK_PACKAGE_DESCRIPTION
    "kettle brings Python's asyncio to C++20 coroutines on standalone Asio: tasks, gather,\
 timeouts, task groups, queues, streams, subprocesses, and thread and process pools whose\
 results a coroutine awaits.")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "The kettle developers")
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libasio-dev (>= 1:1.22), libcereal-dev, libssl-dev (>= 3), libgcc-12-dev")
if(TARGET kettle_mpi)  # kettle::kettle_mpi is in the package: the MPI it was built with
  if(MPI_CXX_LIBRARIES MATCHES "openmpi")
    string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libopenmpi-dev, openmpi-bin")
  else()
    string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libmpich-dev, mpich")
  endif()
endif()
include(CPack)
