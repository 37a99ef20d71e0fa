-- Benchmark of the HTTP ingress (prisn.net.ingress) against a direct connection.
--
--   build/prisn lua tests/bench/ingress.lua [ROUNDS] [SECONDS]
--
-- ROUNDS (default 3) interleaved rounds of SECONDS (default 5) per wrk run;
-- PRISN_BENCH_CONNS (default 32) connections, wrk -t2, keep-alive.
--
-- Backends: two node `http` servers in their own processes, keep-alive on:
-- "trivial" answers "ok" at once; "1ms" answers after a 1 ms timer (a backend
-- that waits ~1 ms on something, as an app waiting on a database does; not
-- CPU work, which on this 2-core machine would compete with wrk and the
-- ingress and measure the scheduler). The ingress is this file in a second
-- prisn process (`--serve PORT1 PORT2`), routing host trivial.bench to the
-- first and slow.bench to the second. Per round and backend, in alternating
-- order, the same wrk run straight at the backend and through the ingress
-- (wrk -H "Host: ..."), so both see the same machine load.
--
-- Reported: medians over the rounds of requests/s, p50 and p99 (wrk
-- --latency), ingress/direct ratios, errors, the ingress's CPU per request
-- and RSS. Loopback only; every process started is stopped by its pid.
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local run_until, finish, median = common.run_until, common.finish, common.median

-- Ingress mode: listen on a free port, print it, serve until SIGTERM.
if arg[1] == "--serve" then
  local ingress = require("prisn.net.ingress")
  require("prisn.core.sys").ignore_sigpipe()
  local ig = assert(ingress.listen({ host = "127.0.0.1", port = 0 }))
  ig:set_routes({
    { host = "trivial.bench", key = "bench/trivial",
      backends = { { id = "t", host = "127.0.0.1", port = tonumber(arg[2]) } } },
    { host = "slow.bench", key = "bench/slow",
      backends = { { id = "s", host = "127.0.0.1", port = tonumber(arg[3]) } } },
  })
  io.stdout:write(ig:port(), "\n")
  io.stdout:flush()
  local sig = uv.new_signal()
  sig:start("sigterm", function()
    sig:close()
    ig:close(function() end)
  end)
  uv.run()
  return
end

local ROUNDS = tonumber(arg[1]) or 3
local SECONDS = tonumber(arg[2]) or 5
local CONNS = tonumber(os.getenv("PRISN_BENCH_CONNS")) or 32
local PRISN = arg[-1] or uv.exepath()
local SELF = debug.getinfo(1, "S").source:sub(2)

local tick = common.ticker(10)
local env = {}
for k, v in pairs(uv.os_environ()) do env[#env + 1] = k .. "=" .. v end

local function spawn(file, args, capture)
  return common.spawn(file, args, { env = env, stdout = capture, stderr = 2 })
end

local function stop(p)
  if not p.done then uv.kill(p.pid, "sigterm") end
  finish(p, 5)
end

local function start_listener(file, args, what)
  local p = spawn(file, args, true)
  local port
  assert(run_until(function()
    port = table.concat(p.out):match("^(%d+)\n")
    return port or p.done
  end, 10) and port, what .. " did not start")
  return p, tonumber(port)
end

local function cpu_s(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return 0 end
  local fields = {}
  for x in f:read("a"):match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = x end
  f:close()
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

local function rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return 0 end
  local kb = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb)
end

local UNIT = { us = 1e-3, ms = 1, s = 1e3 }
local function wrk_ms(out, q)
  local v, unit = out:match("\n%s*" .. q .. "%%%s+([%d.]+)(%a+)")
  return v and tonumber(v) * UNIT[unit]
end

-- One wrk run: { rps, p50, p99 (ms), errors }.
local function wrk(port, host)
  local args = { "-c" .. CONNS, "-t2", "-d" .. SECONDS .. "s", "--latency", "-H", "Host: " .. host,
    "http://127.0.0.1:" .. port .. "/" }
  local out = finish(spawn("wrk", args, true), SECONDS + 30)
  local errors = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)") or "0")
  local c, r, w, t = out:match("Socket errors: connect (%d+), read (%d+), write (%d+), timeout (%d+)")
  if c then errors = errors + c + r + w + t end
  local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  assert(rps, "wrk said:\n" .. out)
  return { rps = rps, p50 = wrk_ms(out, 50), p99 = wrk_ms(out, 99), errors = errors }
