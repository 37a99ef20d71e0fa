-- Benchmark of the held gate (proc.spawn_start's hold_gate, which the
-- server uses for every service start so that a child waits for its pid's
-- record before its exec): what it adds to a start, against the same start
-- without it, interleaved in one process.
--
--   build/prisn lua tests/bench/spawn_gate.lua [ROUNDS] [N]
--
-- ROUNDS (default 9) interleaved rounds of N (default 200) starts of
-- /bin/true at isolation 0, each: spawn_start (+ open_gate), its report
-- waited for on the loop (no spinning: the CPU time is this process's
-- work), finish, wait. Prints the medians over the rounds of this process's
-- CPU time per start (getrusage) and of the median time spawn_start (+
-- open_gate) held the caller.
local uv = require("luv")
local proc = require("prisn.core.proc")

local ROUNDS = tonumber(arg[1]) or 9
local N = tonumber(arg[2]) or 200

local function cpu_ms()
  local r = uv.getrusage()
  return (r.utime.sec + r.stime.sec) * 1e3 + (r.utime.usec + r.stime.usec) / 1e3
end

local function median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

local function start_one(held)
  local t0 = uv.hrtime()
  local pending = assert(proc.spawn_start({ file = "/bin/true", argv = { "true" }, env = {}, stdin = "null",
    session = true, hold_gate = held or nil }))
  if held then pending:open_gate() end
  local blocked = (uv.hrtime() - t0) / 1e6
  local poll, ready = uv.new_poll(pending:fd()), false
  poll:start("r", function() ready = true; poll:stop() end)
  while not ready do uv.run("once") end
  poll:close()
  local p
  repeat p = pending:finish() until p ~= false
  assert(p, "the start failed")
  p:wait()
  p:close()
  return blocked
end

local function round(held)
  local blocked = {}
  local c0 = cpu_ms()
  for i = 1, N do blocked[i] = start_one(held) end
  return (cpu_ms() - c0) / N, median(blocked)
end

local cpu, held_for = { [false] = {}, [true] = {} }, { [false] = {}, [true] = {} }
for _ = 1, ROUNDS do
  for _, held in ipairs({ false, true }) do
    local c, b = round(held)
    table.insert(cpu[held], c)
    table.insert(held_for[held], b)
  end
end
local cp, ch = median(cpu[false]), median(cpu[true])
local bp, bh = median(held_for[false]), median(held_for[true])
print(string.format("%d rounds of %d starts; load average %s", ROUNDS, N,
  (io.open("/proc/loadavg"):read("l") or ""):match("^(%S+ %S+ %S+)")))
print(string.format("CPU per start:             plain %.4f ms, held gate %.4f ms (x%.3f)", cp, ch, ch / cp))
print(string.format("caller held (spawn_start): plain %.4f ms, held gate %.4f ms (x%.3f)", bp, bh, bh / bp))
