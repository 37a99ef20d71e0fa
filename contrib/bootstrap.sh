#!/bin/sh
# Installs the Debian packages prisn needs, only when some are missing.
#
#   contrib/bootstrap.sh build   # what building prisn needs
#   contrib/bootstrap.sh test    # that, plus what the test suite needs
#   contrib/bootstrap.sh fuzz    # that, plus clang and libFuzzer for tests/fuzz
#   contrib/bootstrap.sh coverage # test, plus gcovr (contrib/coverage.sh)
#   contrib/bootstrap.sh release # test and coverage, plus the arm64 cross toolchain,
#                                # the arm64 -dev packages and qemu-user-static
#
# Idempotent and quiet when everything is there. Needs root (or sudo) only
# when it has something to install.
set -eu

# python3 is not needed to build, but the README's first command runs a
# Python example.
BUILD_PACKAGES="build-essential cmake pkg-config git
  liblua5.4-dev lua5.4 lua-luv-dev libuv1-dev lua-cjson-dev
  libsqlite3-dev libsodium-dev libhttp-parser-dev libmbedtls-dev liblz4-dev python3"
# Tests drive real interpreters and parse prisn's output with real parsers.
TEST_PACKAGES="lua-busted lua-check python3 python3-yaml python3-venv nodejs bash bash-completion zsh fish util-linux curl prometheus tzdata man-db tcl sqlite3 dnsutils openssl"

# The fuzz targets (CC=clang cmake -B build-fuzz -DPRISN_FUZZ=ON).
FUZZ_PACKAGES="clang libclang-rt-14-dev"

# contrib/release.sh and contrib/coverage.sh. The arm64 build links the same
# static archives as the amd64 one, from Debian's arm64 -dev packages installed
# beside the amd64 ones (multiarch); qemu-aarch64-static runs embedgen at build
# time and the arm64 smoke test. libc6-dev-arm64-cross is only recommended by
# the cross compiler, and recommends are not installed here. libmbedtls-dev is
# Multi-Arch: same, so its :arm64 package installs beside the amd64 one.
COVERAGE_PACKAGES="gcovr"
RELEASE_PACKAGES="$COVERAGE_PACKAGES gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static file
  libc6-dev:arm64 liblua5.4-dev:arm64 lua-luv-dev:arm64 libuv1-dev:arm64 lua-cjson-dev:arm64
  libsqlite3-dev:arm64 libsodium-dev:arm64 libmbedtls-dev:arm64 liblz4-dev:arm64"
# libhttp-parser-dev is not multiarch: installing the :arm64 one REMOVES the
# amd64 one. Its arm64 archive is unpacked here instead, where
# cmake/aarch64-linux-gnu.cmake looks for it.
CROSS_ROOT=/opt/prisn-cross/arm64
CROSS_DEBS="libhttp-parser-dev:arm64"

# Unpacks the arm64 packages that cannot be installed beside the amd64 ones.
unpack_cross_debs() {
  [ -f "$CROSS_ROOT/usr/lib/aarch64-linux-gnu/libhttp_parser.a" ] && return 0
  tmp=$(mktemp -d)
  # apt-get download runs as the _apt user when it can: the folder must be theirs to write.
  chmod 777 "$tmp"
  (cd "$tmp" && $SUDO apt-get download -qq $CROSS_DEBS >/dev/null)
  $SUDO mkdir -p "$CROSS_ROOT"
  for deb in "$tmp"/*.deb; do $SUDO dpkg-deb -x "$deb" "$CROSS_ROOT"; done
  rm -rf "$tmp"
}

want="$BUILD_PACKAGES"
case "${1:-build}" in
  build) ;;
  test) want="$want $TEST_PACKAGES" ;;
  fuzz) want="$want $TEST_PACKAGES $FUZZ_PACKAGES" ;;
  coverage) want="$want $TEST_PACKAGES $COVERAGE_PACKAGES" ;;
  release) want="$want $TEST_PACKAGES $RELEASE_PACKAGES" ;;
  *) echo "usage: $0 build|test|fuzz|coverage|release" >&2; exit 2 ;;
esac

missing=""
for pkg in $want; do
  # One line per installed architecture (liblua5.4-dev:amd64 and :arm64).
  dpkg-query -W -f='${db:Status-Status}\n' "$pkg" 2>/dev/null | grep -qx installed || missing="$missing $pkg"
done
# npm: Debian's nodejs lacks it and Debian's npm package provides it; other
# builds of nodejs (NodeSource) ship their own and conflict with Debian's.
if [ "${1:-build}" != build ] && ! command -v npm >/dev/null 2>&1; then
  missing="$missing npm"
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if [ -z "$missing" ]; then
  [ "${1:-build}" = release ] && unpack_cross_debs
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Error: missing packages:$missing" >&2
  echo "Hint: this script knows Debian and Ubuntu; install the equivalents with your package manager" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "Error: missing packages:$missing, and installing them needs root" >&2
    echo "Hint: run this script as root, or install them: apt-get install$missing" >&2
    exit 1
  fi
fi
echo "Installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# An :arm64 package needs dpkg to know the architecture, and apt its lists.
case "$missing" in
  *:arm64*)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      $SUDO dpkg --add-architecture arm64
      $SUDO apt-get update -qq >/dev/null
    fi ;;
esac
# Refresh the package lists only if an install from the current ones fails.
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ "${1:-build}" = release ]; then unpack_cross_debs; fi
