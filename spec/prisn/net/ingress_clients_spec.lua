-- prisn.net.ingress with real clients and servers: curl (--resolve, so the
-- Host is a name) and python3 backends (spec/prisn/net/ingress/backend.py:
-- http.server speaking HTTP/1.1, chunked uploads, a stdlib WebSocket echo
-- and client). The ingress runs in this process's loop; curl and python run
-- as children the loop waits for without blocking, killed by after_each.
local uv = require("luv")
local cjson = require("cjson")
local h = require("spec.prisn.net.ingress.harness")

local source_dir = os.getenv("PRISN_SOURCE_DIR") or "."
local BACKEND = source_dir .. "/spec/prisn/net/ingress/backend.py"

local function python_backend(name)
  local p = h.spawn({ "python3", BACKEND, name })
  assert(h.run_until(function() return p.output():match("PORT (%d+)") or p.exited end, 5000), "python did not start")
  local port = tonumber(p.output():match("PORT (%d+)"))
  assert(port, "python backend failed: " .. table.concat(p.stderr))
  return { id = name, host = "127.0.0.1", port = port }
end

local function curl(port, host, args)
  local cmd = { "curl", "-sS", "--max-time", "20", "--resolve", host .. ":" .. port .. ":127.0.0.1" }
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  local code, out, err = h.spawn(cmd).wait(25000)
  assert(code == 0, "curl failed (" .. tostring(code) .. "): " .. err)
  return out, err
end

local function sha256_of(path)
  local f = assert(io.popen("sha256sum " .. path))
  local sum = f:read("l"):match("^(%x+)")
  f:close()
  return sum
end

describe("prisn.net.ingress with curl and python3", function()
  local have = h.have("curl") and h.have("python3")
  before_each(h.before)
  after_each(h.after)

  it("routes curl --resolve by host and path and sets the X-Forwarded fields", function()
    if not have then return pending("curl or python3 is missing") end
    local a, b = python_backend("A"), python_backend("B")
    local ig = h.ingress()
    ig:set_routes({ { host = "api.test", key = "default/api", backends = { a } },
      { host = "api.test", path = "/v1", key = "default/v1", backends = { b } } })
    local port = ig:port()
    local base = "http://api.test:" .. port
    assert.are.equal("B /v1/users", curl(port, "api.test", { base .. "/v1/users" }))
    assert.are.equal("A /v10", curl(port, "api.test", { base .. "/v10" }))
    local seen = cjson.decode((curl(port, "api.test", { base .. "/headers" })))
    assert.are.equal("A", seen.backend)
    assert.are.equal("127.0.0.1", seen["x-forwarded-for"])
    assert.are.equal("http", seen["x-forwarded-proto"])
    assert.are.equal("api.test:" .. port, seen["x-forwarded-host"])
    local status = curl(port, "other.test", { "-o", "/dev/null", "-w", "%{http_code}",
      "http://other.test:" .. port .. "/" })
    assert.are.equal("404", status)
  end)

  it("keeps curl's connection and the backend's alive across requests", function()
    if not have then return pending("curl or python3 is missing") end
    local a = python_backend("A")
    local ig = h.ingress()
    ig:set_routes({ { host = "api.test", backends = { a } } })
    local base = "http://api.test:" .. ig:port()
    local out = curl(ig:port(), "api.test", { "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
      "-w", "%{http_code} %{num_connects}\n", base .. "/1", base .. "/2", base .. "/3" })
    assert.are.equal("200 1\n200 0\n200 0\n", out)
    local s = ig:stats()
    assert.are.equal(1, s.accepted)
    assert.are.equal(1, s.backends.A.connections)
    assert.are.equal(3, s.requests)
  end)

  it("answers curl -I (HEAD) with the length and no body", function()
    if not have then return pending("curl or python3 is missing") end
    local a = python_backend("A")
    local ig = h.ingress()
    ig:set_routes({ { host = "api.test", backends = { a } } })
    local out = curl(ig:port(), "api.test", { "-I", "http://api.test:" .. ig:port() .. "/bytes?n=12345" })
    assert.is_truthy(out:find("^HTTP/1.1 200 OK\r\n"), out)
    assert.is_truthy(out:find("content%-length: 12345\r\n"), out)
  end)

  it("streams a chunked upload and a large download intact", function()
    if not have then return pending("curl or python3 is missing") end
    local a = python_backend("A")
    local ig = h.ingress()
    ig:set_routes({ { host = "api.test", backends = { a } } })
    local file = os.tmpname()
    assert(os.execute("head -c 3145728 /dev/urandom > " .. file))
    local base = "http://api.test:" .. ig:port()
    local out = curl(ig:port(), "api.test", { "-H", "Transfer-Encoding: chunked", "--data-binary", "@" .. file,
      base .. "/upload" })
    assert.are.equal("len=3145728 sha256=" .. sha256_of(file), out)
    -- Content-Length upload of the same, with curl's Expect: 100-continue
    -- (curl waits a second for the 100 before sending anyway)
    local t0 = uv.hrtime()
    local trace
    out, trace = curl(ig:port(), "api.test", { "-v", "--data-binary", "@" .. file, base .. "/upload" })
    assert.are.equal("len=3145728 sha256=" .. sha256_of(file), out)
    assert.is_truthy(trace:find("> Expect: 100-continue", 1, true))
    assert.is_truthy(trace:find("< HTTP/1.1 100 Continue", 1, true))
    assert.is_true((uv.hrtime() - t0) / 1e6 < 900)
    os.remove(file)
    local size = curl(ig:port(), "api.test", { "-o", "/dev/null", "-w", "%{size_download}",
      base .. "/bytes?n=30000000" })
    assert.are.equal("30000000", size)
  end)

  it("passes a WebSocket through: python client, python echo server", function()
    if not have then return pending("curl or python3 is missing") end
    local a = python_backend("A")
    local ig = h.ingress()
    ig:set_routes({ { host = "ws.test", backends = { a } } })
    local code, out, err = h.spawn({ "python3", BACKEND, "--ws-client", tostring(ig:port()), "ws.test",
      "hello", ("long"):rep(20000) }).wait(15000)
    assert.are.equal(0, code, out .. err)
    assert.are.equal("hello\n" .. ("long"):rep(20000) .. "\nclosed\n", out)
    assert.is_truthy(h.run_until(function() return ig:in_flight("A") == 0 end))
  end)
end)