end

local function main()
  assert(common.sh("command -v wrk") ~= "", "wrk is not installed (apt-get install wrk)")
  assert(common.sh("command -v node") ~= "", "node is not installed")
  local trivial_src = "const s = require('http').createServer((q, r) => r.end('ok'));"
    .. "s.keepAliveTimeout = 60000; s.listen(0, '127.0.0.1', () => console.log(s.address().port));"
  local slow_src = "const s = require('http').createServer((q, r) => setTimeout(() => r.end('ok'), 1));"
    .. "s.keepAliveTimeout = 60000; s.listen(0, '127.0.0.1', () => console.log(s.address().port));"
  local trivial, trivial_port = start_listener("node", { "-e", trivial_src }, "the trivial backend")
  local slow, slow_port = start_listener("node", { "-e", slow_src }, "the 1 ms backend")
  local ig, ig_port = start_listener(PRISN, { "lua", SELF, "--serve", tostring(trivial_port), tostring(slow_port) },
    "the ingress")
  local rss_start = rss_kb(ig.pid)

  local cases = {
    { name = "trivial", host = "trivial.bench", port = trivial_port, direct = {}, ingress = {} },
    { name = "1ms", host = "slow.bench", port = slow_port, direct = {}, ingress = {} },
  }
  local errors, cpu, proxied = 0, 0, 0
  wrk(ig_port, "trivial.bench") -- warm-up, not counted
  for round = 1, ROUNDS do
    for _, case in ipairs(cases) do
      local order = round % 2 == 1 and { "direct", "ingress" } or { "ingress", "direct" }
      for _, which in ipairs(order) do
        local cpu0 = which == "ingress" and cpu_s(ig.pid)
        local r = wrk(which == "direct" and case.port or ig_port, case.host)
        if cpu0 then
          cpu = cpu + cpu_s(ig.pid) - cpu0
          proxied = proxied + r.rps * SECONDS
        end
        errors = errors + r.errors
        table.insert(case[which], r)
        io.stderr:write(string.format("round %d %-7s %-7s %.0f req/s  p50 %.3f ms  p99 %.3f ms  errors %d\n",
          round, case.name, which, r.rps, r.p50, r.p99, r.errors))
      end
    end
  end
  local rss_end = rss_kb(ig.pid)
  stop(ig)
  stop(trivial)
  stop(slow)

  local function med(list, key)
    local xs = {}
    for i, r in ipairs(list) do xs[i] = r[key] end
    return median(xs)
  end
  local out = {}
  local function say(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  say("prisn.net.ingress: %d rounds of %d s, %d connections, wrk 4.1 -t2, node http backends, %d CPUs, load %.2f",
    ROUNDS, SECONDS, CONNS, #uv.cpu_info(), uv.loadavg())
  say("")
  say("| backend | metric | direct | through the ingress | ratio |")
  say("|---|---|---|---|---|")
  for _, case in ipairs(cases) do
    for _, key in ipairs({ "rps", "p50", "p99" }) do
      local d, i = med(case.direct, key), med(case.ingress, key)
      local fmt = key == "rps" and "%.0f" or "%.3f"
      say("| %s | %s | " .. fmt .. " | " .. fmt .. " | %.2f |", case.name, key == "rps" and "req/s" or key .. " ms",
        d, i, i / d)
    end
  end
  say("")
  say("Errors (socket errors + non-2xx, all runs): %d", errors)
  say("Ingress CPU: %.1f µs per request; RSS %d kB at start, %d kB at the end",
    proxied > 0 and cpu / proxied * 1e6 or 0 / 0, rss_start, rss_end)
  print(table.concat(out, "\n"))
end

local ok, err = xpcall(main, debug.traceback)
common.stop_children(10)
tick:stop()
tick:close()
if not ok then error(err, 0) end
