-- prisn.net.ingress.exchange under hostile input: seeded mutations of valid
-- requests, split at random points, some clients closing midway. The
-- ingress must answer or close every one, report no bug (on_event "error"),
-- keep serving, and leave nothing open.
local uv = require("luv")
local h = require("spec.prisn.net.ingress.harness")

local SAMPLES = {
  "GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n",
  "POST /b HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello",
  "PUT /c HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  "GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
  "HEAD / HTTP/1.0\r\nHost: a.test\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
}

-- A mutation of s: bytes flipped, cut, duplicated or inserted.
local function mutate(s, rng)
  local kind = rng(5)
  local i = rng(#s)
  if kind == 1 then return s:sub(1, i - 1) .. string.char(rng(256) - 1) .. s:sub(i + 1) end
  if kind == 2 then return s:sub(1, i) end
  if kind == 3 then return s:sub(1, i) .. s:sub(i) end
  if kind == 4 then return s:sub(1, i) .. ("\r\n"):rep(rng(3)) .. s:sub(i + 1) end
  return s .. s
end

describe("prisn.net.ingress.exchange with hostile input", function()
  before_each(h.before)
  after_each(h.after)

  it("answers or closes every mangled request and goes on serving", function()
    local bugs = {}
    local b = h.backend({ id = "b" })
    local ig = h.ingress({ limits = { header_timeout_ms = 300, idle_timeout_ms = 300, backend_timeout_ms = 500,
      max_body_bytes = 1000 }, on_event = function(kind, a) if kind == "error" then bugs[#bugs + 1] = a end end })
    ig:set_routes({ { host = "a.test", backends = { b.spec() } } })
    local seed = tonumber(os.getenv("PRISN_FUZZ_SEED")) or 1234
    math.randomseed(seed)
    local rng = math.random
    local clients = {}
    for n = 1, 150 do
      local data = SAMPLES[rng(#SAMPLES)]
      for _ = 1, rng(3) do data = mutate(data, rng) end
      local c = h.client(ig:port())
      clients[n] = c
      local cut = rng(#data)
      c.send(data:sub(1, cut))
      if rng(4) > 1 then c.send(data:sub(cut + 1)) end
      if rng(6) == 1 then c.close() end
      if n % 10 == 0 then uv.run("nowait") end
    end
    -- every connection ends: answered and closed, or timed out
    assert.is_truthy(h.run_until(function() return ig:stats().active == 0 end, 10000),
      "open: " .. ig:stats().active .. " (seed " .. seed .. ")")
    assert.are.same({}, bugs)
    for _, c in ipairs(clients) do c.close() end
    assert.are.equal(200, h.request(ig:port(), SAMPLES[1]).status)
    assert.are.equal(0, ig:in_flight("b"))
  end)
end)
