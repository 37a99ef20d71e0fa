-- Benchmark of the data plane (#19): a deployment's port served by the data
-- plane process against the same port served inside the server
-- (PRISN_DATAPLANE=in-process, how prisn did it before), in the same run.
--
--   build/prisn lua tests/bench/dataplane.lua [ROUNDS] [SECONDS]
--
-- Two servers, each with a PRISN_HOME of its own and one deployment of one
-- python instance (ThreadingHTTPServer answering "ok", TCP_NODELAY and a
-- listen backlog of 511: without them python's own delays, 40 ms delayed
-- ACKs and 1 s SYN retransmits, drown the proxy's) behind --port. Per
-- round, in alternating order, the same wrk run (1 thread, 8 connections,
-- keep-alive, SECONDS long, default 5) through each port: p50, p99 and
-- requests/s, medians over ROUNDS (default 5); then wrk with a new
-- connection per request (Connection: close), where the proxy's accept and
-- connect dominate. Then the RSS (VmRSS) of each server and of the data
-- plane. Everything started is stopped by `prisn server stop` (which stops
-- the data plane and the instances); the temporary folder is removed.
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local sh, write, read, median = common.sh, common.write, common.read, common.median

local ROUNDS = tonumber(arg[1]) or 5
local SECONDS = tonumber(arg[2]) or 5
local PRISN = uv.exepath()

local APP = [[
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 511
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
]]

local tmp = sh("mktemp -d /tmp/prisn-bench-dataplane-XXXXXX")
write(tmp .. "/app.py", APP)

local function free_port()
  local t = uv.new_tcp()
  t:bind("127.0.0.1", 0)
  local port = t:getsockname().port
  t:close()
  return port
end

local function rss_kb(pid)
  return tonumber((read("/proc/" .. pid .. "/status") or ""):match("VmRSS:%s*(%d+)")) or 0
end

-- A server of its own home; mode "dataplane" or "in-process".
local function server(mode)
  local s = { mode = mode, home = tmp .. "/" .. mode, port = free_port() }
  s.env = "PRISN_HOME=" .. s.home .. (mode == "in-process" and " PRISN_DATAPLANE=in-process" or "")
  local function prisn(args) return sh(s.env .. " " .. PRISN .. " " .. args) end
  s.prisn = prisn
  prisn("server start -q --dns off --listen 127.0.0.1:" .. free_port())
  prisn(string.format("deploy %s/app.py --name web --port %d --isolation 0", tmp, s.port))
  local info = read(s.home .. "/server.json") or ""
  s.pid = tonumber(info:match('"pid":(%d+)'))
  local pids = sh("pgrep -f 'server dataplane' || true")
  for pid in pids:gmatch("%d+") do
    if (read("/proc/" .. pid .. "/environ") or ""):find("PRISN_HOME=" .. s.home .. "\0", 1, true) then
      s.dataplane = tonumber(pid)
    end
  end
  return s
end

local UNIT = { us = 0.001, ms = 1, s = 1000 }
local function ms_of(text)
  local n, unit = text:match("([%d.]+)(%a+)")
  return tonumber(n) * UNIT[unit]
end

-- One wrk run against port: p50, p99 (ms), requests/s.
local function wrk(port, close)
  local out = sh(string.format("wrk -t1 -c8 -d%ds --latency %s http://127.0.0.1:%d/", SECONDS,
    close and "-H 'Connection: close'" or "", port))
  return { p50 = ms_of(out:match("\n%s+50%%%s+(%S+)") or "0ms"), p99 = ms_of(out:match("\n%s+99%%%s+(%S+)") or "0ms"),
    rps = tonumber(out:match("Requests/sec:%s+([%d.]+)")) or 0,
    errors = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)")) or 0 }
end

local servers = { server("dataplane"), server("in-process") }
local results = {}
for _, s in ipairs(servers) do results[s.mode] = { keep = {}, close = {} } end
for round = 1, ROUNDS do
  local order = round % 2 == 1 and { 1, 2 } or { 2, 1 }
  for _, kind in ipairs({ "keep", "close" }) do
    for _, i in ipairs(order) do
      local s = servers[i]
      table.insert(results[s.mode][kind], wrk(s.port, kind == "close"))
    end
  end
  io.stderr:write(".")
end
io.stderr:write("\n")

local function med(list, field)
  local v = {}
  for i, r in ipairs(list) do v[i] = r[field] end
  return median(v)
end

print(string.format("data plane vs in-server proxy, %d rounds of %d s, wrk -t1 -c8 (medians)", ROUNDS, SECONDS))
for _, kind in ipairs({ "keep", "close" }) do
  print(kind == "keep" and "keep-alive:" or "a connection per request:")
  local base = results["in-process"][kind]
  for _, mode in ipairs({ "dataplane", "in-process" }) do
    local list = results[mode][kind]
    print(string.format("  %-11s p50 %.3f ms  p99 %.3f ms  %8.0f req/s  (non-2xx: %d)", mode, med(list, "p50"),
      med(list, "p99"), med(list, "rps"), math.floor(med(list, "errors"))))
  end
  local dp = results.dataplane[kind]
  print(string.format("  ratio data plane / in-server: p50 x%.2f  p99 x%.2f  req/s x%.2f",
    med(dp, "p50") / med(base, "p50"), med(dp, "p99") / med(base, "p99"), med(dp, "rps") / med(base, "rps")))
end
for _, s in ipairs(servers) do
  print(string.format("RSS %-11s server %.1f MB%s", s.mode, rss_kb(s.pid) / 1024,
    s.dataplane and string.format(", data plane %.1f MB", rss_kb(s.dataplane) / 1024) or ""))
end

for _, s in ipairs(servers) do s.prisn("server stop") end
sh("rm -rf " .. tmp)
