-- The control plane from the outside: start, status, stop, cluster init,
-- tokens and namespace isolation, and a server that survives bad clients.
local h = require("e2e.helper")
local read = h.read
local cjson = require("cjson")
local uv = require("luv")
local tls = require("prisn.net.tls")

local function mode_of(path)
  return uv.fs_stat(path).mode & tonumber("777", 8)
end

-- A raw HTTP exchange: sends `text` (a string, or a list of {text,
-- delay_ms} pieces), reads until the server closes or `wait_ms`. Over TLS
-- to the TCP port (trusting `ca_file`, the server's ca.crt), or over the
-- unix socket when `port` is a path.
local function raw(port, pieces, wait_ms, ca_file)
  local tcp = type(port) == "string" and uv.new_pipe(false) or uv.new_tcp()
  local out, closed, connected = {}, false, false
  local function reader(_, data)
    if data then out[#out + 1] = data else closed = true end
  end
  local function on_connect(err)
    assert(not err, err)
    if type(port) == "string" then
      connected = true
      return tcp:read_start(reader)
    end
    local ctx = assert(tls.client_context{ ca_pem = read(ca_file), host = "127.0.0.1" })
    tcp = tls.wrap(tcp, ctx, { on_ready = function() connected = true end,
      on_error = function(msg) closed = true error(msg) end })
    tcp:read_start(reader)
  end
  if type(port) == "string" then tcp:connect(port, on_connect) else tcp:connect("127.0.0.1", port, on_connect) end
  local deadline = uv.now() + (wait_ms or 5000)
  while not connected and uv.now() < deadline do uv.run("once"); uv.update_time() end
  if type(pieces) == "string" then pieces = { { pieces, 0 } } end
  for _, piece in ipairs(pieces) do
    tcp:write(piece[1])
    local until_ms = uv.now() + (piece[2] or 0)
    while uv.now() < until_ms do uv.run("nowait"); uv.sleep(5); uv.update_time() end
  end
  while not closed and uv.now() < deadline do uv.run("nowait"); uv.sleep(5); uv.update_time() end
  if not tcp:is_closing() then tcp:close() end
  uv.run("nowait")
  return table.concat(out), closed
end

local function curl(args)
  return h.run("/usr/bin/curl", args, { env = { PATH = "/usr/bin:/bin" } })
end

describe("prisn server", function()
  local env, home, started

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or env
    return h.prisn(args, opts)
  end

  local function start(extra_env)
    for k, v in pairs(extra_env or {}) do env[k] = v end
    local r = prisn({ "server", "start" })
    assert.equal(0, r.code, r.stderr)
    started = cjson.decode((assert(read(home .. "/server.json"))))
    return started, r
  end

  local function port()
    return tonumber(started.address:match(":(%d+)$"))
  end

  local function raw_tls(pieces, wait_ms)
    return raw(port(), pieces, wait_ms, home .. "/ca.crt")
  end

  local function api(method, path, token, body)
    local args = { "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method }
    if token then args[#args + 1] = "-H"; args[#args + 1] = "Authorization: Bearer " .. token end
    if body then
      args[#args + 1] = "-H"; args[#args + 1] = "Content-Type: application/json"
      args[#args + 1] = "--data-binary"; args[#args + 1] = body
    end
    args[#args + 1] = "--cacert"; args[#args + 1] = home .. "/ca.crt"
    args[#args + 1] = started.address .. path
    local r = curl(args)
    local text, status = r.stdout:match("^(.*)\n(%d+)$")
    return tonumber(status), text ~= "" and cjson.decode(text) or nil
  end

  local function admin_token()
    return (read(home .. "/admin.token"):gsub("%s+$", ""))
  end

  before_each(function()
    env = h.env()
    home = env.PRISN_HOME
    started = nil
  end)

  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("starts, reports its status and stops, leaving nothing behind", function()
    local info, r = start()
    assert.matches("^Admin token: prisn_[%w_-]+\n", r.stdout)
    assert.matches("prisn server started %(pid %d+%), listening on https://127%.0%.0%.1:%d+", r.stdout)
    assert.same(tonumber(info.pid), math.tointeger(info.pid))
    assert.equal(tonumber("700", 8), mode_of(home))
    assert.equal(tonumber("600", 8), mode_of(home .. "/admin.token"))
    assert.equal(tonumber("600", 8), mode_of(home .. "/state.db"))
    assert.equal(tonumber("600", 8), mode_of(home .. "/prisn.sock"))
    assert.equal(r.stdout:match("Admin token: (%S+)"), admin_token())
    -- Protected from the OOM killer where prisn may lower its score.
    local probe = prisn({ "lua", "-e", "print(require('prisn.core.sys').set_oom_score_adj(-1000) == true)" })
    local expected = probe.stdout == "true\n" and "-1000\n" or "0\n"
    assert.equal(expected, read("/proc/" .. math.tointeger(info.pid) .. "/oom_score_adj"))

    local status = prisn({ "server", "status", "-o", "json" })
    assert.equal(0, status.code, status.stderr)
    local s = cjson.decode(status.stdout)
    assert.same({ true, "ok", math.tointeger(info.pid) }, { s.running, s.health, s.pid })

    local overall = prisn({ "status", "-o", "json" })
    assert.equal(0, overall.code, overall.stderr)
    assert.equal("ok", cjson.decode(overall.stdout).health)

    local again = prisn({ "server", "start" })
    assert.equal(0, again.code)
    assert.matches("already running", again.stdout)
    assert.is_nil(again.stdout:find("Admin token", 1, true))

    local stop = prisn({ "server", "stop" })
    assert.equal(0, stop.code, stop.stderr)
    assert.is_nil(uv.fs_stat(home .. "/server.json"))
    assert.is_nil(uv.fs_stat(home .. "/prisn.sock"))
    assert.equal(3, prisn({ "server", "status" }).code)
    -- Started again, it keeps its admin token and prints none.
    local _, second = start()
    assert.is_nil(second.stdout:find("Admin token", 1, true))
  end)

  it("reports a server.json it cannot write as an error with a hint, not as a bug", function()
    assert(uv.fs_mkdir(home, tonumber("700", 8)))
    assert(uv.fs_mkdir(home .. "/server.json", tonumber("700", 8)))
    local r = prisn({ "server", "start", "--foreground" }, { timeout_ms = 10000 })
    assert.equal(1, r.code, r.stderr)
    assert.matches("\nError: cannot write " .. home:gsub("%p", "%%%0") .. "/server%.json: %u+", r.stderr)
    assert.matches("\nHint: check that you own ", r.stderr)
    assert.is_nil(r.stderr:find("internal error", 1, true))
  end)

  it("initializes a cluster with exactly the promised message, once", function()
    local r = prisn({ "cluster", "init" })
    assert.equal(0, r.code, r.stderr)
    local first, second, third, fourth = r.stdout:match("^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n$")
    assert.matches("^Cluster initialized%. Admin token: prisn_[%w_-]+$", first)
    assert.matches("^Cluster is ready to accept deployments", second)
    started = cjson.decode((assert(read(home .. "/server.json"))))
    -- the CA fingerprint with the token, and the line other machines run
    assert.equal("CA fingerprint: sha256:" .. started.ca_fingerprint .. " (the CA is " .. home .. "/ca.crt)", third)
    assert.equal("From another machine: prisn context add NAME --server " .. started.address .. "#sha256="
      .. started.ca_fingerprint .. " --token-file FILE", fourth)
    assert.equal(first:match("(prisn_%S+)$"), admin_token())
    local again = prisn({ "cluster", "init" })
    assert.equal(1, again.code)
    assert.matches("^Error: ", again.stderr)
  end)

  it("answers /health and /ready without a token and everything else only with one", function()
    start()
    assert.same({ 200, { status = "ok" } }, { api("GET", "/health") })
    assert.same({ 200, { status = "ready" } }, { api("GET", "/ready") })
    local status, body = api("GET", "/api/v1/status")
    assert.equal(401, status)
    assert.equal("unauthorized", body.error.code)
    assert.is_string(body.error.hint)
    assert.equal(401, (api("GET", "/api/v1/status", "prisn_bogus_token")))
    assert.equal(200, (api("GET", "/api/v1/status", admin_token())))
    assert.equal(404, (api("GET", "/api/v1/nope", admin_token())))
    assert.equal(405, (api("DELETE", "/health", admin_token())))
  end)

  it("keeps tokens to their role and namespaces, lists included, and revokes them", function()
    start()
    local created = prisn({ "token", "create", "ci", "--role", "edit", "--namespace", "ns-a", "-o", "json" })
    assert.equal(0, created.code, created.stderr)
    local ci = cjson.decode(created.stdout)
    assert.same({ "edit", { "ns-a" } }, { ci.role, ci.namespaces })
    local token = ci.token
    assert.equal(200, (api("GET", "/api/v1/namespaces/ns-a/jobs", token)))
    local status, body = api("GET", "/api/v1/namespaces/ns-b/jobs", token)
    assert.equal(403, status)
    assert.equal("this token has no access to namespace 'ns-b'", body.error.message)
    assert.equal(403, (api("GET", "/api/v1/jobs", token)))
    assert.equal(403, (api("GET", "/api/v1/tokens", token)))
    assert.equal(403, (api("POST", "/api/v1/tokens", token, '{"name":"x","role":"admin","namespaces":["*"]}')))
    -- The token's secret is never stored or listed.
    local list = prisn({ "token", "list", "-o", "json" })
    assert.is_nil(list.stdout:find(token, 1, true))
    assert.is_nil(read(home .. "/state.db"):find(token:match("_([^_]+)$"), 1, true))
    local revoked = prisn({ "token", "revoke", ci.id })
    assert.equal(0, revoked.code, revoked.stderr)
    local after, why = api("GET", "/api/v1/namespaces/ns-a/jobs", token)
    assert.same({ 401, "the token has been revoked" }, { after, why.error.message })
  end)

  it("refuses malformed namespaces and keeps namespace-bound admins out of cluster-wide routes", function()
    start()
    local status, body = api("GET", "/api/v1/namespaces/Bad_NS/jobs", admin_token())
    assert.same({ 400, "'Bad_NS' is not a namespace name" }, { status, body.error.message })
    assert.equal(400, (api("GET", "/api/v1/namespaces/%2E%2E/jobs", admin_token())))
    local created = prisn({ "token", "create", "ns-admin", "--role", "admin", "--namespace", "ns-a", "-o", "json" })
    local token = cjson.decode(created.stdout).token
    assert.equal(200, (api("GET", "/api/v1/namespaces/ns-a/jobs", token)))
    status, body = api("GET", "/api/v1/tokens", token)
    assert.same({ 403, "this needs a cluster-wide admin token (namespaces '*')" }, { status, body.error.message })
    assert.equal(403, (api("GET", "/api/v1/jobs", token)))
  end)

  it("refuses bad token requests with the field at fault", function()
    start()
    local status, body = api("POST", "/api/v1/tokens", admin_token(), '{"name":"x","role":"root","namespaces":["a"]}')
    assert.same({ 422, "'root' is not a role" }, { status, body.error.message })
    status, body = api("POST", "/api/v1/tokens", admin_token(), "not json")
    assert.same({ 400, "invalid_json" }, { status, body.error.code })
  end)

  it("survives malformed requests, huge bodies, slow and surplus clients", function()
    start({ PRISN_HTTP_REQUEST_TIMEOUT_MS = "300", PRISN_HTTP_MAX_CONNECTIONS = "3" })
    local reply, closed = raw_tls("BLAH / HTTP/1.1\r\n\r\n")
    assert.matches("^HTTP/1%.1 400 ", reply)
    assert.is_true(closed)

    local huge = "POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: " .. 30 * 1024 * 1024 .. "\r\n\r\n"
    reply, closed = raw_tls(huge)
    assert.matches("^HTTP/1%.1 413 ", reply)
    assert.is_true(closed)

    reply, closed = raw_tls({ { "GET /health HTTP/1.1\r\nHo", 800 } })
    assert.matches("^HTTP/1%.1 408 ", reply)
    assert.is_true(closed)

    -- Trickling a byte at a time does not buy more time.
    local trickle = {}
    for c in ("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"):gmatch(".") do trickle[#trickle + 1] = { c, 40 } end
    reply = raw_tls(trickle)
    assert.matches("^HTTP/1%.1 408 ", reply)

    -- Three idle connections fill a listener; a fourth is told to come back
    -- (on the unix socket: a TLS listener closes a surplus connection
    -- without a word, see tests/e2e/tls_spec.lua).
    local holders = {}
    for i = 1, 3 do
      holders[i] = uv.new_pipe(false)
      holders[i]:connect(home .. "/prisn.sock", function() end)
    end
    for _ = 1, 20 do uv.run("nowait"); uv.sleep(10) end
    reply = raw(home .. "/prisn.sock", "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.matches("^HTTP/1%.1 503 ", reply)
    assert.matches("Retry%-After: 1", reply)
    for _, t in ipairs(holders) do t:close() end
    uv.run("nowait")
    for _ = 1, 20 do uv.run("nowait"); uv.sleep(10) end

    assert.same({ 200, { status = "ok" } }, { api("GET", "/health") })
  end)

  it("answers an Upgrade request and closes, and answers good requests before a bad one", function()
    start()
    local reply, closed = raw_tls("GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
      .. "Upgrade: h2c\r\n\r\n")
    assert.matches("^HTTP/1%.1 200 ", reply)
    assert.is_true(closed)
    reply, closed = raw_tls("GET /health HTTP/1.1\r\nHost: x\r\n\r\nBLAH\r\n\r\n")
    local codes = {}
    for code in reply:gmatch("HTTP/1%.1 (%d+) ") do codes[#codes + 1] = code end
    assert.same({ "200", "400" }, codes)
    assert.is_true(closed)
  end)

  it("serves pipelined keep-alive requests in order", function()
    start()
    local req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    local reply = raw_tls(req .. req .. "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local codes = {}
    for code in reply:gmatch("HTTP/1%.1 (%d+) ") do codes[#codes + 1] = code end
    assert.same({ "200", "200", "404" }, codes)
  end)

  it("answers a thousand pipelined requests on one connection without tripping over itself", function()
    start()
    local req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    local reply = raw_tls(req:rep(999) .. "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local n = 0
    for _ in reply:gmatch("HTTP/1%.1 200 ") do n = n + 1 end
    assert.equal(1000, n)
    assert.equal(0, prisn({ "server", "status" }).code, "the server is still up")
  end)
end)
