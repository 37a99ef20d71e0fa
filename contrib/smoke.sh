#!/bin/sh
# The release smoke test of one binary (run by contrib/release.sh for each):
#
#   contrib/smoke.sh BINARY VERSION TARGET                       # on this machine
#   contrib/smoke.sh --emulator qemu-aarch64-static BINARY VERSION TARGET
#
# Runs `version` (checks VERSION and TARGET), `run` of a bash and a Lua
# script, `lua` with contrib/smoke.lua, `server start`, a detached job and
# `server stop`, each with a temporary PRISN_HOME. Under an emulator
# (qemu-user) there are no namespaces nor cgroups: the runs use
# --isolation 0, and steps that need prisn to start itself again (the
# background server, the job runner, the Lua runner) cannot work, because
# qemu-user cannot exec an arm64 binary unless binfmt_misc hands it to
# qemu; then the server runs in the foreground under the emulator instead,
# and what cannot run is printed as NOT RUN with the reason, never skipped
# silently. Exits 1 when a step failed.
set -eu
emulator=""
if [ "${1:-}" = "--emulator" ]; then emulator=$2; shift 2; fi
if [ $# -ne 3 ]; then
  echo "usage: $0 [--emulator CMD] BINARY VERSION TARGET" >&2
  exit 2
fi
bin=$(realpath "$1") version=$2 target=$3
here=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d /tmp/prisn-smoke-XXXXXX)
export PRISN_HOME="$work/home"
server_pid=""
cleanup() {
  # Only the server this test started, by its pid.
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

failed=0 passed=0
P() { $emulator "$bin" "$@"; }
pass() { passed=$((passed + 1)); echo "ok       $1"; }
fail() { failed=$((failed + 1)); echo "FAIL     $1"; sed 's/^/           /' "$work/out" | tail -n 15; }
not_run() { echo "NOT RUN  $1"; }
# expect NAME PATTERN COMMAND...: COMMAND succeeds and prints PATTERN.
expect() {
  name=$1 pattern=$2; shift 2
  if "$@" >"$work/out" 2>&1 && grep -q -- "$pattern" "$work/out"; then pass "$name"; else fail "$name"; fi
}

# Can this emulator start the binary again from inside itself?
reexec=yes isolation=""
if [ -n "$emulator" ]; then
  isolation="--isolation 0"
  echo "note     under $emulator: no namespaces nor cgroups, runs use --isolation 0"
  if ! [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then reexec=no; fi
fi

expect "version names $version and $target" "\"target\": \"$target\"" P version -o json
grep -q "\"version\": \"$version\"" "$work/out" || fail "version is $version"

# shellcheck disable=SC2016 # $1 is for the script
printf 'echo "hello from bash $1"\n' >"$work/hello.sh"
# shellcheck disable=SC2086
expect "run a bash script${isolation:+ ($isolation)}" "hello from bash world" \
  P run $isolation --no-deps "$work/hello.sh" world
printf 'print("hello from " .. _VERSION .. " " .. ...)\n' >"$work/hello.lua"
if [ "$reexec" = yes ]; then
  # shellcheck disable=SC2086
  expect "run a Lua script${isolation:+ ($isolation)}" "hello from Lua 5.4 world" \
    P run $isolation --no-deps "$work/hello.lua" world
else
  not_run "run a Lua script: the Lua runner is prisn itself, started again (no binfmt_misc for qemu)"
fi
expect "lua with contrib/smoke.lua" "5 passed, 0 failed" P lua "$here/smoke.lua"

if [ "$reexec" = yes ]; then
  expect "server start" "" P server start
else
  not_run "server start in the background: it starts prisn again (no binfmt_misc for qemu)"
  P server start --foreground >"$work/server.log" 2>&1 &
  server_pid=$!
  tries=0
  until P server status >/dev/null 2>&1 || [ $tries -ge 100 ]; do sleep 0.2; tries=$((tries + 1)); done
  expect "server start --foreground under $emulator" "" P server status
fi

if [ "$reexec" = yes ]; then
  # shellcheck disable=SC2086
  if P run --detach $isolation --no-deps "$work/hello.sh" detached >"$work/id" 2>"$work/out"; then
    id=$(tail -n 1 "$work/id")
    tries=0
    until P logs "job/$id" 2>/dev/null | grep -q "hello from bash detached" || [ $tries -ge 100 ]; do
      sleep 0.2; tries=$((tries + 1))
    done
    expect "a detached job ($id) runs and logs" "hello from bash detached" P logs "job/$id"
  else
    fail "a detached job"
  fi
else
  not_run "a detached job: its runner is prisn started again by the server (no binfmt_misc for qemu)"
fi

expect "server stop" "" P server stop
if [ -n "$server_pid" ]; then wait "$server_pid" 2>/dev/null || true; server_pid=""; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
