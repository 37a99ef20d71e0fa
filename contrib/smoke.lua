-- The Lua part of the release smoke test (contrib/smoke.sh): run with
-- `prisn lua contrib/smoke.lua` by each release binary, it checks that the
-- embedded modules and the C libraries linked into it work on that platform.
-- Plain asserts, no busted: a static binary cannot load busted's C modules.
local checks = {}

local function check(name, fn)
  checks[#checks + 1] = { name = name, fn = fn }
end

check("cron: the next firing of a schedule", function()
  local cron = require("prisn.cron")
  local schedule = assert(cron.compile("*/5 * * * *", { tz = "UTC" }))
  local next_time = schedule:next(1700000000) -- 2023-11-14T22:13:20Z
  assert(next_time == 1700000100, "next firing " .. tostring(next_time))
end)

check("json: cjson round trip", function()
  local cjson = require("cjson")
  assert(cjson.decode(cjson.encode({ a = { 1, 2 } })).a[2] == 2)
end)

check("sqlite: a table in memory", function()
  local store = require("prisn.core.store")
  local db = assert(store.open(":memory:"))
  assert(db:exec("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (41), (1)"))
  local row = assert(db:first("SELECT sum(x) AS total FROM t"))
  assert(row.total == 42, "sum " .. tostring(row.total))
end)

check("libsodium: random bytes and BLAKE2b", function()
  local crypto = require("prisn.core.crypto")
  assert(#crypto.random_bytes(16) == 16)
  assert(crypto.to_hex(crypto.hash("prisn")):match("^%x+$"))
end)

check("luv: a timer fires on the loop", function()
  local uv = require("luv")
  local fired = false
  local timer = uv.new_timer()
  timer:start(1, 0, function() fired = true; timer:close() end)
  uv.run()
  assert(fired, "the timer fired")
end)

local failed = 0
for _, c in ipairs(checks) do
  local ok, err = pcall(c.fn)
  print(string.format("%s %s%s", ok and "ok  " or "FAIL", c.name, ok and "" or (": " .. tostring(err))))
  if not ok then failed = failed + 1 end
end
print(string.format("%d passed, %d failed", #checks - failed, failed))
os.exit(failed == 0 and 0 or 1)
