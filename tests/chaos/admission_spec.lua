-- Admission, attacked from outside: a real server, tokens of several
-- namespaces, and every field that widens a workload's power tried on jobs,
-- deployments, cron jobs, scale, rollback, cron triggers and manifests. Each
-- is 403 for an edit token of namespace a (with an admission.denied event
-- naming the token id, never the token, and nothing stored); the same
-- requests with the cluster's admin token succeed. Also: nothing of one
-- namespace leaks to another's token (/metrics, /api/v1/status, a port
-- conflict's message).
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

local function curl(args)
  return h.run("/usr/bin/curl", args, { env = { PATH = "/usr/bin:/bin" } })
end

describe("admission", function()
  local env, home, dir, address, admin, edit_a, view_a, edit_b, bundle

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or env
    return h.prisn(args, opts)
  end

  -- One API request; returns status and the decoded body (or the text).
  local function api(method, path, token, body)
    local args = { "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method,
      "-H", "Authorization: Bearer " .. token.token }
    if body then
      args[#args + 1] = "-H"; args[#args + 1] = "Content-Type: application/json"
      args[#args + 1] = "--data-binary"; args[#args + 1] = type(body) == "table" and cjson.encode(body) or body
    end
    args[#args + 1] = "--cacert"; args[#args + 1] = home .. "/ca.crt"
    args[#args + 1] = address .. path
    local r = curl(args)
    local text, status = r.stdout:match("^(.*)\n(%d+)$")
    local ok, decoded = pcall(cjson.decode, text or "")
    return tonumber(status), ok and decoded or text
  end

  local function token(name, role, ns)
    local r = prisn({ "token", "create", name, "--role", role, "--namespace", ns, "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    return cjson.decode(r.stdout)
  end

  local function copy(t, extra)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
  end

  local function events_of(ns)
    local status, body = api("GET", "/api/v1/namespaces/" .. ns .. "/events?limit=1000", admin)
    assert.equal(200, status)
    return body.items
  end

  -- Uploads folder `d` as a bundle with `tok`; returns its hash.
  local function upload(d, tok)
    local blob, hash = require("prisn.bundle").pack(d)
    h.write(d .. ".bundle", blob)
    local up = curl({ "-s", "--cacert", home .. "/ca.crt", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
      "-H", "Authorization: Bearer " .. tok.token, "--data-binary", "@" .. d .. ".bundle",
      address .. "/api/v1/bundles/" .. hash })
    assert.matches("^20[01]$", up.stdout)
    return hash
  end

  -- The job `id` of namespace a once it has ended (10 s at most).
  local function ended(id)
    local deadline = uv.now() + 10000
    while true do
      uv.sleep(50); uv.update_time()
      local job = select(2, api("GET", "/api/v1/namespaces/a/jobs/" .. id, admin))
      if job.state == "succeeded" or job.state == "failed" or uv.now() > deadline then return job end
    end
  end

  -- What job `id` of namespace a wrote, its records joined.
  local function output_of(id, tok)
    local _, logs = api("GET", "/api/v1/namespaces/a/jobs/" .. id .. "/logs", tok)
    local out = {}
    for _, rec in ipairs(logs.records) do out[#out + 1] = rec.data end
    return table.concat(out)
  end

  setup(function()
    env = h.env()
    home = env.PRISN_HOME
    dir = h.tempdir("prisn-admission")
    h.write(dir .. "/job.sh", "echo admitted\n")
    h.write(dir .. "/whoami.sh", "id -u; id -g\n")
    h.write(dir .. "/hooks.lua", "return { pre_deploy = function() return true end }\n")
    local r = prisn({ "server", "start", "-q" })
    assert.equal(0, r.code, r.stderr)
    address = cjson.decode(h.read(home .. "/server.json")).address
    admin = { token = (h.read(home .. "/admin.token"):gsub("%s+$", "")), id = "admin" }
    edit_a, view_a, edit_b = token("ci-a", "edit", "a"), token("view-a", "view", "a"), token("ci-b", "edit", "b")
    -- The script's folder, uploaded once as a bundle (content-addressed).
    bundle = upload(dir, edit_a)
  end)

  teardown(function()
    h.stop_server(env)
    h.cleanup()
  end)

  local BASE = {
    jobs = { bundle = nil, entry = "job.sh" },
    deployments = { name = "web", entry = "job.sh", replicas = 0 },
    cronjobs = { name = "tick", entry = "job.sh", schedule = "0 3 * * *" },
  }
  local function base(kind) return copy(BASE[kind], { bundle = bundle }) end

  -- Each privileged field, the message its denial carries, and the kinds
  -- it applies to.
  local PRIVILEGED = {
    { "isolation 0", { isolation = 0 }, "isolation 0 needs an admin token" },
    { "a script path on the server", { script = "/etc/passwd", bundle = false },
      "a script path on the server needs an admin token" },
    { "LD_PRELOAD", { env = { LD_PRELOAD = "/tmp/evil.so" } },
      "the environment variable LD_PRELOAD needs an admin token" },
    { "PRISN_HOME", { env = { PRISN_HOME = "/" } }, "the environment variable PRISN_HOME needs an admin token" },
    { "hooks from the bundle", { hooks = { "hooks.lua" } }, "deploy hooks from the bundle need an admin token",
      only = "deployments" },
    { "port 80", { port = 80 }, "port 80 (below 1024) needs an admin token", only = "deployments" },
    { "a certificate file on the server", { hostname = "files.example.com", tls_cert = "/etc/hostname",
      tls_key = "/etc/hostname" }, "a certificate file on the server needs an admin token", only = "deployments" },
  }

  local function body_for(kind, fields)
    local b = base(kind)
    for k, v in pairs(fields) do
      if v == false then b[k] = nil else b[k] = v end
    end
    return b
  end

  it("refuses every privileged field to an edit token of namespace a: 403, an event, nothing stored", function()
    local tried = 0
    for _, kind in ipairs({ "jobs", "deployments", "cronjobs" }) do
      for _, case in ipairs(PRIVILEGED) do
        if not case.only or case.only == kind then
          local status, body = api("POST", "/api/v1/namespaces/a/" .. kind, edit_a, body_for(kind, case[2]))
          assert.equal(403, status, kind .. " with " .. case[1] .. ": " .. cjson.encode(body))
          assert.same({ "forbidden", case[3] }, { body.error.code, body.error.message })
          assert.is_string(body.error.hint)
          tried = tried + 1
        end
      end
      local status, list = api("GET", "/api/v1/namespaces/a/" .. kind, admin)
      assert.equal(200, status)
      assert.same({}, list.items, kind .. ": something was stored")
    end
    -- One admission.denied event per refusal, naming the token's id and
    -- never the token itself.
    local denied = 0
    for _, ev in ipairs(events_of("a")) do
      if ev.action == "admission.denied" then
        denied = denied + 1
        assert.matches("by token " .. edit_a.id, ev.message, 1, true)
        assert.equal("token:ci-a", ev.actor)
      end
      assert.is_nil((ev.message or ""):find(edit_a.token, 1, true))
    end
    assert.equal(tried, denied)
    print(string.format("admission: %d privileged requests refused, %d events", tried, denied))
  end)

  it("gives the same requests to the cluster's admin token", function()
    for _, kind in ipairs({ "jobs", "cronjobs", "deployments" }) do
      for _, case in ipairs(PRIVILEGED) do
        -- Port 80 would really be listened on: the policy spec covers it.
        if (not case.only or case.only == kind) and case[1] ~= "port 80" then
          local fields = copy(case[2])
          if kind ~= "jobs" then fields.name = "adm-" .. case[1]:gsub("[^%w]+", "-"):lower():gsub("%-$", "") end
          if case[1] == "a script path on the server" then fields.script = dir .. "/job.sh" end
          local status, body = api("POST", "/api/v1/namespaces/adm/" .. kind, admin, body_for(kind, fields))
          assert.is_true(status == 200 or status == 201, kind .. " with " .. case[1] .. ": " .. cjson.encode(body))
        end
      end
    end
  end)

  it("takes the operator's policy from PRISN_HOME/policies, and the built-in one when that file breaks", function()
    local path = home .. "/policies/admission.lua"
    uv.fs_mkdir(home .. "/policies", tonumber("700", 8))
    h.write(path, [[
return { admit = function(r)
  for _, name in ipairs(r.spec.env_keys) do
    if name == "BLOCKED" then return false, "BLOCKED is not for namespace " .. r.namespace, "drop -e BLOCKED" end
  end
  return r.caller.cluster_admin or r.spec.isolation >= 1
end }
]])
    local status, body = api("POST", "/api/v1/namespaces/a/jobs", edit_a, copy(base("jobs"),
      { env = { BLOCKED = "1" } }))
    assert.same({ 403, "BLOCKED is not for namespace a", "drop -e BLOCKED" },
      { status, body.error.message, body.error.hint })
    -- A file that raises: the built-in rules answer, never an open door.
    h.write(path, "return { admit = function() error('broken') end }\n")
    uv.fs_utime(path, os.time() + 5, os.time() + 5) -- another mtime, read again
    status, body = api("POST", "/api/v1/namespaces/a/jobs", edit_a, copy(base("jobs"), { isolation = 0 }))
    assert.same({ 403, "isolation 0 needs an admin token" }, { status, body.error.message })
    status = api("POST", "/api/v1/namespaces/a/jobs", edit_a, base("jobs"))
    assert.equal(201, status)
    assert.matches("policy [^\n]*admission.lua: admit: [^\n]*broken; using the built%-in policy",
      h.read(home .. "/server.log"))
    os.remove(path)
  end)

  it("holds other tokens to prisn server start --min-isolation, and refuses a level that is none", function()
    local env2 = h.env()
    local bad = h.prisn({ "server", "start", "--min-isolation", "4" }, { env = env2 })
    assert.equal(2, bad.code)
    assert.matches("^Error: %-%-min%-isolation must be 0, 1, 2 or 3, got 4\nHint: ", bad.stderr)
    assert.is_nil(h.read(env2.PRISN_HOME .. "/server.json"))
    local r = h.prisn({ "server", "start", "-q", "--min-isolation", "2" }, { env = env2 })
    assert.equal(0, r.code, r.stderr)
    local ok, err = pcall(function()
      local tok = cjson.decode(h.prisn({ "token", "create", "ci", "--role", "edit", "--namespace", "a", "-o", "json" },
        { env = env2 }).stdout)
      local remote = copy(env2, { PRISN_SERVER = cjson.decode(h.read(env2.PRISN_HOME .. "/server.json")).address,
        PRISN_TOKEN = tok.token })
      local refused = h.prisn({ "run", "--detach", "-n", "a", "--isolation", "1", dir .. "/job.sh" }, { env = remote })
      assert.equal(1, refused.code)
      assert.matches("Error: isolation 1 needs an admin token\nHint: this server runs other tokens' workloads at "
        .. "isolation 2 or above", refused.stderr)
      local admitted = h.prisn({ "run", "--detach", "-n", "a", dir .. "/job.sh" }, { env = remote })
      assert.equal(0, admitted.code, admitted.stderr)
    end)
    h.stop_server(env2)
    assert(ok, err)
  end)

  it("refuses a view token and a token of another namespace before admission", function()
    local status, body = api("POST", "/api/v1/namespaces/a/jobs", view_a, base("jobs"))
    assert.same({ 403, "a view token cannot do this: it needs the edit role" }, { status, body.error.message })
    status, body = api("POST", "/api/v1/namespaces/a/jobs", edit_b, base("jobs"))
    assert.same({ 403, "this token has no access to namespace 'a'" }, { status, body.error.message })
  end)

  it("admits an isolated workload of namespace a and says who it runs as", function()
    local status, body = api("POST", "/api/v1/namespaces/a/deployments", edit_a, copy(base("deployments"),
      { name = "plain" }))
    assert.equal(201, status, cjson.encode(body))
    local r = prisn({ "describe", "deploy", "plain", "-n", "a", "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    local d = cjson.decode(r.stdout)
    assert.is_true(d.spec.isolation >= 1)
    assert.same({ 65534, 65534 }, { d.spec.run_as.uid, d.spec.run_as.gid })
    local text = prisn({ "describe", "deploy", "plain", "-n", "a" })
    assert.matches("Run as:%s+[^\n]*65534:65534", text.stdout)
    -- A job of namespace a really runs as that user, not as root.
    local job
    status, job = api("POST", "/api/v1/namespaces/a/jobs", edit_a, copy(base("jobs"), { entry = "whoami.sh" }))
    assert.equal(201, status, cjson.encode(job))
    job = ended(job.id)
    assert.equal("succeeded", job.state, cjson.encode(job))
    assert.equal("65534\n65534\n", output_of(job.id, view_a))
  end)

  it("builds a namespaced token's dependencies as its own user, apart, and reads no metadata outside the bundle",
    function()
    -- Vendored wheels in the bundle: the build runs as the workload's user
    -- (a build runs the packages' code), confined, into an entry of its own.
    local deps = h.tempdir("prisn-admission-deps")
    assert(uv.fs_mkdir(deps .. "/wheels", tonumber("755", 8)))
    require("e2e.wheels").build({ { dist = "acme-widgets", version = "1.0", package = "widgets",
      value = "widgets 1.0" } }, deps .. "/wheels")
    h.write(deps .. "/requirements.txt", "--no-index\n--find-links wheels\nacme-widgets\n")
    h.write(deps .. "/uses.py", "import widgets\nprint(widgets.VALUE)\n")
    -- PYTHONPATH reaches the build: with the build as root it would load
    -- this sitecustomize as root.
    local probe = h.tempdir("prisn-admission-probe")
    assert(uv.fs_chmod(probe, tonumber("1777", 8)))
    h.write(deps .. "/sitecustomize.py", string.format("import os\nopen(%q, 'a').write('%%d\\n' %% os.getuid())\n",
      probe .. "/ran-as"))
    local hash = upload(deps, edit_a)
    local status, job = api("POST", "/api/v1/namespaces/a/jobs", edit_a, { bundle = hash, entry = "uses.py",
      env = { PYTHONPATH = home .. "/bundles/" .. hash } })
    assert.equal(201, status, cjson.encode(job))
    job = ended(job.id)
    assert.equal("succeeded", job.state, cjson.encode(job))
    assert.equal("widgets 1.0\n", output_of(job.id, edit_a))
    -- Every python the build and the workload ran loaded it, as 65534.
    local ran = h.read(probe .. "/ran-as")
    assert.matches("^65534\n", ran)
    assert.is_nil(ran:find("^0\n") or ran:find("\n0\n"), ran)
    local env_dir = home .. "/envs/python3/" .. job.env_key
    local st = uv.fs_stat(env_dir .. "/pyvenv.cfg")
    assert.equal(65534, st.uid, "the environment was not built by the workload's user")
    assert.is_nil(uv.fs_stat(env_dir .. "/.prisn-build-home"))
    -- The same dependencies for the admin: built apart, as prisn.
    status, job = api("POST", "/api/v1/namespaces/a/jobs", admin, { bundle = hash, entry = "uses.py" })
    assert.equal(201, status, cjson.encode(job))
    local admin_job = ended(job.id)
    assert.equal("succeeded", admin_job.state, cjson.encode(admin_job))
    assert.not_equal(admin_job.env_key, select(2, api("GET", "/api/v1/namespaces/a/jobs?limit=10", admin))
      .items[2].env_key)
    assert.equal(0, uv.fs_stat(home .. "/envs/python3/" .. admin_job.env_key .. "/pyvenv.cfg").uid)
    -- The admin's build filled prisn's wheel cache; a restricted build of
    -- the same requirements neither links from it nor fills it.
    assert.equal("cached", cjson.decode(h.read(home .. "/envs/python3/" .. admin_job.env_key .. "/env.json"))
      .wheel_cache)
    assert.equal(0, h.run("/bin/rm", { "-rf", env_dir }).code)
    status, job = api("POST", "/api/v1/namespaces/a/jobs", edit_a, { bundle = hash, entry = "uses.py" })
    assert.equal(201, status, cjson.encode(job))
    job = ended(job.id)
    assert.equal("succeeded", job.state, cjson.encode(job))
    local marker = cjson.decode(h.read(env_dir .. "/env.json"))
    assert.same({ "pip", "off" }, { marker.installer, marker.wheel_cache })
    assert.equal(65534, uv.fs_stat(env_dir .. "/pyvenv.cfg").uid)
    -- A wheel folder the workload names, behind a directory its user cannot
    -- enter (0700 here), stays out of its build's reach.
    local hidden = h.tempdir("prisn-admission-hidden")
    assert(uv.fs_mkdir(hidden .. "/wheels", tonumber("755", 8)))
    require("e2e.wheels").build({ { dist = "acme-gadgets", version = "1.0", package = "gadgets",
      value = "gadgets 1.0" } }, hidden .. "/wheels")
    assert(uv.fs_chmod(hidden .. "/wheels/acme_gadgets-1.0-py3-none-any.whl", tonumber("644", 8)))
    local named = h.tempdir("prisn-admission-named")
    h.write(named .. "/requirements.txt", "--no-index\nacme-gadgets\n")
    h.write(named .. "/uses.py", "import gadgets\nprint(gadgets.VALUE)\n")
    status, job = api("POST", "/api/v1/namespaces/a/jobs", edit_a, { bundle = upload(named, edit_a),
      entry = "uses.py", env = { PIP_FIND_LINKS = hidden .. "/wheels" } })
    assert.equal(201, status, cjson.encode(job))
    job = ended(job.id)
    assert.equal("failed", job.state, "the build read a folder its user cannot reach: " .. cjson.encode(job))
    assert.matches("installing python dependencies failed", job.message, 1, true)
    -- An include outside the bundle is not read for it.
    local meta = h.tempdir("prisn-admission-meta")
    h.write(meta .. "/x.py", "print(1)\n")
    h.write(meta .. "/requirements.txt", "-r /etc/shadow\n")
    status, job = api("POST", "/api/v1/namespaces/a/jobs", edit_a, { bundle = upload(meta, edit_a), entry = "x.py" })
    assert.equal(201, status, cjson.encode(job))
    job = ended(job.id)
    assert.equal("failed", job.state)
    assert.matches("cannot read included file /etc/shadow", job.message, 1, true)
    assert.is_nil(output_of(job.id, edit_a):find("root:", 1, true))
  end)

  it("refuses an edit token the scale up and rollback of an admin's privileged deployment", function()
    local status = api("POST", "/api/v1/namespaces/a/deployments", admin, copy(base("deployments"),
      { name = "priv", isolation = 0 }))
    assert.equal(201, status)
    status = api("POST", "/api/v1/namespaces/a/deployments", admin, copy(base("deployments"),
      { name = "priv", isolation = 1 }))
    assert.equal(200, status)
    -- Revision 2 is isolated: scaling it is fine; rolling back to revision 1 is not.
    local body
    status, body = api("POST", "/api/v1/namespaces/a/deployments/priv/rollback", edit_a, { revision = 1 })
    assert.same({ 403, "isolation 0 needs an admin token" }, { status, body.error.message })
    status, body = api("POST", "/api/v1/namespaces/a/deployments/priv/rollback", admin, { revision = 1 })
    assert.equal(200, status, cjson.encode(body))
    status, body = api("POST", "/api/v1/namespaces/a/deployments/priv/scale", edit_a, { replicas = 2 })
    assert.same({ 403, "isolation 0 needs an admin token" }, { status, body.error.message })
    status, body = api("POST", "/api/v1/namespaces/a/deployments/priv/scale", edit_a, { auto = { min = 1, max = 3 } })
    assert.same({ 403, "forbidden" }, { status, body.error.code })
    -- Scaling down never needs admission.
    status = api("POST", "/api/v1/namespaces/a/deployments/priv/scale", edit_a, { replicas = 0 })
    assert.equal(200, status)
    local _, d = api("GET", "/api/v1/namespaces/a/deployments/priv", admin)
    assert.equal(0, d.replicas)
  end)

  it("refuses an edit token the trigger of an admin's isolation-0 cron job", function()
    local status = api("POST", "/api/v1/namespaces/a/cronjobs", admin, copy(base("cronjobs"),
      { name = "root-tick", isolation = 0 }))
    assert.equal(201, status)
    local body
    status, body = api("POST", "/api/v1/namespaces/a/cronjobs/root-tick/trigger", edit_a)
    assert.same({ 403, "isolation 0 needs an admin token" }, { status, body.error.message })
    local _, jobs = api("GET", "/api/v1/namespaces/a/jobs?cron=root-tick", admin)
    assert.same({}, jobs.items)
  end)

  it("refuses a manifest's privileged entries through the CLI with an edit token: Error and Hint", function()
    h.write(dir .. "/prisn.lua", string.format([[
deployment { name = "m-web", script = %q, isolation = 0, replicas = 0 }
]], dir .. "/job.sh"))
    local r = prisn({ "deploy", "-f", dir .. "/prisn.lua", "-n", "a" },
      { env = copy(env, { PRISN_SERVER = address, PRISN_TOKEN = edit_a.token }) })
    assert.equal(1, r.code, r.stdout)
    assert.matches("Error: [^\n]*isolation 0 needs an admin token", r.stderr)
    assert.matches("Hint: ", r.stderr)
    local _, d = api("GET", "/api/v1/namespaces/a/deployments/m-web", admin)
    assert.equal("not_found", d.error.code)
  end)

  it("shows a namespaced token only its own namespaces", function()
    -- /metrics covers every namespace: a cluster-wide token only.
    local status, body = api("GET", "/metrics", edit_a)
    assert.same({ 403, "forbidden" }, { status, body.error.code })
    status = api("GET", "/metrics", admin)
    assert.equal(200, status)
    -- A cluster-wide reader (a scraper's view token of '*') may.
    local scraper = token("prometheus", "view", "*")
    status, body = api("GET", "/metrics", scraper)
    assert.equal(200, status)
    assert.matches("prisn_admission_denials_total{action=\"job.submit\"} %d", body)
    -- Status: b's deployment is not counted for a's token.
    status = api("POST", "/api/v1/namespaces/b/deployments", edit_b, copy(base("deployments"),
      { name = "webb", replicas = 1, port = 18150 + (uv.os_getpid() % 500) }))
    assert.equal(201, status)
    local _, all = api("GET", "/api/v1/status", admin)
    local _, mine = api("GET", "/api/v1/status", edit_a)
    assert.is_true(all.deployments.count > mine.deployments.count)
    for _, problem in ipairs(mine.problems) do assert.is_nil(problem:find("b/", 1, true), problem) end
    -- A port conflict does not name b's deployment to a's token.
    local _, webb = api("GET", "/api/v1/namespaces/b/deployments/webb", admin)
    status, body = api("POST", "/api/v1/namespaces/a/deployments", edit_a, copy(base("deployments"),
      { name = "weba", port = webb.port }))
    assert.equal(409, status)
    assert.equal(string.format("port %d is already used by another namespace's deployment", webb.port),
      body.error.message)
    assert.is_nil(cjson.encode(body):find("webb", 1, true))
    -- The admin is told whose it is.
    status, body = api("POST", "/api/v1/namespaces/a/deployments", admin, copy(base("deployments"),
      { name = "weba", port = webb.port }))
    assert.equal(409, status)
    assert.matches("deployment b/webb", body.error.message, 1, true)
  end)
end)
