#!/bin/sh
# Line coverage of the C core (gcov, reported by gcovr) and of prisn's Lua
# (counted by the binary itself: PRISN_LUA_COVERAGE, see core/coverage.c)
# over the test suite, printed per folder.
#
#   contrib/coverage.sh               # the whole suite (about 10 minutes on 2 cores)
#   contrib/coverage.sh -R 'spec/'    # extra arguments go to ctest: only the specs
#
# Builds build-cov/ with -DPRISN_COVERAGE=ON and writes build-cov/coverage/:
#   c.txt, c.html (per file, annotated)   lua.txt (per file, with the lines never run)
# What no run can count: a forked child that execs (or ends with _exit) writes
# no gcov data and no Lua counts, and Lua run under prisn.sandbox's
# instruction budget (policies, hooks) is hidden by that budget's own hook.
# Exits non-zero when a test failed (the reports are written all the same).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
dir=build-cov
out="$src/$dir/coverage"

contrib/bootstrap.sh coverage
cmake -S . -B "$dir" -DPRISN_COVERAGE=ON >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null
find "$dir" -name '*.gcda' -delete
rm -rf "$out"
# Tests run prisn as other users too (--user, the guides as a plain user):
# every process may write the Lua counts and the gcov data (without the
# sticky bit: gcov opens a file another user made with O_CREAT, which
# fs.protected_regular refuses in a sticky folder), with files all can write.
mkdir -p "$out/lua-counts"
chmod 0777 "$out/lua-counts"
find "$dir" -name '*.gcno' -exec dirname {} + | sort -u | xargs chmod 0777
umask 000

status=0
PRISN_LUA_COVERAGE="$out/lua-counts" ctest --test-dir "$dir" -j"$(nproc)" --timeout 600 "$@" \
  >"$out/ctest.log" 2>&1 || status=$?
tail -n 3 "$out/ctest.log"

# embedgen is a build tool; embedded_lua.c is generated data.
gcovr_filters="--root $src --object-directory $src/$dir --filter $src/core/
  --exclude .*embedded_lua\.c --exclude $src/core/embedgen\.c"
# shellcheck disable=SC2086
gcovr $gcovr_filters --txt "$out/c.txt" --html-details "$out/c.html" --print-summary \
  >"$out/c-summary.txt"
echo "C (gcov, lines):"
awk '/^lines:/ { printf "  %-36s %s %s %s %s %s\n", "core/", $2, $3, $4, $5, $6 }' "$out/c-summary.txt"
echo "Lua (PRISN_LUA_COVERAGE, lines):"
"$dir/prisn" lua contrib/coverage.lua "$out/lua-counts" "$src" "$out/lua.txt"
echo "Reports: $out/c.txt $out/c.html $out/lua.txt"
exit "$status"
