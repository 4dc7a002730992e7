#!/usr/bin/env bash
# Builds tests/consumer/ against kettle the four ways a user can, and runs each build:
#   prefix        cmake --install into a prefix, then find_package(kettle 0.2) (+ a plugin)
#   pkg-config    a plain g++ line with $(pkg-config --cflags --libs kettle)
#   subdirectory  add_subdirectory(kettle) with BUILD_SHARED_LIBS=ON, position-independent
#                 code on, and GoogleTest made unfindable (a consumer never needs it)
#   deb           cpack -G DEB, apt-get install the package, find_package and pkg-config
#                 against /usr; the package is removed again afterwards
# Usage: tests/consumer/run.sh BUILD_DIR [way ...]  (BUILD_DIR: a configured, built kettle)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
shift
ways=("$@")
((${#ways[@]})) || ways=(prefix pkg-config subdirectory deb)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { echo "--- consumer: $*"; }

# The consumer's own build: its compile lines carry none of kettle's warning flags, and its
# ctest has its own two tests, none of kettle's.
build_with_cmake() {
  local dir=$1
  shift
  cmake -S "$here" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@" >"$dir.log" 2>&1 || { cat "$dir.log"; return 1; }
  cmake --build "$dir" >>"$dir.log" 2>&1 || { cat "$dir.log"; return 1; }
  if [[ $(grep -E '"command":.*(app|plugin|load_plugin)\.cpp' "$dir/compile_commands.json") == *-Wextra* ]]; then
    echo "kettle's warning flags leaked into the consumer's compile lines" >&2
    return 1
  fi
  local tests
  tests=$(cd "$dir" && ctest -N | sed -n 's/^ *Test *#[0-9]*: //p' | sort | tr '\n' ' ')
  if [ "$tests" != "consumer.app consumer.plugin " ]; then
    echo "the consumer's ctest lists: $tests (expected only consumer.app consumer.plugin)" >&2
    return 1
  fi
  (cd "$dir" && ctest --output-on-failure)
}

build_with_pkg_config() {
  local out=$1
  g++ -std=c++20 -O2 "$here/app.cpp" -o "$out" $(pkg-config --cflags --libs kettle)
  "$out"
}

for way in "${ways[@]}"; do
  case $way in
    prefix)
      step "install into a prefix, find_package"
      cmake --install "$build" --prefix "$work/prefix" >/dev/null
      build_with_cmake "$work/prefix-build" -DCMAKE_PREFIX_PATH="$work/prefix"
      ;;
    pkg-config)
      step "pkg-config and a plain g++ line"
      [ -d "$work/prefix" ] || cmake --install "$build" --prefix "$work/prefix" >/dev/null
      PKG_CONFIG_PATH=$(dirname "$(find "$work/prefix" -name kettle.pc)") \
        build_with_pkg_config "$work/app-pkg-config"
      ;;
    subdirectory)
      step "add_subdirectory, shared libkettle, no GoogleTest"
      build_with_cmake "$work/subdir-build" -DKETTLE_SOURCE_DIR="$root" -DBUILD_SHARED_LIBS=ON \
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON
      # Whole outputs into variables, never "cmd | grep -q": under pipefail, grep -q leaving
      # at the first match gives a writer still writing SIGPIPE, and the pipeline fails.
      libs=$(ldd "$work/subdir-build/producer_consumer")
      if [[ $libs != *libkettle.so* ]]; then
        echo "the shared build's program does not use libkettle.so" >&2
        exit 1
      fi
      ;;
    deb)
      step "the Debian package"
      (cd "$build" && cpack -G DEB >/dev/null)
      version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
      deb="$build/libkettle-dev_${version}_$(dpkg --print-architecture).deb"
      [ -f "$deb" ] || { echo "no $deb" >&2; exit 1; }
      depends=$(dpkg-deb -f "$deb" Depends)
      for d in libasio-dev libcereal-dev libssl-dev; do
        [[ $depends == *"$d"* ]] || { echo "$deb: Depends lacks $d: $depends" >&2; exit 1; }
      done
      if [ "$(id -u)" -ne 0 ]; then
        echo "installing the package needs root; skipped" >&2
        continue
      fi
      installed=$(dpkg-query -W -f='${Status} ${Version}' libkettle-dev 2>/dev/null || true)
      case $installed in
        "" | *not-installed* | *config-files*) ;;
        *" $(dpkg-deb -f "$deb" Version)")
          # This very version: what a run of this check killed before its cleanup leaves.
          echo "libkettle-dev ($installed) is already here, left by an interrupted run; removing it" >&2
          dpkg --purge libkettle-dev >/dev/null
          ;;
        *)
          echo "libkettle-dev ($installed) is installed on this machine; not touching it" >&2
          exit 1
          ;;
      esac
      trap 'dpkg --purge libkettle-dev >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
      # Wait for a dpkg lock someone else holds rather than fail at once.
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$deb" >/dev/null
      build_with_cmake "$work/deb-build"
      build_with_pkg_config "$work/app-deb-pkg-config"
      dpkg --purge libkettle-dev >/dev/null
      ;;
    *)
      echo "unknown way: $way" >&2
      exit 2
      ;;
  esac
done
echo "--- consumer: ${ways[*]}: all built and ran"
