-- kubectl and pm2 habits against a real server: every verb takes KIND NAME
-- and KIND/NAME with the same kinds and words, `prisn restart` rolls the
-- instances one by one (admitted, an event, refused to a view token and to
-- another namespace's token), `rollout status` waits with an exit code,
-- --version/-v, -o wide, get -w (Ctrl-C exits 0), get cron's last result,
-- hints that are CLI commands, usage errors that exit 2, and completion of
-- live names that honours -n wherever it stands.
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

local APP = [[
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
]]

local free_port = h.free_port

-- The words of a `prisn __complete` answer (the directive line dropped).
local function completions(env, words)
  local args = { "__complete", "--" }
  for _, w in ipairs(words) do args[#args + 1] = w end
  local r = h.prisn(args, { env = env })
  assert.equal(0, r.code, r.stderr)
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= ":" then out[#out + 1] = line:match("^[^\t]*") end
  end
  return out
end

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

-- Runs prisn in the background, sends SIGINT after `after_ms`, returns
-- { code, stdout }.
local function interrupted(env, args, after_ms)
  local stdout = uv.new_pipe(false)
  local envlist = {}
  for k, v in pairs(env) do envlist[#envlist + 1] = k .. "=" .. v end
  local out, result = {}, {}
  local handle, pid
  handle, pid = uv.spawn(os.getenv("PRISN_BIN"), { args = args, env = envlist, stdio = { nil, stdout, nil } },
    function(code, signal)
      result.code, result.signal = code, signal
      handle:close()
    end)
  assert(handle, pid)
  stdout:read_start(function(_, data) if data then out[#out + 1] = data else stdout:close() end end)
  local timer = uv.new_timer()
  timer:start(after_ms, 0, function() uv.kill(pid, "sigint") timer:close() end)
  local guard = uv.new_timer()
  guard:start(after_ms + 10000, 0, function() uv.kill(pid, "sigkill") guard:close() end)
  while result.code == nil or not stdout:is_closing() do uv.run("once") end
  if not guard:is_closing() then guard:close() end
  uv.run("nowait")
  result.stdout = table.concat(out)
  return result
end

describe("kubectl and pm2 habits", function()
  local env, dir, address
  local prisn, ok, json = h.cli(function() return env end)

  setup(function()
    address = "127.0.0.1:" .. free_port()
    env = h.env({ PRISN_STOP_GRACE_SECONDS = "2" })
    dir = h.tempdir("prisn-verbs")
    assert(uv.fs_chmod(dir, tonumber("755", 8)))
    ok({ "server", "start", "-q", "--listen", address })
    h.write(dir .. "/app.py", APP)
    ok({ "deploy", dir .. "/app.py", "--name", "web", "--port", tostring(free_port()), "-r", "2",
      "--isolation", "0" })
  end)

  teardown(function()
    h.teardown_server(env)
  end)

  it("get, describe and delete take KIND NAME and KIND/NAME with every word of a kind", function()
    for _, words in ipairs({ { "get", "deploy", "web" }, { "get", "deploy/web" }, { "get", "deployments", "web" },
        { "get", "deployment/web" }, { "describe", "deploy", "web" }, { "describe", "deploy/web" },
        { "describe", "deployments/web" } }) do
      local args = { table.unpack(words) }
      args[#args + 1] = "-o"
      args[#args + 1] = "json"
      local d = json(args)
      assert.equal("web", d.name, table.concat(words, " "))
      assert.equal(2, d.replicas)
    end
    local text = ok({ "get", "deploy", "web" }).stdout
    assert.matches("^NAME%s+READY%s+REVISION", text)
    assert.matches("\nweb%s+2/2", text)
    -- instances: one by name, or a deployment's.
    assert.equal("web-1", json({ "get", "inst/web-1", "-o", "json" }).name)
    assert.equal("web-2", json({ "describe", "instance", "web-2", "-o", "json" }).name)
    assert.equal(2, #json({ "get", "instances", "web", "-o", "json" }))
    -- nodes: one, this machine, said so.
    local nodes = json({ "get", "nodes", "-o", "json" })
    assert.equal(1, #nodes)
    assert.equal(nodes[1].name, json({ "describe", "node/" .. nodes[1].name, "-o", "json" }).name)
    assert.matches("one node, this machine", prisn({ "get", "node" }).stderr)
    local r = prisn({ "delete", "node", nodes[1].name })
    assert.equal(2, r.code)
    assert.matches("cannot be deleted: there is one node", r.stderr)
    r = prisn({ "delete", "inst/web-1" })
    assert.equal(2, r.code)
    assert.matches("Hint: 'prisn restart web'", r.stderr)
    -- secrets and tokens are kinds too.
    ok({ "secret", "set", "db", "PASSWORD=hunter2" })
    assert.same({ "PASSWORD" }, json({ "get", "secret/db", "-o", "json" }).keys)
    assert.equal("db", json({ "describe", "secrets", "db", "-o", "json" }).name)
    ok({ "delete", "secret/db", "--yes" })
    assert.equal(1, prisn({ "get", "secret", "db" }).code)
    local tokens = json({ "get", "tokens", "-o", "json" })
    assert.is_true(#tokens >= 1)
    assert.equal(tokens[1].id, json({ "describe", "token/" .. tokens[1].id, "-o", "json" }).id)
    -- logs too: KIND NAME is KIND/NAME; a word that is no kind is a usage error.
    assert.equal(ok({ "logs", "deploy/web", "--tail", "5" }).stdout,
      ok({ "logs", "deploy", "web", "--tail", "5" }).stdout)
    r = prisn({ "logs", "secret", "db" })
    assert.equal(2, r.code)
    assert.matches("logs are kept for jobs and deployments", r.stderr)
  end)

  it("get deploy -A and get cron -A list every namespace the token may see", function()
    h.write(dir .. "/tick.sh", "echo tick\n")
    ok({ "deploy", dir .. "/app.py", "--name", "shop", "-n", "team", "--port", tostring(free_port()) })
    ok({ "cron", dir .. "/tick.sh", "0 0 1 1 *", "--name", "tick", "-n", "team" })
    local names = {}
    for _, d in ipairs(json({ "get", "deploy", "-A", "-o", "json" })) do
      names[#names + 1] = d.namespace .. "/" .. d.name
    end
    assert.same({ "default/web", "team/shop" }, names)
    assert.matches("^NAMESPACE%s+NAME%s+READY", ok({ "get", "deploy", "-A" }).stdout)
    assert.matches("\nteam%s+tick%s+0 0 1 1 %*", ok({ "get", "cron", "-A" }).stdout)
    local r = prisn({ "get", "deploy", "web", "-A" })
    assert.equal(2, r.code)
    assert.matches("takes no NAME", r.stderr)
    -- A token of namespace team sees team's only: -A is no way into another namespace.
    local token = json({ "token", "create", "team-view", "--role", "view", "--namespace", "team", "-o", "json" })
    local api = json({ "server", "status", "-o", "json" }).address
    for _, path in ipairs({ "/api/v1/deployments", "/api/v1/cronjobs" }) do
      local out = h.run("/usr/bin/curl", { "-s", "--cacert", env.PRISN_HOME .. "/ca.crt",
        "-H", "Authorization: Bearer " .. token.token, api .. path })
      local items = cjson.decode(out.stdout).items
      assert.equal(1, #items, path) -- team's one, not default's
      for _, item in ipairs(items) do assert.equal("team", item.namespace, path) end
    end
    -- Nor the namespace's own list route (the list is written as text: issue 17).
    local out = h.run("/usr/bin/curl", { "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
      env.PRISN_HOME .. "/ca.crt", "-H", "Authorization: Bearer " .. token.token,
      api .. "/api/v1/namespaces/default/deployments" })
    assert.equal("403", out.stdout)
    ok({ "delete", "deploy", "shop", "-n", "team", "--yes" })
    ok({ "delete", "cron", "tick", "-n", "team", "--yes" })
  end)

  it("jobs: run --detach -o json is JSON; get, describe and delete take job ID and job/ID", function()
    h.write(dir .. "/hello.sh", "#!/bin/sh\necho hello\n", tonumber("755", 8))
    local job = json({ "run", "--detach", "-o", "json", "--isolation", "0", dir .. "/hello.sh" })
    assert.is_string(job.id)
    assert.same({}, job.args)
    assert.truthy(ok({ "run", "--detach", "-o", "json", "--isolation", "0", dir .. "/hello.sh" })
      .stdout:find('"args": []', 1, true), "args is an array, not {}")
    assert.is_true(h.wait_for(function()
      return json({ "get", "job/" .. job.id, "-o", "json" }).state == "succeeded" end, 15000))
    assert.equal(job.id, json({ "get", "jobs", job.id, "-o", "json" }).id)
    assert.equal(job.id, json({ "describe", "job", job.id, "-o", "json" }).id)
    assert.matches("State:%s+succeeded", ok({ "describe", "job/" .. job.id }).stdout)
    ok({ "delete", "job/" .. job.id })
    local r = prisn({ "delete", "job", "nope" })
    assert.equal(1, r.code)
    assert.matches("Hint: list the jobs with 'prisn get jobs %-n default'", r.stderr)
    assert.is_nil(r.stderr:find("/api/v1", 1, true))
    r = prisn({ "describe", "deploy", "nope" })
    assert.is_nil(r.stderr:find("/api/v1", 1, true))
    assert.matches("'prisn get deploy %-n default'", r.stderr)
  end)

  it("restart rolls the instances one by one as a new revision; rollout status waits with an exit code", function()
    local before = json({ "get", "instances", "web", "-o", "json" })
    local r = ok({ "restart", "web" })
    assert.matches("%d/2 ready", r.stdout)
    assert.matches("deployment web restarted: revision %d+ serving, 2/2 ready", r.stdout)
    local d = json({ "get", "deploy", "web", "-o", "json" })
    assert.equal("active", d.revision_state)
    local after = json({ "get", "instances", "web", "-o", "json" })
    assert.equal(2, #after)
    for _, inst in ipairs(after) do
      assert.equal(d.revision, inst.revision)
      for _, old in ipairs(before) do assert.are_not.equal(old.pid, inst.pid) end
    end
    local events = json({ "events", "--action", "deployment.restarted", "-o", "json" })
    assert.equal(1, #events)
    assert.equal("deploy/web", events[1].object)
    -- Same spec, new revision; the other words of the target work too.
    local again = json({ "restart", "deploy/web", "--no-wait", "-o", "json" })
    assert.equal(d.revision + 1, again.revision)
    assert.equal(0, prisn({ "rollout", "status", "deploy", "web", "--timeout", "30s" }).code)
    local status = json({ "rollout", "status", "web", "-o", "json" })
    assert.equal("active", status.outcome)
    -- A rollout that cannot finish: exit 1 after --timeout.
    h.write(dir .. "/sick.py", APP:gsub("self.send_response%(200%)", "self.send_response(500)"))
    ok({ "deploy", dir .. "/sick.py", "--name", "sick", "--port", tostring(free_port()), "--health", "http:/",
      "--isolation", "0", "--no-wait" })
    r = prisn({ "rollout", "status", "sick", "--timeout", "1s" })
    assert.equal(1, r.code)
    assert.matches("Error: the rollout of sick revision 1 ", r.stderr)
    ok({ "delete", "deploy", "sick", "--yes" })
    -- Usage errors exit 2.
    assert.equal(2, prisn({ "restart", "nosuchkind", "web" }).code)
    assert.equal(2, prisn({ "restart", "cron/web" }).code)
    r = prisn({ "stop", "web" })
    assert.equal(2, r.code)
    assert.matches("Hint: prisn scale web 0", r.stderr)
    assert.equal(2, prisn({ "start", "web" }).code)
  end)

  it("refuses a restart to a view token and to another namespace's token", function()
    local view = ok({ "token", "create", "viewer", "--role", "view", "-n", "default" }).stdout:match("%S+")
    local other = ok({ "token", "create", "other", "--role", "edit", "-n", "other" }).stdout:match("%S+")
    local function as(token)
      local e = {}
      for k, v in pairs(env) do e[k] = v end
      e.PRISN_SERVER, e.PRISN_TOKEN = "https://" .. address, token
      return e
    end
    local before = json({ "get", "deploy", "web", "-o", "json" }).revision
    local r = prisn({ "restart", "web", "--no-wait" }, { env = as(view) })
    assert.equal(1, r.code)
    assert.matches("Error: a view token cannot do this", r.stderr)
    r = prisn({ "restart", "web", "--no-wait", "-n", "default" }, { env = as(other) })
    assert.equal(1, r.code)
    assert.matches("Error: this token has no access to namespace 'default'", r.stderr)
    assert.equal(before, json({ "get", "deploy", "web", "-o", "json" }).revision)
  end)

  it("--version and -v print what 'prisn version' prints", function()
    local v = ok({ "version" }).stdout
    assert.equal(v, ok({ "--version" }).stdout)
    assert.equal(v, ok({ "-v" }).stdout)
    assert.equal(json({ "version", "-o", "json" }).version, json({ "-v", "-o", "json" }).version)
  end)

  it("-o wide adds columns; get -w redraws until Ctrl-C, which exits 0", function()
    local plain = ok({ "get", "deploy" }).stdout
    local wide = ok({ "get", "deploy", "-o", "wide" }).stdout
    assert.is_nil(plain:find("STRATEGY", 1, true))
    assert.matches("STRATEGY%s+HEALTH%s+RESTART%s+AUTOSCALE", wide)
    local r = interrupted(env, { "get", "deploy", "-w" }, 2500)
    assert.equal(0, r.code)
    assert.matches("^NAME%s+READY", r.stdout)
    r = interrupted(env, { "get", "deploy", "-w", "-o", "json" }, 2500)
    assert.equal(0, r.code)
    local first = r.stdout:match("^[^\n]+")
    assert.equal("web", cjson.decode(first)[1].name)
  end)

  it("get cron shows the last run and its result", function()
    h.write(dir .. "/fails.sh", "#!/bin/sh\nexit 3\n", tonumber("755", 8))
    ok({ "cron", dir .. "/fails.sh", "0 0 1 1 *", "--name", "fails", "--isolation", "0" })
    ok({ "cron", "trigger", "fails" })
    assert.is_true(h.wait_for(function()
      local c = json({ "get", "cron", "fails", "-o", "json" })
      return type(c.last_run) == "table" and c.last_run.state == "failed"
    end, 15000))
    local text = ok({ "get", "cron" }).stdout
    assert.matches("LAST RUN%s+LAST RESULT", text)
    assert.matches("fails%s.*failed %(exit 3%)", text)
    assert.matches("LAST RESULT%s+LAST JOB", ok({ "get", "cron", "-o", "wide" }).stdout)
    ok({ "delete", "cron/fails", "--yes" })
  end)

  it("'No ... found' names the filters", function()
    assert.equal("No jobs found in namespace 'empty' with --state failed, --script x.py.\n",
      ok({ "get", "jobs", "-n", "empty", "--state", "failed", "--script", "x.py" }).stdout)
    assert.equal("No events found in namespace 'empty' with --action hook.vetoed.\n",
      ok({ "events", "-n", "empty", "--action", "hook.vetoed" }).stdout)
  end)

  it("completes live names for every verb, honouring -n wherever it stands", function()
    assert.is_true(contains(completions(env, { "scale", "" }), "web"))
    assert.is_true(contains(completions(env, { "scale", "deploy", "" }), "web"))
    assert.is_true(contains(completions(env, { "restart", "" }), "web"))
    assert.is_true(contains(completions(env, { "rollout", "status", "" }), "web"))
    assert.is_true(contains(completions(env, { "describe", "deploy", "" }), "web"))
    assert.is_true(contains(completions(env, { "describe", "deploy/" }), "deploy/web"))
    assert.is_true(contains(completions(env, { "delete", "deploy", "w" }), "web"))
    local instances = completions(env, { "get", "inst", "" })
    assert.is_true(#instances == 2 and instances[1]:match("^web%-%d+$") ~= nil, table.concat(instances, " "))
    assert.is_false(contains(completions(env, { "-n", "other", "describe", "deploy", "" }), "web"))
    assert.is_false(contains(completions(env, { "describe", "deploy", "-n", "other", "" }), "web"))
    assert.is_true(contains(completions(env, { "describe", "--namespace", "default", "deploy", "" }), "web"))
    assert.is_true(contains(completions(env, { "-n", "" }), "default"))
    ok({ "secret", "set", "completed", "K=v" })
    assert.is_true(contains(completions(env, { "secret", "get", "comp" }), "completed"))
    assert.is_true(contains(completions(env, { "get", "secret/" }), "secret/completed"))
  end)
end)
