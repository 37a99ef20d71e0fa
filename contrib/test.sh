#!/bin/sh
# Installs what is missing, builds prisn and runs every test.
#
#   contrib/test.sh              # build/ : the normal build
#   contrib/test.sh --sanitize   # build-asan/ : ASan + UBSan
#
# Extra arguments go to ctest (e.g. -R spec/ to run only the specs).
set -eu
cd "$(dirname "$0")/.."

dir=build
cmake_flags=""
if [ "${1:-}" = "--sanitize" ]; then
  shift
  dir=build-asan
  cmake_flags="-DPRISN_SANITIZE=ON"
fi

contrib/bootstrap.sh test
# shellcheck disable=SC2086
cmake -S . -B "$dir" $cmake_flags >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" -j"$(nproc)" --output-on-failure --timeout 600 "$@"
