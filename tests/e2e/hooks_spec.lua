-- Operator hooks with the real binary: every hook runs as `prisn __hook` in
-- a child process. A driver script (`prisn lua`) fires events through
-- prisn.hooks the way the server does; on_job_finish goes through a real
-- server. Webhooks go to a small HTTP server this spec runs on 127.0.0.1.
local h = require("e2e.helper")
local write, read = h.write, h.read
local cjson = require("cjson")
local uv = require("luv")

-- Fires one hook through prisn.hooks in a `prisn lua` process and prints
-- { result, events, ms } as JSON.
local DRIVER = [[
local uv = require("luv")
local cjson = require("cjson")
local sigpipe = uv.new_signal()
sigpipe:start("sigpipe", function() end)
sigpipe:unref()
local events = {}
local h = require("prisn.hooks").new({ home = os.getenv("PRISN_HOME"),
  record_event = function(ev) events[#events + 1] = ev end })
local started = uv.hrtime()
local result
h:fire(arg[1], cjson.decode(arg[2]), { files = arg[3] and cjson.decode(arg[3]) or nil, namespace = "default" },
  function(r) result = r end)
uv.run()
io.write(cjson.encode({ result = result, events = events, ms = (uv.hrtime() - started) / 1e6 }))
]]

-- A one-request-at-a-time HTTP server on 127.0.0.1, served by the loop the
-- helper drives while a prisn process runs. Keeps every request; answers
-- each with `status`.
local function http_server(status)
  local server = { requests = {}, status = status or 200 }
  local tcp = uv.new_tcp()
  assert(tcp:bind("127.0.0.1", 0))
  server.port = tcp:getsockname().port
  server.url = "http://127.0.0.1:" .. server.port .. "/hook"
  assert(tcp:listen(16, function()
    local client = uv.new_tcp()
    tcp:accept(client)
    local buffer = ""
    client:read_start(function(err, data)
      if err or not data then client:close() return end
      buffer = buffer .. data
      local head, body = buffer:match("^(.-)\r\n\r\n(.*)$")
      if not head then return end
      local length = tonumber(head:lower():match("content%-length:%s*(%d+)") or "0")
      if #body < length then return end
      server.requests[#server.requests + 1] = { head = head, body = body }
      local answer = server.status == 200 and "ok" or "nope"
      client:write(string.format("HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
        server.status, #answer, answer))
      client:shutdown(function() client:close() end)
    end)
  end))
  function server.close() tcp:close() end
  return server
end

-- Processes whose command line mentions `text`, still alive.
local function processes_mentioning(text)
  local found = {}
  local scanner = uv.fs_scandir("/proc")
  while scanner do
    local name = uv.fs_scandir_next(scanner)
    if not name then break end
    if name:match("^%d+$") and name ~= tostring(uv.os_getpid()) then
      local cmdline = read("/proc/" .. name .. "/cmdline") or ""
      if cmdline:find(text, 1, true) and h.alive(tonumber(name)) then found[#found + 1] = tonumber(name) end
    end
  end
  return found
end

describe("operator hooks", function()
  local env, home, dir, servers

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or env
    return h.prisn(args, opts)
  end

  -- Fires `hook` with `event`; returns { result, events, ms }.
  local function fire(hook, event, files, extra_env)
    local run_env = {}
    for k, v in pairs(env) do run_env[k] = v end
    for k, v in pairs(extra_env or {}) do run_env[k] = v end
    local args = { "lua", dir .. "/driver.lua", hook, cjson.encode(event or {}) }
    if files then args[#args + 1] = cjson.encode(files) end
    local r = prisn(args, { env = run_env })
    assert.equal(0, r.code, r.stderr)
    return cjson.decode(r.stdout)
  end

  local function hook_file(name, text)
    uv.fs_mkdir(home .. "/hooks", tonumber("755", 8))
    return write(home .. "/hooks/" .. name, text)
  end

  local function actions(events)
    local list = {}
    for _, e in ipairs(events) do list[#list + 1] = e.action .. " " .. e.object end
    return list
  end

  before_each(function()
    env = h.env()
    home = env.PRISN_HOME
    uv.fs_mkdir(home, tonumber("700", 8))
    dir = h.tempdir("prisn-hooks")
    write(dir .. "/driver.lua", DRIVER)
    servers = {}
  end)

  after_each(function()
    for _, s in ipairs(servers) do s.close() end
    h.stop_server(env)
    h.cleanup()
  end)

  local function webhook_server(status)
    local s = http_server(status)
    servers[#servers + 1] = s
    return s
  end

  it("stops a deploy at the first pre_deploy veto, with its message", function()
    hook_file("10-freeze.lua", [[
return {
  pre_deploy = function(event)
    if event.deployment == "api" then return false, "deploys are frozen until 18:00" end
  end,
}]])
    hook_file("20-second.lua", [[return { pre_deploy = function() return false, "second file" end }]])
    local out = fire("pre_deploy", { namespace = "default", deployment = "api", revision = 3 })
    assert.same({ vetoed = true, message = "deploys are frozen until 18:00", file = "10-freeze.lua", ran = 1,
      failures = {} }, out.result)
    assert.same({ "hook.vetoed hook/10-freeze.lua:pre_deploy" }, actions(out.events))
    assert.equal("deploys are frozen until 18:00", out.events[1].message)
    assert.equal("default", out.events[1].namespace)
    -- Another deployment passes the first file and is vetoed by the second.
    out = fire("pre_deploy", { namespace = "default", deployment = "web" })
    assert.same({ true, "second file", "20-second.lua", 2 },
      { out.result.vetoed, out.result.message, out.result.file, out.result.ran })
  end)

  it("kills a hook that runs past the time limit: timed out, quickly, nothing left behind", function()
    hook_file("spin.lua", [[
return {
  on_crash = function()
    -- pcall cannot save it either
    while true do pcall(function() while true do end end) end
  end,
}]])
    -- A webhook that accepts and never answers: the hook hangs in http.get.
    local silent = uv.new_tcp()
    assert(silent:bind("127.0.0.1", 0))
    local held = {}
    assert(silent:listen(4, function()
      local c = uv.new_tcp()
      silent:accept(c)
      held[#held + 1] = c
    end))
    servers[#servers + 1] = { close = function()
      for _, c in ipairs(held) do c:close() end
      silent:close()
    end }
    hook_file("wait.lua", string.format([[
return { on_crash = function() http.get("http://127.0.0.1:%d/", { timeout = 60 }) end }]],
      silent:getsockname().port))
    hook_file("fine.lua", [[return { on_crash = function() end }]])
    local out = fire("on_crash", { deployment = "api", exit_code = 1 }, nil, { PRISN_HOOK_TIMEOUT_MS = "400" })
    assert.equal(1, out.result.ran)
    table.sort(out.result.failures, function(a, b) return a.file < b.file end)
    local killed = "ran past its time limit of 400 ms and was killed"
    assert.same({
      { file = "spin.lua", hook = "on_crash", reason = "timed_out", message = killed },
      { file = "wait.lua", hook = "on_crash", reason = "timed_out", message = killed },
    }, out.result.failures)
    assert.is_true(out.ms < 2000, "took " .. out.ms .. " ms")
    local acts = actions(out.events)
    table.sort(acts)
    assert.same({ "hook.ran hook/fine.lua:on_crash", "hook.timed_out hook/spin.lua:on_crash",
      "hook.timed_out hook/wait.lua:on_crash" }, acts)
    assert.same({}, processes_mentioning(home .. "/hooks/wait.lua"))
    assert.same({}, processes_mentioning(home .. "/hooks/spin.lua"))
  end)

  it("turns a hook that raises or does not parse into a failure and an event", function()
    hook_file("boom.lua", "return {\n  on_scale = function(event)\n    error('cannot scale ' .. event.deployment)\n"
      .. "  end,\n}\n")
    hook_file("broken.lua", "return { on_scale = function( }\n")
    hook_file("nil-index.lua", "return { on_scale = function() return io.open('/etc/passwd') end }\n")
    local out = fire("on_scale", { deployment = "api", from = 1, to = 3 })
    assert.equal(0, out.result.ran)
    table.sort(out.result.failures, function(a, b) return a.file < b.file end)
    local f = out.result.failures
    assert.same({ "boom.lua", "failed", home .. "/hooks/boom.lua:3: cannot scale api" },
      { f[1].file, f[1].reason, f[1].message })
    assert.same({ "broken.lua", "failed" }, { f[2].file, f[2].reason })
    assert.matches("^" .. (home .. "/hooks/broken.lua:1: "):gsub("%p", "%%%0"), f[2].message)
    assert.same({ "nil-index.lua", "failed", home .. "/hooks/nil-index.lua:1: attempt to index a nil value "
      .. "(global 'io')" }, { f[3].file, f[3].reason, f[3].message })
    local acts = actions(out.events)
    table.sort(acts)
    assert.same({ "hook.failed hook/boom.lua:on_scale", "hook.failed hook/broken.lua:on_scale",
      "hook.failed hook/nil-index.lua:on_scale" }, acts)
  end)

  it("runs hooks in a restricted environment: no io, os.execute, require or load", function()
    hook_file("check.lua", [[
return {
  on_job_finish = function(event)
    local missing = {}
    for _, name in ipairs({ "io", "require", "load", "loadfile", "dofile", "package", "debug" }) do
      if _G[name] ~= nil then missing[#missing + 1] = name end
    end
    if os.execute or os.remove or os.exit then missing[#missing + 1] = "os.*" end
    if #missing > 0 then error("available: " .. table.concat(missing, ", ")) end
    assert(json.decode(json.encode({ a = event.job })).a == "01abc")
    assert(type(os.time()) == "number" and os.getenv("HOOK_SETTING") == "on")
  end,
}]])
    local out = fire("on_job_finish", { job = "01abc", state = "succeeded" }, nil, { HOOK_SETTING = "on" })
    assert.same({ vetoed = false, ran = 1, failures = {} }, out.result)
    assert.same({ "hook.ran hook/check.lua:on_job_finish" }, actions(out.events))
  end)

  it("runs manifest hook files after the directory's", function()
    hook_file("10-dir.lua", [[return { post_deploy = function() end }]])
    local extra = write(dir .. "/app-hooks.lua", [[return { post_deploy = function() end }]])
    local out = fire("post_deploy", { deployment = "api" }, { extra })
    assert.equal(2, out.result.ran)
    local acts = actions(out.events)
    table.sort(acts)
    assert.same({ "hook.ran hook/" .. extra .. ":post_deploy", "hook.ran hook/10-dir.lua:post_deploy" }, acts)
  end)

  describe("contrib/hooks/crash-webhook.lua", function()
    local example = h.source_dir .. "/contrib/hooks/crash-webhook.lua"

    it("POSTs the crash as JSON to PRISN_CRASH_WEBHOOK", function()
      hook_file("crash-webhook.lua", read(example))
      local s = webhook_server(200)
      local out = fire("on_crash", { namespace = "shop", deployment = "api", instance = "api-2", exit_code = 137,
        signal = "KILL", reason = "oom_killed", restarts = 4 }, nil, { PRISN_CRASH_WEBHOOK = s.url })
      assert.same({ vetoed = false, ran = 1, failures = {} }, out.result)
      assert.equal(1, #s.requests)
      assert.matches("^POST /hook HTTP/1.1\r\n", s.requests[1].head)
      assert.matches("\r\ncontent%-type: application/json", s.requests[1].head:lower())
      local body = cjson.decode(s.requests[1].body)
      assert.equal("shop/api: instance api-2 crashed (oom_killed, killed by SIGKILL), restarts so far: 4", body.text)
      assert.same({ "api", 137, "on_crash" }, { body.event.deployment, body.event.exit_code, body.event.hook })
    end)

    it("fails (an event) when the webhook answers an error, and does nothing without a URL", function()
      hook_file("crash-webhook.lua", read(example))
      local s = webhook_server(500)
      local out = fire("on_crash", { deployment = "api", exit_code = 1 }, nil, { PRISN_CRASH_WEBHOOK = s.url })
      assert.equal(1, #out.result.failures)
      assert.equal("crash webhook " .. s.url .. " answered 500: nope", out.result.failures[1].message)
      assert.same({ "hook.failed hook/crash-webhook.lua:on_crash" }, actions(out.events))
      out = fire("on_crash", { deployment = "api", exit_code = 1 })
      assert.same({ vetoed = false, ran = 1, failures = {} }, out.result)
      assert.equal(1, #s.requests)
    end)
  end)

  describe("contrib/hooks/deploy-window.lua", function()
    local example = h.source_dir .. "/contrib/hooks/deploy-window.lua"
    local DAYS = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" }

    local function hhmm(minutes)
      minutes = minutes % (24 * 60)
      return string.format("%02d:%02d", minutes // 60, minutes % 60)
    end

    it("vetoes outside the window and allows inside it", function()
      hook_file("deploy-window.lua", read(example))
      local t = os.date("*t")
      local now = t.hour * 60 + t.min
      local others = {}
      for i, d in ipairs(DAYS) do if i ~= t.wday then others[#others + 1] = d end end
      -- Not today.
      local out = fire("pre_deploy", { deployment = "api" }, nil, { PRISN_DEPLOY_DAYS = table.concat(others, ","),
        PRISN_DEPLOY_WINDOW = "00:00-24:00" })
      assert.is_true(out.result.vetoed)
      assert.matches("^deploys of api are allowed on " .. table.concat(others, ","):gsub("%p", "%%%0")
        .. ", 00:00%-24:00 %(now: " .. DAYS[t.wday] .. " %d%d:%d%d%)$", out.result.message)
      -- Today, but the window starts in an hour (and may wrap midnight).
      local later = hhmm(now + 60) .. "-" .. hhmm(now + 120)
      out = fire("pre_deploy", { deployment = "api" }, nil, { PRISN_DEPLOY_DAYS = DAYS[t.wday],
        PRISN_DEPLOY_WINDOW = later })
      assert.is_true(out.result.vetoed, cjson.encode(out))
      -- Inside: a window around now (wrapping midnight when it must).
      out = fire("pre_deploy", { deployment = "api" }, nil, { PRISN_DEPLOY_DAYS = table.concat(DAYS, ","),
        PRISN_DEPLOY_WINDOW = hhmm(now - 30) .. "-" .. hhmm(now + 30) })
      assert.same({ vetoed = false, ran = 1, failures = {} }, out.result)
    end)

    it("fails, without vetoing, on a window it cannot read", function()
      hook_file("deploy-window.lua", read(example))
      local out = fire("pre_deploy", { deployment = "api" }, nil, { PRISN_DEPLOY_WINDOW = "nine to five",
        PRISN_DEPLOY_DAYS = "sun,mon,tue,wed,thu,fri,sat" })
      assert.is_false(out.result.vetoed)
      assert.equal(1, #out.result.failures)
      assert.matches("PRISN_DEPLOY_WINDOW must look like 09:00%-17:00, got 'nine to five'",
        out.result.failures[1].message)
    end)
  end)

  it("fires on_job_finish for a server job", function()
    local s = webhook_server(200)
    hook_file("jobs.lua", string.format([[
return {
  on_job_finish = function(event)
    local status, err = http.post(%q, event)
    if not status then error(err) end
  end,
}]], s.url))
    local r = prisn({ "server", "start", "-q" })
    assert.equal(0, r.code, r.stderr)
    write(dir .. "/fail.sh", "echo hi\nexit 3\n")
    r = prisn({ "run", "--detach", "--isolation", "0", dir .. "/fail.sh" })
    assert.equal(0, r.code, r.stderr)
    local id = r.stdout:match("^(%w+)\n$")
    local deadline = uv.now() + 10000
    while #s.requests == 0 and uv.now() < deadline do
      uv.run("nowait")
      uv.sleep(20)
      uv.update_time()
    end
    assert.equal(1, #s.requests)
    local ev = cjson.decode(s.requests[1].body)
    assert.same({ "on_job_finish", "default", id, "failed", "exited", 3 },
      { ev.hook, ev.namespace, ev.job, ev.state, ev.reason, ev.exit_code })
    assert.is_number(ev.duration_ms)
    assert.matches("/fail%.sh$", ev.script)
    -- The run is in the audit trail once it has been recorded.
    local found
    deadline = uv.now() + 5000
    while not found and uv.now() < deadline do
      local events = cjson.decode(prisn({ "events", "-o", "json" }).stdout)
      for _, e in ipairs(events) do
        if e.action == "hook.ran" and e.object == "hook/jobs.lua:on_job_finish" then found = e end
      end
      if not found then uv.sleep(50); uv.update_time() end
    end
    assert.is_table(found)
    assert.equal("default", found.namespace)
  end)
end)
