-- The API over HTTPS, from the outside and with other programs than prisn:
-- openssl s_client (protocol, chain, SNI, an old protocol refused), curl
-- (--cacert, a name the certificate lacks, plain http:// to the TLS port),
-- openssl x509 (the fingerprint the server reports is the CA's, the SANs),
-- and the CLI pinning the CA: a wrong fingerprint refused, an unpinned
-- https context refused, a host the certificate does not name refused.
-- Then --insecure-http (warned about) and a new --listen address (the
-- server certificate made again, the CA kept).
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

local function mode_of(path)
  return uv.fs_stat(path).mode & tonumber("777", 8)
end

local PATH_ENV = { PATH = "/usr/bin:/bin" }

local function curl(args)
  return h.run("/usr/bin/curl", args, { env = PATH_ENV })
end

local function openssl(args, stdin)
  return h.run("/usr/bin/openssl", args, { env = PATH_ENV, stdin = stdin or "", timeout_ms = 10000 })
end

local function info_of(env)
  return cjson.decode((assert(h.read(env.PRISN_HOME .. "/server.json"))))
end

describe("the API over HTTPS", function()
  local env, home, info, port, token
  local _, ok = h.cli(function() return env end)

  setup(function()
    env = h.env()
    home = env.PRISN_HOME
    ok({ "server", "start", "-q" })
    info = info_of(env)
    port = info.address:match(":(%d+)$")
    token = h.read(home .. "/admin.token"):gsub("%s+$", "")
  end)

  teardown(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("makes a CA and a server certificate, keys 0600, and reports the CA's fingerprint", function()
    assert.matches("^https://127%.0%.0%.1:%d+$", info.address)
    assert.equal(home .. "/ca.crt", info.ca_file)
    assert.equal(tonumber("600", 8), mode_of(home .. "/tls/ca.key"))
    assert.equal(tonumber("600", 8), mode_of(home .. "/tls/server.key"))
    assert.equal(h.read(home .. "/tls/ca.crt"), h.read(home .. "/ca.crt"))
    -- openssl agrees on the fingerprint
    local fp = openssl({ "x509", "-noout", "-fingerprint", "-sha256", "-in", home .. "/ca.crt" })
    assert.equal(0, fp.code, fp.stderr)
    local hex = fp.stdout:match("=([%x:]+)"):gsub(":", ""):lower()
    assert.equal(hex, info.ca_fingerprint)
    local status = ok({ "server", "status" }).stdout
    assert.matches("Ca fingerprint:%s+sha256:" .. hex, status)
    -- the server certificate: signed by the CA, for the loopback names and the host name
    local verify = openssl({ "verify", "-CAfile", home .. "/ca.crt", home .. "/tls/server.crt" })
    assert.equal(0, verify.code, verify.stdout .. verify.stderr)
    local sans = openssl({ "x509", "-noout", "-ext", "subjectAltName", "-in", home .. "/tls/server.crt" }).stdout
    for _, want in ipairs({ "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1",
      "DNS:" .. uv.os_gethostname() }) do
      assert.truthy(sans:find(want, 1, true), want .. " in " .. sans)
    end
  end)

  it("speaks TLS 1.2 to openssl s_client with the chain to the CA, by SNI name or address", function()
    for _, name in ipairs({ "localhost", "127.0.0.1" }) do
      local r = openssl({ "s_client", "-connect", "127.0.0.1:" .. port, "-servername", name,
        "-CAfile", home .. "/ca.crt", "-verify_hostname", name == "localhost" and name or "localhost",
        "-verify_return_error" }, "")
      assert.equal(0, r.code, r.stdout .. r.stderr)
      assert.matches("Protocol%s*: TLSv1%.2", r.stdout)
      assert.matches("Verify return code: 0 %(ok%)", r.stdout)
      assert.matches("0 s:CN = localhost\n%s+i:CN = prisn CA", r.stdout)
      assert.matches("1 s:CN = prisn CA\n%s+i:CN = prisn CA", r.stdout)
    end
    local old = openssl({ "s_client", "-connect", "127.0.0.1:" .. port, "-tls1_1" }, "")
    assert.are_not.equal(0, old.code)
    assert.matches("alert protocol version", old.stderr)
    assert.matches("TLS handshake from 127%.0%.0%.1 failed: EPROTOVERSION", h.read(home .. "/server.log"))
  end)

  it("answers curl --cacert, refuses a name the certificate lacks, and tells plain http what to do", function()
    for _, host in ipairs({ "127.0.0.1", "localhost" }) do
      local r = curl({ "-s", "--cacert", home .. "/ca.crt", "https://" .. host .. ":" .. port .. "/health" })
      assert.equal(0, r.code, r.stderr)
      assert.same({ status = "ok" }, cjson.decode(r.stdout))
    end
    local untrusted = curl({ "-sS", "https://127.0.0.1:" .. port .. "/health" })
    assert.equal(60, untrusted.code) -- curl: peer certificate cannot be authenticated
    local wrong_name = curl({ "-sS", "--cacert", home .. "/ca.crt", "--resolve", "api.example.com:" .. port
      .. ":127.0.0.1", "https://api.example.com:" .. port .. "/health" })
    assert.equal(60, wrong_name.code)
    assert.matches("api%.example%.com", wrong_name.stderr)
    local plain = curl({ "-s", "-w", "\n%{http_code}", "http://127.0.0.1:" .. port .. "/health" })
    assert.equal("This port speaks HTTPS: use https:// instead.\n\n400", plain.stdout)
  end)

  it("pins the CA in contexts and refuses a wrong fingerprint, a missing one, a host not named", function()
    local client = h.env()
    local function on_client(args, extra)
      local e = {}
      for k, v in pairs(client) do e[k] = v end
      for k, v in pairs(extra or {}) do e[k] = v end
      return h.prisn(args, { env = e })
    end
    local wrong = on_client({ "context", "add", "bad", "--server", info.address .. "#sha256=" .. ("0"):rep(64),
      "--token", token })
    assert.equal(1, wrong.code)
    assert.equal("Error: " .. info.address .. ": no certificate of the server matches the pinned SHA-256 "
      .. "fingerprint\n", wrong.stderr:match("^[^\n]*\n"))
    assert.matches("\nHint: the server's CA is not the one this context pins", wrong.stderr)
    assert.is_nil(h.read(client.PRISN_HOME .. "/contexts.json"))

    local unpinned = on_client({ "context", "add", "bare", "--server", info.address, "--token", token })
    assert.equal(2, unpinned.code)
    assert.matches("^Error: " .. info.address:gsub("%p", "%%%0") .. " speaks HTTPS and no CA fingerprint",
      unpinned.stderr)
    assert.matches("\nHint: on the server, 'prisn server status'", unpinned.stderr)

    local good = on_client({ "context", "add", "prod", "--server", info.address .. "#sha256=" .. info.ca_fingerprint,
      "--token", token })
    assert.equal(0, good.code, good.stderr)
    assert.equal(0, on_client({ "status", "--context", "prod" }).code)
    local saved = cjson.decode(h.read(client.PRISN_HOME .. "/contexts.json")).contexts.prod
    assert.same({ info.address, info.ca_fingerprint }, { saved.server, saved.fingerprint })
    local via_ca = on_client({ "context", "add", "byca", "--server", "https://localhost:" .. port, "--ca",
      home .. "/ca.crt", "--token", token })
    assert.equal(0, via_ca.code, via_ca.stderr)
    assert.equal(0, on_client({ "status", "--context", "byca" }).code)

    -- PRISN_SERVER: pinned by its #sha256=, refused with another
    local env_ok = on_client({ "status" }, { PRISN_SERVER = info.address .. "#sha256=" .. info.ca_fingerprint,
      PRISN_TOKEN = token })
    assert.equal(0, env_ok.code, env_ok.stderr)
    local env_bad = on_client({ "status" }, { PRISN_SERVER = info.address .. "#sha256=" .. ("ab"):rep(32),
      PRISN_TOKEN = token })
    assert.equal(1, env_bad.code)
    assert.matches("^Error: cannot trust the prisn server at " .. info.address:gsub("%p", "%%%0"), env_bad.stderr)
  end)

  it("warns about --insecure-http, on stderr and in the log, and serves plain HTTP then", function()
    local plain_env = h.env()
    local r = h.prisn({ "server", "start", "--insecure-http" }, { env = plain_env })
    local ok_start, err = pcall(function()
      assert.equal(0, r.code, r.stderr)
      assert.matches("Warning: the TCP API speaks plain HTTP %(%-%-insecure%-http%)", r.stderr)
      local plain_info = info_of(plain_env)
      assert.matches("^http://127%.0%.0%.1:%d+$", plain_info.address)
      assert.is_nil(plain_info.ca_fingerprint)
      assert.matches("WARN.*plain HTTP %(%-%-insecure%-http%)", h.read(plain_env.PRISN_HOME .. "/server.log"))
      local health = curl({ "-s", plain_info.address .. "/health" })
      assert.same({ status = "ok" }, cjson.decode(health.stdout))
      assert.matches("Ca fingerprint:%s+none %(plain HTTP%)",
        h.prisn({ "server", "status" }, { env = plain_env }).stdout)
    end)
    h.stop_server(plain_env)
    assert(ok_start, err)
  end)

  it("makes the server certificate again for a new --listen address, keeping the CA", function()
    local other = h.env()
    local first = h.prisn({ "server", "start", "-q" }, { env = other })
    assert.equal(0, first.code, first.stderr)
    local before = info_of(other)
    h.stop_server(other)
    local wide_port = h.free_port()
    local again = h.prisn({ "server", "start", "-q", "--listen", "0.0.0.0:" .. wide_port }, { env = other })
    local ok_run, err = pcall(function()
      assert.equal(0, again.code, again.stderr)
      local after = info_of(other)
      assert.equal(before.ca_fingerprint, after.ca_fingerprint)
      assert.matches("TLS: made a new server certificate %(it does not name", h.read(other.PRISN_HOME .. "/server.log"))
      -- 127.0.0.2 reaches the wildcard listener but is no name of the certificate
      local otoken = h.read(other.PRISN_HOME .. "/admin.token"):gsub("%s+$", "")
      local mismatch = h.prisn({ "context", "add", "x", "--server", "https://127.0.0.2:" .. wide_port .. "#sha256="
        .. after.ca_fingerprint, "--token", otoken }, { env = h.env() })
      assert.equal(1, mismatch.code)
      assert.matches("^Error: https://127%.0%.0%.2:%d+: hostname mismatch: the certificate is not valid for "
        .. "127%.0%.0%.2", mismatch.stderr)
      local fine = h.prisn({ "context", "add", "x", "--server", "https://127.0.0.1:" .. wide_port .. "#sha256="
        .. after.ca_fingerprint, "--token", otoken }, { env = h.env() })
      assert.equal(0, fine.code, fine.stderr)
    end)
    h.stop_server(other)
    assert(ok_run, err)
  end)
end)
