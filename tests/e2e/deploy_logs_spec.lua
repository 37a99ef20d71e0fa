-- `prisn logs` of a deployment through a real server: merged lines with
-- their instance, --tail, --instance, --timestamps, -f across an appended
-- line and a new instance, the end of -f when the deployment is deleted,
-- and 404 for an unknown deployment.
--
-- There is no running deployment here: the spec writes a deployments row
-- and instance rows into state.db before the server starts and writes the
-- instances' log files itself with prisn.logs writers, as the supervisor
-- would. TODO(lead): add a test against a live `prisn deploy` once the
-- supervisor runs instances (output of a real process, restarts, a rolling
-- update).
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")
local logs = require("prisn.logs")
local deploy_logs = require("prisn.deploy_logs")

local T0 = 1795718760000 -- 2026-11-26T18:46:00Z

describe("deployment logs through the server", function()
  local env, home, writers

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or env
    return h.prisn(args, opts)
  end

  -- A writer of instance `number` of deployment api; clock nil: real time.
  local function writer(number, clock)
    local w = assert(logs.writer(deploy_logs.instance_path(home, "default", "api", number), { clock = clock }))
    writers[#writers + 1] = w
    return w
  end

  local function with_db(fn)
    local db = assert(require("prisn.store").open(home))
    local ok, err = pcall(fn, db)
    db:close()
    assert(ok, err)
  end

  before_each(function()
    env = h.env()
    home = env.PRISN_HOME
    writers = {}
    assert(require("prisn.fs").mkdir_p(home))
    local deployments = require("prisn.store.deployments")
    with_db(function(db)
      deployments.create(db, { namespace = "default", name = "api", replicas = 2, spec = {} })
      for number = 1, 2 do
        deployments.save_instance(db, { namespace = "default", deployment = "api", number = number, revision = 1,
          state = "running" })
      end
    end)
    local t = T0
    local clock = function() t = t + 1000 return t end
    local one, two = writer(1, clock), writer(2, clock)
    assert(one:write("stdout", "one a\n"))  -- 18:46:01
    assert(two:write("stdout", "two a\n"))  -- 18:46:02
    assert(one:write("stderr", "one err\n")) -- 18:46:03
    assert(two:write("stdout", "two b\n"))  -- 18:46:04
    local r = prisn({ "server", "start", "-q" })
    assert.equal(0, r.code, r.stderr)
  end)

  after_each(function()
    for _, w in ipairs(writers) do w:close() end
    h.stop_server(env)
    h.cleanup()
  end)

  it("shows the lines of every instance merged in time order, stdout and stderr apart", function()
    local r = prisn({ "logs", "api" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("[api-1] one a\n[api-2] two a\n[api-2] two b\n", r.stdout)
    assert.equal("[api-1] one err\n", r.stderr)
    local same = prisn({ "logs", "deploy/api" })
    assert.equal(r.stdout, same.stdout)
    assert.equal(r.stdout, prisn({ "logs", "deployment/api" }).stdout)
  end)

  it("takes --tail over the merged lines, --instance, --timestamps and -o json", function()
    local tail = prisn({ "logs", "api", "--tail", "2" })
    assert.equal(0, tail.code, tail.stderr)
    assert.equal("[api-2] two b\n", tail.stdout)
    assert.equal("[api-1] one err\n", tail.stderr)
    local one = prisn({ "logs", "api", "--instance", "1", "--stream", "stdout" })
    assert.equal("[api-1] one a\n", one.stdout)
    assert.equal("", one.stderr)
    local ts = prisn({ "logs", "api", "--instance", "2", "--timestamps" })
    assert.equal("[api-2] 2026-11-26T18:46:02.000Z two a\n[api-2] 2026-11-26T18:46:04.000Z two b\n", ts.stdout)
    local since = prisn({ "logs", "api", "--since", "2026-11-26T18:46:03Z" })
    assert.equal("[api-2] two b\n", since.stdout)
    local json = prisn({ "logs", "api", "--tail", "1", "-o", "json" })
    assert.equal(0, json.code, json.stderr)
    assert.same({ namespace = "default", deployment = "api", lines = {
      { instance = "api-2", stream = "stdout", time = "2026-11-26T18:46:04.000Z", data = "two b\n" } } },
      cjson.decode(json.stdout))
  end)

  it("answers 404 with a hint for an unknown deployment or instance", function()
    local r = prisn({ "logs", "deploy/nope" })
    assert.equal(1, r.code)
    assert.equal("Error: deployment 'nope' not found in namespace 'default'\n"
      .. "Hint: list the deployments with 'prisn get deploy -n default'\n", r.stderr)
    local inst = prisn({ "logs", "api", "--instance", "7" })
    assert.equal(1, inst.code)
    assert.equal("Error: deployment 'api' has no instance api-7\n"
      .. "Hint: its instances with logs or records: api-1, api-2\n", inst.stderr)
    -- A bare word that is no deployment is taken for a job id.
    local job = prisn({ "logs", "web" })
    assert.equal(1, job.code)
    assert.matches("^Error: job 'web' not found", job.stderr)
  end)

  -- Starts `prisn logs ARGS` in the background; returns an object whose
  -- out/err are what it printed so far, wait(pred, ms) runs the loop until
  -- pred() or the time is up, and stop() ends it (SIGTERM) and waits.
  local function background(args)
    local p = { out = "", err = "" }
    local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
    local list = {}
    for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
    local open = 3
    local handle
    handle = assert(uv.spawn(h.bin, { args = args, env = list, stdio = { nil, stdout, stderr } },
      function(code)
        p.code = code
        handle:close()
        open = open - 1
      end))
    stdout:read_start(function(_, data)
      if data then p.out = p.out .. data else stdout:close(); open = open - 1 end
    end)
    stderr:read_start(function(_, data)
      if data then p.err = p.err .. data else stderr:close(); open = open - 1 end
    end)
    function p.wait(pred, ms)
      local timer = uv.new_timer()
      local expired = false
      timer:start(ms, 0, function() expired = true end)
      while not pred() and not expired do uv.run("once") end
      timer:close()
      return pred()
    end
    function p.stop()
      if p.code == nil then handle:kill("sigterm") end
      p.wait(function() return open == 0 end, 5000)
      if open > 0 and not handle:is_closing() then handle:kill("sigkill") end
      p.wait(function() return open == 0 end, 5000)
    end
    return p
  end

  it("follows with -f: a line appended to an instance and a new instance within a second", function()
    local p = background({ "logs", "api", "-f" })
    local ok, err = pcall(function()
      assert.is_true(p.wait(function() return p.out:find("two b\n", 1, true) ~= nil end, 5000), p.err)
      writers[1]:write("stdout", "one later\n")
      assert.is_true(p.wait(function() return p.out:find("[api-1] one later\n", 1, true) ~= nil end, 1000),
        "no line from api-1 within a second: " .. p.out)
      writer(3):write("stdout", "three new\n")
      assert.is_true(p.wait(function() return p.out:find("[api-3] three new\n", 1, true) ~= nil end, 1000),
        "no line from the new instance api-3 within a second: " .. p.out)
      assert.is_nil(p.code, "prisn logs -f ended early: " .. p.err)
    end)
    p.stop()
    assert(ok, err)
  end)

  it("ends -f when the deployment is deleted", function()
    local p = background({ "logs", "deploy/api", "-f", "--tail", "0" })
    local ok, err = pcall(function()
      p.wait(function() return false end, 300)
      with_db(function(db) require("prisn.store.deployments").delete(db, "default", "api") end)
      assert.is_true(p.wait(function() return p.code ~= nil end, 5000), "prisn logs -f did not end")
      assert.equal(0, p.code)
      assert.equal("", p.out)
      assert.equal("prisn: deployment api was deleted\n", p.err)
    end)
    p.stop()
    assert(ok, err)
  end)
end)
