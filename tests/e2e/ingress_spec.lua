-- The ingress against a real server (--ingress, --ingress-tls) with real
-- clients: curl --resolve by host name and path, 404 for an unknown host,
-- 503 for a deployment scaled to 0, a WebSocket echo (python3, raw frames),
-- a rolling update under load with no failed request, HTTPS with SNI
-- (openssl s_client, curl --cacert) from a self-signed certificate, files
-- (reloaded when they change) and a secret, the 409s of host ownership
-- (another namespace's token, the same route twice, a race), a view token,
-- and bad values from flags, the API and a manifest.
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

-- Answers every GET with its instance, path and the forwarded headers; a
-- WebSocket upgrade on /ws with a raw echo of text frames (RFC 6455).
local APP = [[
import base64, hashlib, http.server, os, socket, struct, time
VERSION = os.environ.get("VERSION", "v1")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if self.path == "/slow":
            time.sleep(2)
        body = ("%s %s %s %s xff=%s proto=%s fhost=%s\n" % (VERSION, os.environ["PRISN_INSTANCE"], self.path,
            self.headers.get("Host"), self.headers.get("X-Forwarded-For"), self.headers.get("X-Forwarded-Proto"),
            self.headers.get("X-Forwarded-Host"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            n = head[1] & 0x7f
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            if head[0] & 0x0f == 8:
                return
            reply = ("echo " + data.decode()).encode()
            self.wfile.write(bytes([0x81, len(reply)]) + reply)
            self.wfile.flush()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
]]

-- A WebSocket client through the ingress: handshake, two masked text frames,
-- prints what came back.
local WS_CLIENT = [[
import base64, os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key)).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print(head.split(b"\r\n")[0].decode())
for text in ("hello", "again"):
    data = text.encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
    frame = s.recv(2)
    print(s.recv(frame[1]).decode())
s.sendall(bytes([0x88, 0x80]) + os.urandom(4))
]]

-- Requests through the ingress on kept-alive connections until STOP exists;
-- then prints "ok N failed M" and the versions seen.
local LOAD = [[
import http.client, os, sys, time
host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok = failed = 0
seen = set()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
while not os.path.exists(stop):
    try:
        conn.request("GET", "/load", headers={"Host": host})
        r = conn.getresponse()
        body = r.read().decode()
        if r.status == 200:
            ok += 1
            seen.add(body.split()[0])
        else:
            failed += 1
            print("status", r.status, body.strip(), flush=True)
    except Exception as e:
        failed += 1
        print("error", repr(e), flush=True)
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    time.sleep(0.005)
print("ok", ok, "failed", failed, "seen", ",".join(sorted(seen)), flush=True)
]]

describe("e2e: the ingress", function()
  local env, dir, http_port, https_port, home
  local prisn, ok, json = h.cli(function() return env end)

  local function curl(args)
    local r = h.run("/usr/bin/curl", args, { env = { PATH = "/usr/bin:/bin" }, timeout_ms = 30000 })
    return r
  end

  -- GET http(s)://HOST:PORT/PATH through the ingress, as curl --resolve
  -- does it; returns status and body.
  local function get(host, path, opts)
    opts = opts or {}
    local port = opts.https and https_port or http_port
    local args = { "-s", "--max-time", "15", "-o", "-", "-w", "\n%{http_code}", "--resolve",
      host .. ":" .. port .. ":127.0.0.1" }
    if opts.cacert then args[#args + 1] = "--cacert"; args[#args + 1] = opts.cacert end
    args[#args + 1] = (opts.https and "https://" or "http://") .. host .. ":" .. port .. path
    local r = curl(args)
    local body, status = r.stdout:match("^(.*)\n(%d+)$")
    return tonumber(status), body, r
  end

  -- An API call over the unix socket with `token`.
  local function api(method, path, token, body)
    local args = { "-s", "--unix-socket", home .. "/prisn.sock", "-o", "-", "-w", "\n%{http_code}", "-X", method,
      "-H", "Authorization: Bearer " .. token }
    if body then
      args[#args + 1] = "-H"; args[#args + 1] = "Content-Type: application/json"
      args[#args + 1] = "--data-binary"; args[#args + 1] = cjson.encode(body)
    end
    args[#args + 1] = "http://prisn" .. path
    local r = curl(args)
    local text, status = r.stdout:match("^(.*)\n(%d+)$")
    local decoded_ok, decoded = pcall(cjson.decode, text or "")
    return tonumber(status), decoded_ok and decoded or text
  end

  local function token(name, role, ns)
    return json({ "token", "create", name, "--role", role, "--namespace", ns, "-o", "json" }).token
  end

  local function upload(tok)
    local blob, hash = require("prisn.bundle").pack(dir)
    h.write(dir .. ".bundle", blob)
    local r = curl({ "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--unix-socket",
      home .. "/prisn.sock", "-H", "Authorization: Bearer " .. tok, "--data-binary", "@" .. dir .. ".bundle",
      "http://prisn/api/v1/bundles/" .. hash })
    assert.matches("^20[01]$", r.stdout)
    return hash
  end

  local function deploy(name, ...)
    return ok({ "deploy", dir .. "/app.py", "--name", name, "--isolation", "0", ... })
  end

  setup(function()
    env = h.env({ PRISN_INGRESS_CERT_POLL_MS = "200" })
    home = env.PRISN_HOME
    dir = h.tempdir("prisn-ingress")
    assert(uv.fs_chmod(dir, tonumber("755", 8)))
    h.write(dir .. "/app.py", APP)
    http_port, https_port = h.free_port(), h.free_port()
    ok({ "server", "start", "-q", "--dns", "off", "--ingress", "127.0.0.1:" .. http_port,
      "--ingress-tls", "127.0.0.1:" .. https_port })
  end)

  teardown(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("routes by host name and longest path prefix, 404 for an unknown host, with forwarded headers", function()
    local out = deploy("api", "--host", "API.example.com", "--path", "/v1/", "-r", "2").stdout
    assert.equal(string.format("deployment api: revision 1 serving, 2/2 ready at https://api.example.com:%d/v1\n",
      https_port), out)
    deploy("site", "--host", "api.example.com")
    local status, body = get("api.example.com", "/v1/users")
    assert.equal(200, status)
    assert.matches("^v1 api%-%d /v1/users api%.example%.com:" .. http_port
      .. " xff=127%.0%.0%.1 proto=http fhost=api%.example%.com:" .. http_port .. "\n$", body)
    assert.matches("^v1 api%-%d /v1 ", select(2, get("api.example.com", "/v1")))
    -- /v10 is not under /v1: the site at / takes it.
    assert.matches("^v1 site%-1 /v10 ", select(2, get("api.example.com", "/v10")))
    assert.matches("^v1 site%-1 / ", select(2, get("API.EXAMPLE.COM", "/")))
    local nf_status, nf_body = get("unknown.example.com", "/")
    assert.equal(404, nf_status)
    assert.matches("no route", nf_body)
    -- get and describe show the route and the URL.
    local list = prisn({ "get", "deploy" }).stdout
    assert.matches("api%.example%.com/v1", list)
    local d = json({ "get", "deploy", "api", "-o", "json" })
    assert.same({ "api.example.com", "/v1", string.format("https://api.example.com:%d/v1", https_port) },
      { d.hostname, d.path, d.url })
    assert.matches("Hostname:%s+api%.example%.com\n", ok({ "describe", "deploy", "api" }).stdout)
    assert.matches(string.format("Ingress:%%s+http 127%%.0%%.0%%.1:%d, https 127%%.0%%.0%%.1:%d\n", http_port,
      https_port), ok({ "server", "status" }).stdout)
    -- One access line a request in the server's log, and metrics per host.
    assert.is_true(h.wait_for(function()
      return (h.read(home .. "/server.log") or ""):find("ingress GET unknown.example.com/ 404 ", 1, true) ~= nil
    end, 5000))
    assert.matches("ingress GET api%.example%.com/v1/users 200 %d+B %d+ms 127%.0%.0%.1 default/api default/api%-%d",
      h.read(home .. "/server.log"))
    local admin = (h.read(home .. "/admin.token"):gsub("%s+$", ""))
    local metrics = curl({ "-s", "--unix-socket", home .. "/prisn.sock", "-H", "Authorization: Bearer " .. admin,
      "http://prisn/metrics" }).stdout
    assert.matches('prisn_ingress_requests_total{host="api.example.com",class="2xx"} ', metrics, 1, true)
    ok({ "delete", "deploy", "api", "--yes" })
    ok({ "delete", "deploy", "site", "--yes" })
    assert.equal(404, (get("api.example.com", "/v1")))
  end)

  it("answers 503 while a deployment is scaled to 0 and serves again once scaled back", function()
    deploy("zero", "--host", "zero.example.com")
    assert.equal(200, (get("zero.example.com", "/")))
    ok({ "scale", "zero", "0" })
    assert.is_true(h.wait_for(function() return json({ "get", "deploy", "zero", "-o", "json" }).ready == 0 end))
    local status, body = get("zero.example.com", "/")
    assert.equal(503, status)
    assert.is_true(#body < 200)
    ok({ "scale", "zero", "1" })
    assert.is_true(h.wait_for(function() return (get("zero.example.com", "/")) == 200 end, 15000))
    ok({ "delete", "deploy", "zero", "--yes" })
  end)

  it("passes a WebSocket through both ways", function()
    deploy("ws", "--host", "ws.example.com")
    local client = h.write(dir .. "/ws_client.py", WS_CLIENT)
    local r = h.run("/usr/bin/python3", { client, "ws.example.com", tostring(http_port) },
      { env = { PATH = "/usr/bin:/bin" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("HTTP/1.1 101 Switching Protocols\necho hello\necho again\n", r.stdout)
    ok({ "delete", "deploy", "ws", "--yes" })
  end)

  it("rolls a deployment over under load with no failed request", function()
    deploy("roll", "--host", "roll.example.com", "-r", "2", "--health", "http:/health", "-e", "VERSION=v1")
    local stop = dir .. "/stop-load"
    local out = {}
    local stdout = uv.new_pipe(false)
    local exited = false
    local load_proc = uv.spawn("/usr/bin/python3", { args = { h.write(dir .. "/load.py", LOAD), "roll.example.com",
      tostring(http_port), stop }, stdio = { nil, stdout, nil } }, function() exited = true end)
    stdout:read_start(function(_, data) if data then out[#out + 1] = data end end)
    h.sleep(500)
    deploy("roll", "-e", "VERSION=v2")
    h.sleep(500)
    h.write(stop, "")
    assert.is_true(h.wait_for(function() return exited end, 15000))
    load_proc:close()
    if not stdout:is_closing() then stdout:close() end
    uv.run("nowait")
    local text = table.concat(out)
    local n, failed, seen = text:match("ok (%d+) failed (%d+) seen (%S+)")
    assert(n, text)
    assert.equal("0", failed, text)
    assert.equal("v1,v2", seen, text)
    assert.is_true(tonumber(n) > 20, text)
    print(string.format("ingress rolling update: %s requests, %s failed", n, failed))
    ok({ "delete", "deploy", "roll", "--yes" })
  end)

  it("lets a draining instance finish its request in flight before it is stopped", function()
    deploy("slow", "--host", "slow.example.com", "-e", "VERSION=v1")
    local out, exited = {}, false
    local pipe = uv.new_pipe(false)
    local handle
    handle = uv.spawn("/usr/bin/curl", { args = { "-s", "--max-time", "20", "-w", "\n%{http_code}", "--resolve",
      "slow.example.com:" .. http_port .. ":127.0.0.1", "http://slow.example.com:" .. http_port .. "/slow" },
      stdio = { nil, pipe, nil } }, function() handle:close(); exited = true end)
    pipe:read_start(function(_, data) if data then out[#out + 1] = data else pipe:close() end end)
    h.sleep(300)
    -- The new revision replaces slow-1 while its request is in flight.
    deploy("slow", "-e", "VERSION=v2")
    assert.is_true(h.wait_for(function() return exited and pipe:is_closing() end, 20000))
    assert.matches("^v1 slow%-1 /slow .*\n200$", table.concat(out))
    ok({ "delete", "deploy", "slow", "--yes" })
  end)

  it("serves HTTPS with SNI: self-signed, from files (reloaded when they change) and from a secret", function()
    deploy("tls", "--host", "tls.example.com")
    -- self-signed, kept in PRISN_HOME and marked so
    local status = get("tls.example.com", "/", { https = true })
    assert.is_nil(status == 200 or nil, "an untrusted self-signed certificate must fail without --cacert")
    local d = json({ "get", "deploy", "tls", "-o", "json" })
    assert.same({ "self-signed", true, "CN=tls.example.com" }, { d.tls.source, d.tls.self_signed, d.tls.subject })
    assert.matches("Tls:%s+self%-signed, CN=tls%.example%.com until %d+%-%d+%-%d+T[%d:]+Z\n",
      ok({ "describe", "deploy", "tls" }).stdout)
    local self_signed = home .. "/tls/ingress/tls.example.com.crt"
    local body
    status, body = get("tls.example.com", "/", { https = true, cacert = self_signed })
    assert.equal(200, status)
    assert.matches(" proto=https ", body)
    local s_client = h.run("/usr/bin/openssl", { "s_client", "-connect", "127.0.0.1:" .. https_port, "-servername",
      "tls.example.com" }, { env = { PATH = "/usr/bin:/bin" }, stdin = "" })
    assert.matches("subject=CN ?= ?tls%.example%.com", s_client.stdout)
    assert.matches("Protocol%s*: TLSv1%.2", s_client.stdout)
    -- files: two certificates for the name, the second copied over the first
    local function make(n)
      local r = h.run("/usr/bin/openssl", { "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", dir .. "/k" .. n .. ".pem", "-out", dir .. "/c" .. n .. ".pem", "-days", "30", "-subj",
        "/CN=tls-file-" .. n, "-addext", "subjectAltName=DNS:tls.example.com" }, { env = { PATH = "/usr/bin:/bin" } })
      assert.equal(0, r.code, r.stderr)
    end
    make(1); make(2)
    local cert, key = dir .. "/live.crt", dir .. "/live.key"
    h.write(cert, h.read(dir .. "/c1.pem")); h.write(key, h.read(dir .. "/k1.pem"))
    deploy("tls", "--tls-cert", cert, "--tls-key", key)
    assert.equal(200, (get("tls.example.com", "/", { https = true, cacert = dir .. "/c1.pem" })))
    h.write(cert, h.read(dir .. "/c2.pem")); h.write(key, h.read(dir .. "/k2.pem"))
    assert.is_true(h.wait_for(function()
      return (get("tls.example.com", "/", { https = true, cacert = dir .. "/c2.pem" })) == 200
    end, 5000), "the changed files were not served")
    assert.matches("Tls:%s+file, CN=tls%-file%-2 until ", ok({ "describe", "deploy", "tls" }).stdout)
    -- a secret of the namespace
    ok({ "secret", "set", "tls-cert", "--from-file", "TLS_CERT=" .. dir .. "/c1.pem", "--from-file",
      "TLS_KEY=" .. dir .. "/k1.pem" })
    deploy("tls", "--tls-secret", "tls-cert")
    assert.is_true(h.wait_for(function()
      return (get("tls.example.com", "/", { https = true, cacert = dir .. "/c1.pem" })) == 200
    end, 5000))
    d = json({ "get", "deploy", "tls", "-o", "json" })
    assert.same({ "secret", "tls-cert", "CN=tls-file-1" }, { d.tls.source, d.tls.secret, d.tls.subject })
    -- the secret changed: served within the poll
    ok({ "secret", "set", "tls-cert", "--from-file", "TLS_CERT=" .. dir .. "/c2.pem", "--from-file",
      "TLS_KEY=" .. dir .. "/k2.pem" })
    assert.is_true(h.wait_for(function()
      return (get("tls.example.com", "/", { https = true, cacert = dir .. "/c2.pem" })) == 200
    end, 5000), "the changed secret was not served")
    ok({ "delete", "deploy", "tls", "--yes" })
  end)

  it("keeps a host name in its namespace: 409 naming only the caller's own, a view token, a race", function()
    local admin = (h.read(home .. "/admin.token"):gsub("%s+$", ""))
    local edit_a, view_a, edit_b = token("ing-a", "edit", "a"), token("ing-view-a", "view", "a"),
      token("ing-b", "edit", "b")
    local bundle = upload(edit_a)
    local function body(name, hostname, path)
      return { name = name, bundle = bundle, entry = "app.py", replicas = 0, hostname = hostname, path = path }
    end
    local status, res = api("POST", "/api/v1/namespaces/a/deployments", edit_a, body("api", "own.example.com"))
    assert.equal(201, status, cjson.encode(res))
    -- b may not take a's name, with any path; the message names none of a's
    status, res = api("POST", "/api/v1/namespaces/b/deployments", edit_b, body("other", "own.example.com", "/b"))
    assert.same({ 409, "host own.example.com is used by another namespace" }, { status, res.error.message })
    assert.is_nil(cjson.encode(res):find("api", 1, true))
    -- a's own second deployment on the same route: 409 naming a's deployment
    status, res = api("POST", "/api/v1/namespaces/a/deployments", edit_a, body("web", "own.example.com"))
    assert.same({ 409, "host own.example.com path / is already used by deployment api" },
      { status, res.error.message })
    status = api("POST", "/api/v1/namespaces/a/deployments", edit_a, body("v2", "own.example.com", "/v2"))
    assert.equal(201, status)
    -- a view token of a may not deploy, b may not read a's
    status = api("POST", "/api/v1/namespaces/a/deployments", view_a, body("view", "view.example.com"))
    assert.equal(403, status)
    status = api("GET", "/api/v1/namespaces/a/deployments/api", edit_b)
    assert.equal(403, status)
    status, res = api("GET", "/api/v1/namespaces/a/deployments/api", view_a)
    assert.same({ 200, "own.example.com" }, { status, res.hostname })
    -- the CLI says it as Error/Hint, exit 1
    local r = prisn({ "deploy", dir .. "/app.py", "--name", "clash", "--host", "own.example.com", "-n", "c",
      "--isolation", "0", "--no-wait" })
    assert.equal(1, r.code)
    assert.equal("Error: host own.example.com is used by another namespace\nHint: choose another --host\n", r.stderr)
    -- a race: a and b ask for a new name at once; exactly one gets it
    local results = {}
    for i, who in ipairs({ { "a", edit_a }, { "b", edit_b } }) do
      local out = {}
      local pipe = uv.new_pipe(false)
      local handle
      handle = uv.spawn("/usr/bin/curl", { args = { "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
        home .. "/prisn.sock", "-X", "POST", "-H", "Authorization: Bearer " .. who[2], "-H",
        "Content-Type: application/json", "--data-binary", cjson.encode(body("race" .. i, "race.example.com")),
        "http://prisn/api/v1/namespaces/" .. who[1] .. "/deployments" }, stdio = { nil, pipe, nil } }, function()
        handle:close()
        results[#results + 1] = true
      end)
      pipe:read_start(function(_, data)
        if data then out[#out + 1] = data else pipe:close(); results[who[1]] = table.concat(out) end
      end)
    end
    assert.is_true(h.wait_for(function() return results.a and results.b and #results == 2 end, 20000))
    local codes = { results.a, results.b }
    table.sort(codes)
    assert.same({ "201", "409" }, codes)
    local owners = 0
    for _, ns in ipairs({ "a", "b" }) do
      local _, list = api("GET", "/api/v1/namespaces/" .. ns .. "/deployments", admin)
      for _, d in ipairs(list.items) do if d.hostname == "race.example.com" then owners = owners + 1 end end
    end
    assert.equal(1, owners)
    -- a certificate file on the server is an admin's to name
    status, res = api("POST", "/api/v1/namespaces/a/deployments", edit_a, { name = "files", bundle = bundle,
      entry = "app.py", replicas = 0, hostname = "files.example.com", tls_cert = "/etc/hostname",
      tls_key = "/etc/hostname" })
    assert.same({ 403, "a certificate file on the server needs an admin token" }, { status, res.error.message })
  end)

  it("refuses a path without a host name and a bad --ingress (the rest: e2e/workload_fields)", function()
    local admin = (h.read(home .. "/admin.token"):gsub("%s+$", ""))
    local status, res = api("POST", "/api/v1/namespaces/default/deployments", admin,
      { name = "bad", script = dir .. "/app.py", path = "/v1" })
    assert.same({ 422, "path goes with hostname: the ingress routes by host name first" },
      { status, res.error.message })
    local r = prisn({ "deploy", dir .. "/app.py", "--name", "bad", "--host", "ok.example.com", "--tls-cert",
      "/etc/hostname" })
    assert.same({ 1, "Error: tls_cert and tls_key go together\nHint: give both files, or neither\n" },
      { r.code, r.stderr })
    assert.equal(1, prisn({ "get", "deploy", "bad" }).code, "nothing was stored")
    r = prisn({ "server", "start", "--ingress", "example.com:80" }, { env = h.env() })
    assert.equal(2, r.code)
    assert.equal("Error: --ingress expects [HOST:]PORT, got 'example.com:80'\nHint: e.g. --ingress :80 or "
      .. "--ingress 127.0.0.1:8080\n", r.stderr)
  end)

  it("takes the route from a manifest", function()
    local manifest = h.write(dir .. "/prisn.lua", 'deployment { name = "man", script = "app.py", isolation = 0, '
      .. 'hostname = "Man.example.com", path = "/m/" }\n')
    ok({ "deploy", "-f", manifest })
    local status, body = get("man.example.com", "/m/x")
    assert.equal(200, status)
    assert.matches("^v1 man%-1 /m/x ", body)
    local d = json({ "get", "deploy", "man", "-o", "json" })
    assert.same({ "man.example.com", "/m" }, { d.hostname, d.path })
    ok({ "delete", "deploy", "man", "--yes" })
  end)

  it("takes a deployment off the ingress with --host ''", function()
    deploy("off", "--host", "off.example.com", "--path", "/p")
    assert.equal(200, (get("off.example.com", "/p")))
    local r = deploy("off", "--host", "")
    assert.matches("hostname%s+off%.example%.com %-> %-", r.stdout)
    assert.equal(404, (get("off.example.com", "/p")))
    local d = json({ "get", "deploy", "off", "-o", "json" })
    assert.same({ cjson.null, cjson.null, cjson.null }, { d.hostname, d.path, d.url })
    ok({ "delete", "deploy", "off", "--yes" })
  end)
end)
