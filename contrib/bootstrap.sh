#!/bin/sh
# Installs the Debian packages prisn needs, only when some are missing.
#
#   contrib/bootstrap.sh build   # what building prisn needs
#   contrib/bootstrap.sh test    # that, plus what the test suite needs
#   contrib/bootstrap.sh fuzz    # that, plus clang and libFuzzer for tests/fuzz
#
# Idempotent and quiet when everything is there. Needs root (or sudo) only
# when it has something to install.
set -eu

# python3 is not needed to build, but the README's first command runs a
# Python example.
BUILD_PACKAGES="build-essential cmake pkg-config git
  liblua5.4-dev lua5.4 lua-luv-dev libuv1-dev lua-cjson-dev
  libsqlite3-dev libsodium-dev libhttp-parser-dev python3"
# Tests drive real interpreters and parse prisn's output with real parsers.
TEST_PACKAGES="lua-busted lua-check python3 python3-yaml python3-venv nodejs bash bash-completion zsh fish util-linux curl prometheus tzdata man-db tcl sqlite3 dnsutils"

# The fuzz targets (CC=clang cmake -B build-fuzz -DPRISN_FUZZ=ON).
FUZZ_PACKAGES="clang libclang-rt-14-dev"

want="$BUILD_PACKAGES"
case "${1:-build}" in
  build) ;;
  test) want="$want $TEST_PACKAGES" ;;
  fuzz) want="$want $TEST_PACKAGES $FUZZ_PACKAGES" ;;
  *) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac

missing=""
for pkg in $want; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing="$missing $pkg"
done
# npm: Debian's nodejs lacks it and Debian's npm package provides it; other
# builds of nodejs (NodeSource) ship their own and conflict with Debian's.
if [ "${1:-build}" != build ] && ! command -v npm >/dev/null 2>&1; then
  missing="$missing npm"
fi
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Error: missing packages:$missing" >&2
  echo "Hint: this script knows Debian and Ubuntu; install the equivalents with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "Error: missing packages:$missing, and installing them needs root" >&2
    echo "Hint: run this script as root, or install them: apt-get install$missing" >&2
    exit 1
  fi
fi
echo "Installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only if an install from the current ones fails.
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
