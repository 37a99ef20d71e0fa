-- prisn.net.tls: certificates, and full handshakes between a Lua client and
-- a Lua server over real loopback luv sockets (127.0.0.1, port 0). Each test
-- drives the loop until what it waits for happens and closes every handle it
-- opened; after_each asserts nothing is left open.
local uv = require("luv")
local support = require("support")
local tls = require("prisn.net.tls")

local handles

local function track(h)
  handles[#handles + 1] = h
  return h
end

-- Handshakes under ASan are slow: 5 s by default.
local function run_until(cond, ms) return support.run_until(cond, ms or 5000) end

-- One CA and a leaf for the names the tests connect to, made once.
local CA = assert(tls.new_ca())
local LEAF = assert(tls.new_leaf({ "localhost", "127.0.0.1", "*.apps.test" }, CA))
local function pair_of(p) return assert(tls.load_pair(p.cert .. CA.cert, p.key)) end

-- An echo server over TLS: every connection's errors go to s.errors.
local function echo_server(ctx, opts)
  local s = { errors = {}, names = {}, streams = {} }
  local server = track(uv.new_tcp())
  assert(server:bind("127.0.0.1", 0))
  assert(server:listen(64, function()
    local c = track(uv.new_tcp())
    server:accept(c)
    local stream = tls.wrap(c, ctx, { handshake_timeout_ms = opts and opts.timeout,
      on_error = function(msg, code) s.errors[#s.errors + 1] = { msg = msg, code = code } end,
      on_ready = function(st) s.names[#s.names + 1] = st:server_name() or "" end })
    s.streams[#s.streams + 1] = stream
    stream:read_start(function(err, data)
      if err or not data then return stream:close() end
      stream:write("echo:" .. data)
    end)
  end))
  s.port = server:getsockname().port
  return s
end

-- A client: connects, wraps with ctx, writes `message` once ready. Returns
-- a table that fills in: ready, got, err, code, eof, stream.
local function tls_client(port, ctx, message)
  local r = { got = "" }
  local c = track(uv.new_tcp())
  c:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    r.stream = tls.wrap(c, ctx, {
      on_ready = function() r.ready = true end,
      on_error = function(msg, code) r.err, r.code = msg, code end })
    r.stream:read_start(function(err2, data)
      if err2 then r.err = r.err or err2 return end
      if not data then r.eof = true return end
      r.got = r.got .. data
    end)
    if message then r.stream:write(message) end
  end)
  return r
end

local function plain_client(port, bytes)
  local r = { got = "" }
  local c = track(uv.new_tcp())
  c:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    if bytes then c:write(bytes) end
    c:read_start(function(_, data)
      if not data then r.eof = true c:close() return end
      r.got = r.got .. data
    end)
  end)
  return r
end

local function client_ctx(opts)
  return assert(tls.client_context(opts))
end

describe("prisn.net.tls", function()
  before_each(function() handles = {} end)
  after_each(function()
    for _, h in ipairs(handles) do
      if not h:is_closing() then h:close() end
    end
    uv.run("nowait")
    local open = 0
    uv.walk(function(h) if not h:is_closing() then open = open + 1 end end)
    assert.equal(0, open)
  end)

  describe("certificates", function()
    it("makes a CA of ten years and a signed leaf of one with its SANs", function()
      local ca, leaf = tls.cert_info(CA.cert), tls.cert_info(LEAF.cert)
      assert.is_true(ca.ca)
      assert.is_true(ca.self_signed)
      assert.equal("CN=prisn CA", ca.subject)
      assert.near(3650, (ca.not_after - os.time()) / 86400, 1)
      assert.is_false(leaf.ca)
      assert.is_false(leaf.self_signed)
      assert.equal("CN=prisn CA", leaf.issuer)
      assert.equal("CN=localhost", leaf.subject)
      assert.same({ "localhost", "127.0.0.1", "*.apps.test" }, leaf.sans)
      assert.near(365, (leaf.not_after - os.time()) / 86400, 1)
      assert.matches("^%x+$", leaf.fingerprint)
      assert.equal(64, #leaf.fingerprint)
      assert.is_true(tls.covers(leaf, "LOCALHOST"))
      assert.is_false(tls.covers(leaf, "example.com"))
    end)

    it("makes a self-signed leaf for a host name", function()
      local p = assert(tls.new_leaf({ "api.example.com" }))
      local info = tls.cert_info(p.cert)
      assert.is_true(info.self_signed)
      assert.is_false(info.ca)
      assert.same({ "api.example.com" }, info.sans)
    end)

    it("refuses a key that is not the certificate's and text that is no certificate", function()
      local other = assert(tls.new_leaf({ "x.test" }))
      local pair, err, code = tls.load_pair(LEAF.cert, other.key)
      assert.is_nil(pair)
      assert.equal("EINVAL", code)
      assert.matches("does not belong", err)
      assert.is_nil(tls.cert_info("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"))
      assert.is_nil((tls.new_leaf({ "a,b" })))
    end)

    it("normalizes fingerprints and refuses what is not one", function()
      local fp = tls.cert_info(CA.cert).fingerprint
      local colons = fp:upper():gsub("(%x%x)", "%1:"):sub(1, -2)
      assert.equal(fp, tls.normalize_fingerprint(colons))
      assert.is_nil(tls.normalize_fingerprint("abc"))
      local ctx, err, code = tls.client_context{ fingerprint = "zz" }
      assert.is_nil(ctx)
      assert.equal("EINVAL", code)
      assert.matches("not a SHA%-256 fingerprint", err)
      assert.equal("ENOTRUST", select(3, tls.client_context{ host = "x" }))
    end)
  end)

  describe("handshakes over loopback", function()
    local server_ctx
    before_each(function()
      server_ctx = tls.server_context{ default = pair_of(LEAF) }
    end)

    it("carries data both ways after a TLS 1.2 handshake verified against the CA", function()
      local s = echo_server(server_ctx)
      local r = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "localhost" }, "ping")
      assert.is_true(run_until(function() return r.got == "echo:ping" end))
      assert.is_true(r.ready)
      assert.equal("TLSv1.2", r.stream:protocol())
      assert.equal(tls.cert_info(LEAF.cert).fingerprint, r.stream:peer_fingerprint())
      assert.same({ "localhost" }, s.names)
      r.stream:close()
    end)

    it("matches IP address SANs and wildcard names", function()
      local s = echo_server(server_ctx)
      local a = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "127.0.0.1" }, "a")
      local b = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "web.apps.test" }, "b")
      local c = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "a.b.apps.test" }, "c")
      assert.is_true(run_until(function() return a.got == "echo:a" and b.got == "echo:b" and c.code ~= nil end))
      assert.equal("EHOSTMISMATCH", c.code)
      table.sort(s.names)
      -- an IP address is not sent as SNI; the server finished c's handshake, c refused
      assert.same({ "", "a.b.apps.test", "web.apps.test" }, s.names)
    end)

    it("chooses the certificate by SNI", function()
      local other = assert(tls.new_leaf({ "b.test" }, CA))
      local other_pair = pair_of(other)
      local asked = {}
      local ctx = tls.server_context{ default = pair_of(LEAF), sni = function(name)
        asked[#asked + 1] = name
        if name == "b.test" then return other_pair end
      end }
      local s = echo_server(ctx)
      local b = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "b.test" }, "x")
      local d = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "localhost" }, "y")
      assert.is_true(run_until(function() return b.got == "echo:x" and d.got == "echo:y" end))
      assert.equal(tls.cert_info(other.cert).fingerprint, b.stream:peer_fingerprint())
      assert.equal(tls.cert_info(LEAF.cert).fingerprint, d.stream:peer_fingerprint())
      table.sort(asked)
      assert.same({ "b.test", "localhost" }, asked)
    end)

    it("refuses the handshake when the SNI function raises, and goes on serving", function()
      local ctx = tls.server_context{ sni = function(name) error("no pair for " .. name) end }
      local s = echo_server(ctx)
      local r = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "boom.test" }, "x")
      assert.is_true(run_until(function() return r.code ~= nil and #s.errors == 1 end))
      assert.equal("ESNI", s.errors[1].code)
      assert.matches("the SNI callback failed: .*no pair for boom%.test", s.errors[1].msg)
    end)

    it("refuses a name without a certificate when there is no default", function()
      local ctx = tls.server_context{ sni = function() return nil end }
      local s = echo_server(ctx)
      local r = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "nobody.test" }, "x")
      assert.is_true(run_until(function() return r.code ~= nil and #s.errors == 1 end))
      assert.equal("ENOCERT", s.errors[1].code)
      assert.equal("no certificate for server name 'nobody.test'", s.errors[1].msg:gsub("^ENOCERT: ", ""))
      assert.equal("EPEERALERT", r.code)
    end)

    it("refuses an expired certificate", function()
      local now = os.time()
      local old = assert(tls.new_leaf({ "localhost" }, CA,
        { not_before = now - 10 * 86400, not_after = now - 86400 }))
      local s = echo_server(tls.server_context{ default = pair_of(old) })
      local r = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "localhost" }, "x")
      assert.is_true(run_until(function() return r.code ~= nil end))
      assert.equal("ECERTEXPIRED", r.code)
      assert.equal("ECERTEXPIRED: certificate has expired", r.err)
      assert.equal("", r.got)
    end)

    it("refuses a certificate of another CA, and a host the certificate does not name", function()
      local s = echo_server(server_ctx)
      local other_ca = assert(tls.new_ca())
      local r = tls_client(s.port, client_ctx{ ca_pem = other_ca.cert, host = "localhost" }, "x")
      local m = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "example.com" }, "x")
      assert.is_true(run_until(function() return r.code ~= nil and m.code ~= nil end))
      assert.equal("EUNKNOWNCA: certificate signed by an unknown CA", r.err)
      assert.equal("EHOSTMISMATCH: hostname mismatch: the certificate is not valid for example.com", m.err)
      assert.equal("", r.got .. m.got)
    end)

    it("accepts a pinned CA or leaf fingerprint and refuses another", function()
      local s = echo_server(server_ctx)
      local ca_pin = tls_client(s.port, client_ctx{ fingerprint = tls.cert_info(CA.cert).fingerprint,
        host = "localhost" }, "a")
      local leaf_pin = tls_client(s.port, client_ctx{ fingerprint = tls.cert_info(LEAF.cert).fingerprint,
        host = "localhost" }, "b")
      local wrong = tls_client(s.port, client_ctx{ fingerprint = string.rep("0", 64), host = "localhost" }, "c")
      assert.is_true(run_until(function()
        return ca_pin.got == "echo:a" and leaf_pin.got == "echo:b" and wrong.code ~= nil
      end))
      assert.equal("EPINMISMATCH", wrong.code)
    end)

    it("closes on garbage instead of a ClientHello, and answers plain HTTP with a hint", function()
      local s = echo_server(server_ctx)
      local junk = plain_client(s.port, string.rep("\22\3\1\0\5garbage", 50))
      local http = plain_client(s.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.is_true(run_until(function() return junk.eof and http.eof end))
      assert.matches("^HTTP/1.1 400", http.got)
      assert.matches("use https://", http.got)
      assert.equal(2, #s.errors)
      -- the server still serves
      local r = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "localhost" }, "ok")
      assert.is_true(run_until(function() return r.got == "echo:ok" end))
    end)

    it("gives up on a handshake that stalls", function()
      local s = echo_server(server_ctx, { timeout = 100 })
      local idle = plain_client(s.port, nil)
      assert.is_true(run_until(function() return idle.eof end))
      assert.equal("ETIMEDOUT", s.errors[1].code)
    end)

    it("holds what arrives while reading is stopped, and hands it over on a later turn", function()
      local s = echo_server(server_ctx)
      local r = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "localhost" })
      assert.is_true(run_until(function() return r.ready end))
      local cb = r.stream.read_cb
      r.stream:read_stop()
      r.stream:write("held")
      local t0 = uv.hrtime()
      run_until(function() return uv.hrtime() - t0 > 200e6 end, 300)
      assert.equal("", r.got)
      r.stream:read_start(cb)
      assert.equal("", r.got) -- not inside read_start
      assert.is_true(run_until(function() return r.got == "echo:held" end))
      r.stream:close()
    end)

    it("shuts down with close_notify: the peer reads the end of the stream", function()
      local s = echo_server(server_ctx)
      local r = tls_client(s.port, client_ctx{ ca_pem = CA.cert, host = "localhost" })
      assert.is_true(run_until(function() return r.ready end))
      assert.equal(3, r.stream:try_write("bye"))
      r.stream:shutdown()
      assert.is_true(run_until(function() return r.got == "echo:bye" end))
      assert.is_true(run_until(function() return #s.streams == 1 and s.streams[1]:is_closing() end))
      r.stream:close()
    end)
  end)

  it("survives random bytes fed to a server session", function()
    local ctx = tls.server_context{ default = pair_of(LEAF) }
    math.randomseed(15)
    for _ = 1, 300 do
      local session = ctx.config:session()
      for _ = 1, math.random(1, 4) do
        local n = math.random(1, 600)
        local bytes = {}
        for i = 1, n do bytes[i] = string.char(math.random(0, 255)) end
        -- sometimes a valid record header first, so the parser goes deeper
        local chunk = (math.random() < 0.5 and "\22\3\3" .. string.char(0, math.min(n, 255)) or "")
          .. table.concat(bytes)
        session:feed(chunk)
        local ok = session:handshake()
        assert.is_not_true(ok)
        if ok == nil then break end
      end
      session:close()
    end
  end)
end)
