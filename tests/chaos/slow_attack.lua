-- The attacker of tests/chaos/slow_clients_spec.lua, in a process of its
-- own so that its thousands of sockets do not slow the spec's own loop,
-- which measures the server's answers to other clients:
--
--   prisn lua tests/chaos/slow_attack.lua PORT BIND N DURATION_MS REOPEN_MS
--
-- Opens N connections to 127.0.0.1:PORT from address BIND, a third each
-- sending nothing, a header byte a second, or a body byte a second after a
-- complete head, and reopens each one the server closes (after the
-- Retry-After second when it was refused, else after REOPEN_MS) until
-- DURATION_MS have passed. Prints one JSON line of figures at the end.
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/../?.lua;" .. package.path
local wire = require("chaos.http_client")
local uv = require("luv")
local cjson = require("cjson")

local port, bind = tonumber(arg[1]), arg[2]
local n, duration_ms, reopen_ms = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
require("prisn.core.sys").raise_nofile()

-- The bytes of a slow connection of `kind`, as { bytes, delay_ms } pieces,
-- enough to last `ms`.
local function slow_pieces(kind, ms)
  if kind == "silent" then return {} end
  local text
  if kind == "head" then
    text = "GET /health HTTP/1.1\r\nHost: prisn\r\nX-Slow: " .. ("a"):rep(ms // 1000 + 10)
  else
    text = "POST /api/v1/tokens HTTP/1.1\r\nHost: prisn\r\nContent-Length: 100000\r\n\r\n"
      .. ("{"):rep(ms // 1000 + 10)
  end
  local pieces = {}
  local head_end = kind == "body" and text:find("\r\n\r\n", 1, true) + 3 or 0
  if head_end > 0 then pieces[1] = { text:sub(1, head_end), 1000 } end
  for i = head_end + 1, #text do pieces[#pieces + 1] = { text:sub(i, i), 1000 } end
  return pieces
end

local t0 = uv.now()
local attacking = true
local stats = { n = n, opened = 0, refused = 0, timed_out_408 = 0, closed_silently = 0, other = {},
  longest_ms = { silent = 0, head = 0, body = 0 } }
local live = 0
local kinds = { "silent", "head", "body" }
local target = { host = "127.0.0.1", port = port, bind = bind }

local function open(k)
  if not attacking then return end
  local kind = kinds[k % 3 + 1]
  stats.opened = stats.opened + 1
  live = live + 1
  local remaining = math.max(1, duration_ms - (uv.now() - t0))
  wire.start(target, nil, { pieces = slow_pieces(kind, remaining), timeout_ms = remaining }, function(r)
    live = live - 1
    if r.status == 429 then
      stats.refused = stats.refused + 1
    elseif r.status == 408 then
      stats.timed_out_408 = stats.timed_out_408 + 1
      stats.longest_ms[kind] = math.max(stats.longest_ms[kind], r.ms)
    elseif r.status then
      stats.other[#stats.other + 1] = r.status
    elseif not r.timed_out then
      stats.closed_silently = stats.closed_silently + 1
    end
    if attacking then
      local t = uv.new_timer()
      t:start(r.status == 429 and 1000 or reopen_ms, 0, function() t:close(); open(k) end)
    end
  end)
end

for k = 1, n do open(k) end
wire.wait(function() return uv.now() - t0 >= duration_ms end, duration_ms + 1000)
attacking = false
wire.wait(function() return live == 0 end, 15000)
if #stats.other == 0 then stats.other = nil end
io.stdout:write(cjson.encode(stats), "\n")
