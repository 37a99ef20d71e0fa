-- What an operator looks at when something is wrong, through the real
-- binary and a real server: `prisn status` naming the running services and
-- listing the workloads that need attention (scoped to the token's
-- namespaces), `prisn logs` of a whole namespace, --since and -f --tail for
-- jobs, -f -o json lines, `prisn server start` that fails saying why, and
-- the events of local runs.
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

-- A TCP port nobody listens on now (bound to port 0, then released), and,
-- with `keep`, the socket still holding it.
local function port_of(keep)
  local tcp = uv.new_tcp()
  assert(tcp:bind("127.0.0.1", 0))
  local port = tcp:getsockname().port
  if keep then
    assert(tcp:listen(1, function() end))
    return port, tcp
  end
  tcp:close()
  uv.run("nowait")
  return port
end

describe("status, logs and start failures", function()
  local env, dir
  local prisn, ok, json = h.cli(function() return env end)

  -- The environment of a client holding `token` (of the server of env).
  local function as(token)
    local info = cjson.decode(h.read(env.PRISN_HOME .. "/server.json"))
    local e = {}
    for k, v in pairs(env) do e[k] = v end
    e.PRISN_SERVER, e.PRISN_TOKEN = info.address, token
    return e
  end

  local function token(name, role, ns)
    return ok({ "token", "create", name, "--role", role, "--namespace", ns }).stdout:match("(prisn_%S+)")
  end

  local function job(id)
    return json({ "get", "job", id, "-o", "json" })
  end

  before_each(function()
    env = h.env()
    dir = h.tempdir("prisn-statuslogs")
  end)

  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("status names the running services and lists what needs attention, for the token's namespaces only",
    function()
    env.PRISN_STUCK_AFTER, env.PRISN_MAX_RUNNING_JOBS = "1s", "1"
    ok({ "server", "start", "-q" })
    local port = port_of()
    h.write(dir .. "/web.py", "import http.server, os\n"
      .. "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), "
      .. "http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    h.write(dir .. "/crash.py", "import sys\nprint('boom')\nsys.exit(2)\n")
    h.write(dir .. "/bad.sh", "echo failing\nexit 4\n")
    h.write(dir .. "/slow.sh", "sleep 30\n")
    ok({ "deploy", dir .. "/web.py", "--name", "web", "--port", tostring(port) })
    assert.are_not.equal(0, prisn({ "deploy", dir .. "/crash.py", "--name", "crash" }).code)
    ok({ "cron", dir .. "/bad.sh", "@daily", "--name", "bad" })
    local run = ok({ "cron", "trigger", "bad" }).stdout:match("(%w+)%s*$")
    assert.truthy(h.wait_for(function() return job(run).state == "failed" end), "the cron run failed")
    ok({ "run", "--detach", dir .. "/slow.sh" })
    local queued = ok({ "run", "--detach", dir .. "/slow.sh" }).stdout:match("^(%w+)")
    assert.equal("queued", job(queued).state)
    h.sleep(1200)

    local r = prisn({ "status" })
    assert.equal(0, r.code, r.stderr) -- workload problems leave the server's health alone
    assert.matches("Services:%s+crash 0/1 ready, crash%-looping\n%s+web 1/1 ready, port " .. port .. "\n", r.stdout)
    assert.matches("Problems:%s+deployment default/crash: 0/1 ready; crash%-1 is crash%-looping %(%d+ restarts, "
      .. "last exit code 2%) %(prisn logs crash %-%-instance 1 %-%-tail 20 %-n default%)\n", r.stdout)
    assert.matches("\n%s+cron job default/bad: the last run failed %(exited, exit 4 at [^;]+; prisn logs job/" .. run
      .. " %-n default%)\n", r.stdout)
    assert.matches("\n%s+job default/" .. queued .. ": queued for %d+s %(prisn get job " .. queued
      .. " %-n default%)\n", r.stdout)
    assert.is_nil(r.stdout:find("Problems:     none", 1, true))

    local st = json({ "status", "-o", "json" })
    local by_name = {}
    for _, svc in ipairs(st.services) do by_name[svc.name] = svc end
    assert.same({ namespace = "default", name = "web", ready = 1, replicas = 1, port = port, restarts = 0,
      state = "ready" }, by_name.web)
    assert.equal("crash_loop", by_name.crash.state)

    -- A view token of the namespace sees it all; a token of another
    -- namespace sees none of it.
    local mine = json({ "status", "-o", "json" }, { env = as(token("viewer", "view", "default")) })
    assert.equal(2, #mine.services)
    assert.equal(3, #mine.problems)
    local other = json({ "status", "-o", "json" }, { env = as(token("other", "edit", "other")) })
    assert.same({}, other.services)
    for _, p in ipairs(other.problems) do assert.is_nil(p:find("default/", 1, true), p) end
    assert.equal(0, #other.problems)
    local text = prisn({ "status" }, { env = as(token("other2", "view", "other")) })
    assert.matches("Services:%s+none\n", text.stdout)
    assert.matches("Problems:%s+none\n", text.stdout)
  end)

  it("logs without a target: every source of the namespace merged by time, prefixed, for its tokens only",
    function()
    ok({ "server", "start", "-q" })
    h.write(dir .. "/web.py", "import http.server, os\nprint('web up', flush=True)\n"
      .. "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), "
      .. "http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    h.write(dir .. "/j.sh", "echo out1\necho err1 >&2\necho out2\n")
    h.write(dir .. "/five.sh", "for i in 1 2 3 4 5; do echo line$i; done\n")
    ok({ "deploy", dir .. "/web.py", "--name", "web" })
    local local_run = prisn({ "run", dir .. "/j.sh" })
    assert.equal(0, local_run.code, local_run.stderr)
    local local_id = json({ "get", "jobs", "-o", "json" })[1].id
    ok({ "cron", dir .. "/j.sh", "@daily", "--name", "nightly" })
    local run = ok({ "cron", "trigger", "nightly" }).stdout:match("(%w+)%s*$")
    assert.truthy(h.wait_for(function() return job(run).state == "succeeded" end))

    local r = prisn({ "logs", "--since", "1h" })
    assert.equal(0, r.code, r.stderr)
    local width = #("cron/nightly/" .. run)
    local function prefix(source) return source .. string.rep(" ", width - #source) .. " | " end
    local lines = {}
    for line in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.same({ prefix("web-1") .. "web up", prefix("job/" .. local_id) .. "out1",
      prefix("job/" .. local_id) .. "out2", prefix("cron/nightly/" .. run) .. "out1",
      prefix("cron/nightly/" .. run) .. "out2" }, lines)
    assert.equal(prefix("job/" .. local_id) .. "err1\n" .. prefix("cron/nightly/" .. run) .. "err1\n", r.stderr)
    -- Without --since: the last hour, the same.
    assert.equal(r.stdout, ok({ "logs" }).stdout)
    local last = json({ "logs", "--tail", "1", "--stream", "stdout", "-o", "json" })
    assert.same({ source = "cron/nightly/" .. run, stream = "stdout", line = "out2" },
      { source = last.lines[1].source, stream = last.lines[1].stream, line = last.lines[1].line })
    assert.equal(1, #last.lines)
    assert.equal("", ok({ "logs", "--since", "2099-01-01" }).stdout)
    assert.equal(2, prisn({ "logs", "--since", "yesterday-ish" }).code)

    -- Tokens: a view token of the namespace reads it, one of another
    -- namespace cannot, and sees nothing of it in its own.
    assert.equal(r.stdout, ok({ "logs" }, { env = as(token("viewer", "view", "default")) }).stdout)
    local foreign = as(token("other", "edit", "other"))
    local denied = prisn({ "logs", "-n", "default" }, { env = foreign })
    assert.equal(1, denied.code)
    assert.matches("^Error: ", denied.stderr)
    local own = prisn({ "logs", "-n", "other" }, { env = foreign })
    assert.equal(0, own.code, own.stderr)
    assert.equal("", own.stdout)

    -- A job's logs: --since, then -f --tail N honours N, -f -o json lines.
    local five = ok({ "run", "--detach", dir .. "/five.sh" }).stdout:match("^(%w+)")
    assert.truthy(h.wait_for(function() return job(five).state == "succeeded" end))
    assert.equal("line1\nline2\nline3\nline4\nline5\n", ok({ "logs", five, "--since", "1h" }).stdout)
    assert.equal("", ok({ "logs", five, "--since", "2099-01-01" }).stdout)
    assert.equal("line4\nline5\n", ok({ "logs", "-f", "--tail", "2", "job/" .. five }).stdout)
    local followed = ok({ "logs", "-f", "-o", "json", "--tail", "1", five }).stdout
    local obj = cjson.decode(followed:match("^([^\n]+)\n$"))
    assert.same({ source = "job/" .. five, stream = "stdout", line = "line5" },
      { source = obj.source, stream = obj.stream, line = obj.line })
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", obj.time)
  end)

  it("logs -f -o json of a namespace and a deployment stream one {time, source, stream, line} a line", function()
    ok({ "server", "start", "-q" })
    h.write(dir .. "/web.py", "import http.server, os\nprint('web up', flush=True)\n"
      .. "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), "
      .. "http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    h.write(dir .. "/late.sh", "echo early\nsleep 1.5\necho late\n")
    ok({ "deploy", dir .. "/web.py", "--name", "web" })
    local id = ok({ "run", "--detach", dir .. "/late.sh" }).stdout:match("^(%w+)")
    assert.truthy(h.wait_for(function() return prisn({ "logs", id }).stdout == "early\n" end))
    -- Followed for 3 s: the kept lines (--tail 1: the newest), then what
    -- comes, of a job already running.
    local r = prisn({ "logs", "-f", "-o", "json", "--tail", "1" }, { timeout_ms = 3000 })
    local seen = {}
    for line in r.stdout:gmatch("[^\n]+") do
      local o = cjson.decode(line)
      assert.is_string(o.time)
      seen[#seen + 1] = o.source .. " " .. o.stream .. " " .. o.line
    end
    assert.same({ "job/" .. id .. " stdout early", "job/" .. id .. " stdout late" }, seen)
    local d = prisn({ "logs", "web", "-f", "-o", "json", "--tail", "1" }, { timeout_ms = 1500 })
    local o = cjson.decode(d.stdout:match("^([^\n]+)\n$"))
    assert.same({ source = "web-1", stream = "stdout", line = "web up" },
      { source = o.source, stream = o.stream, line = o.line })
    assert.equal(2, prisn({ "logs", "-f", "-o", "yaml" }).code)
    assert.equal(2, prisn({ "logs", "--instance", "1" }).code)
  end)

  it("server start that fails says why; another --listen while one runs is an error", function()
    local port, holder = port_of(true)
    local r = prisn({ "server", "start", "--listen", "127.0.0.1:" .. port })
    holder:close()
    uv.run("nowait")
    assert.equal(1, r.code)
    assert.equal(string.format("Error: the server exited at start: cannot listen on 127.0.0.1:%d: EADDRINUSE: "
      .. "address already in use\nHint: choose another address with --listen HOST:PORT; the server's log is %s"
      .. "/server.log\n", port, env.PRISN_HOME), r.stderr)

    local free = port_of()
    ok({ "server", "start", "-q", "--listen", "127.0.0.1:" .. free })
    local again = prisn({ "server", "start", "--listen", "127.0.0.1:" .. free })
    assert.equal(0, again.code, again.stderr)
    assert.matches("^prisn server already running %(pid %d+%) on https://127.0.0.1:" .. free .. "\n$", again.stdout)
    assert.equal(0, prisn({ "server", "start" }).code)
    local other = prisn({ "server", "start", "--listen", "127.0.0.1:" .. port })
    assert.equal(1, other.code)
    assert.matches("^Error: a prisn server already runs for .* on https://127.0.0.1:" .. free .. ", not on 127.0.0.1:"
      .. port .. "\nHint: stop it first", other.stderr)
  end)

  it("records local runs' events as server jobs have them, without a secret value", function()
    local value = "hunter2-" .. string.format("%08x", math.random(0, 0x7fffffff))
    h.write(dir .. "/fail.sh", "echo $PASSWORD >/dev/null\nexit 3\n")
    local r = prisn({ "run", "-e", "PASSWORD=" .. value, dir .. "/fail.sh", value })
    assert.equal(3, r.code, r.stderr)
    ok({ "server", "start", "-q" })
    local id = json({ "get", "jobs", "-o", "json" })[1].id
    local events = prisn({ "events", "--for", "job/" .. id, "-o", "json" })
    assert.equal(0, events.code, events.stderr)
    assert.is_nil(events.stdout:find(value, 1, true))
    local seen = {}
    for i, e in ipairs(cjson.decode(events.stdout)) do
      seen[i] = e.action .. " " .. e.message
      assert.matches("^user:", e.actor)
    end
    assert.equal("job.created run locally: " .. dir .. "/fail.sh", seen[1])
    assert.matches("^job.started pid %d+$", seen[2])
    assert.equal("job.finished failed (exited, exit 3)", seen[3])
  end)
end)
