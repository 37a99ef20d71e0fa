-- Cron jobs in a real server: a per-second schedule firing on time,
-- suspend and resume by `prisn scale`, trigger, forbid with a slow run,
-- history limits, and runs missed while the server was down (skipped, or
-- caught up once).
local h = require("e2e.helper")
local write = h.write
local uv = require("luv")
local parse_time = require("prisn.store.events").parse_time

describe("cron jobs through the server", function()
  local env, dir

  local prisn, ok, json = h.cli(function() return env end)

  -- The runs of cron job `name`, oldest first.
  local function runs(name)
    local list = json({ "get", "jobs", "--cron", name, "--limit", "0", "-o", "json" })
    local out = {}
    for i = #list, 1, -1 do out[#out + 1] = list[i] end
    return out
  end

  local function count_state(list, state)
    local n = 0
    for _, j in ipairs(list) do if j.state == state then n = n + 1 end end
    return n
  end

  local function actions(name)
    local list = {}
    for _, e in ipairs(json({ "events", "--for", "cron/" .. name, "-o", "json" })) do
      list[#list + 1] = e.action
    end
    return list
  end

  local function has(list, value)
    for _, v in ipairs(list) do if v == value then return true end end
    return false
  end

  local function wait_for(pred, ms)
    local deadline = uv.now() + (ms or 10000)
    while uv.now() < deadline do
      if pred() then return true end
      uv.sleep(50)
      uv.update_time()
    end
    return false
  end

  local function sleep(ms)
    uv.sleep(ms)
    uv.update_time()
  end

  local function start_server()
    ok({ "server", "start", "-q" })
  end

  local function stop_server()
    h.stop_server(env)
  end

  before_each(function()
    env = h.env()
    dir = h.tempdir("prisn-cron")
  end)

  after_each(function()
    stop_server()
    h.cleanup()
  end)

  it("fires a per-second schedule on time, each run a job linked to it", function()
    start_server()
    write(dir .. "/tick.sh", "echo tick\n")
    local created = ok({ "cron", dir .. "/tick.sh", "* * * * * *", "--name", "tick", "--isolation", "0",
      "--concurrency", "allow" })
    assert.matches("^cron job tick: %* %* %* %* %* %*", created.stdout)
    assert.is_true(wait_for(function() return #runs("tick") >= 3 end, 6000), "fewer than 3 runs in 6 s")
    local list = runs("tick")
    local first, second = parse_time(list[1].created_at), parse_time(list[2].created_at)
    -- Due on whole seconds: the milliseconds past the second are the lateness.
    for i = 1, 2 do
      local late = parse_time(list[i].created_at) % 1000
      assert.is_true(late < 500, string.format("run %d submitted %d ms after its due time", i, late))
    end
    assert.is_true(math.abs(second - first - 1000) < 500, "runs " .. (second - first) .. " ms apart")
    assert.equal("tick", list[1].cron)
    local shown = json({ "get", "cron", "-o", "json" })
    assert.equal(1, #shown)
    assert.same({ "tick", "* * * * * *", "tick.sh", "allow", false },
      { shown[1].name, shown[1].schedule, shown[1].script, shown[1].concurrency, shown[1].suspended })
    local described = json({ "describe", "cron", "tick", "-o", "json" })
    assert.equal(5, #described.next_fires)
    assert.is_true(#described.last_runs >= 3)
  end)

  it("suspends with 'prisn scale NAME 0' and resumes with 'prisn scale NAME 1'", function()
    start_server()
    write(dir .. "/tick.sh", "true\n")
    ok({ "cron", dir .. "/tick.sh", "* * * * * *", "--name", "tick", "--isolation", "0" })
    assert.is_true(wait_for(function() return #runs("tick") >= 1 end, 3000))
    assert.equal("cron job tick suspended\n", ok({ "scale", "tick", "0" }).stdout)
    sleep(300)
    local before = #runs("tick")
    sleep(2200)
    assert.equal(before, #runs("tick"), "a suspended cron job ran")
    assert.is_true(json({ "get", "cron", "-o", "json" })[1].suspended)
    ok({ "scale", "tick", "1" })
    assert.is_true(wait_for(function() return #runs("tick") > before end, 3000), "no run after resume")
    local bad = prisn({ "scale", "tick", "1.5" })
    assert.equal(2, bad.code)
    assert.matches("use a plain whole number", bad.stderr)
    assert.is_true(has(actions("tick"), "cron.suspended"))
    assert.is_true(has(actions("tick"), "cron.resumed"))
  end)

  it("runs a cron job now with 'prisn cron trigger NAME'", function()
    start_server()
    write(dir .. "/hello.sh", "echo hello from cron\n")
    ok({ "cron", dir .. "/hello.sh", "0 0 1 1 *", "--name", "yearly", "--isolation", "0" })
    -- The level is a whole number in JSON (it was 0.0, read back from the stored spec).
    assert.matches('"isolation": 0[,\n]', ok({ "describe", "cron", "yearly", "-o", "json" }).stdout)
    local id = ok({ "cron", "trigger", "yearly" }).stdout:match("^(%w+)\n$")
    assert.is_string(id)
    local out = ok({ "logs", "-f", "job/" .. id })
    assert.equal("hello from cron\n", out.stdout)
    local list = runs("yearly")
    assert.same({ id, "succeeded", "yearly" }, { list[1].id, list[1].state, list[1].cron })
    assert.is_true(has(actions("yearly"), "cron.triggered"))
    ok({ "delete", "cron", "yearly", "--yes" })
    assert.same({}, json({ "get", "cron", "-o", "json" }))
    assert.equal(1, #runs("yearly"), "the runs of a deleted cron job stay")
  end)

  it("forbid: skips runs while a slow one runs, and says so in an event", function()
    start_server()
    write(dir .. "/slow.sh", "sleep 3\n")
    ok({ "cron", dir .. "/slow.sh", "* * * * * *", "--name", "slow", "--isolation", "0" })
    assert.is_true(wait_for(function() return has(actions("slow"), "cron.skipped") end, 5000),
      "no cron.skipped event")
    local list = runs("slow")
    assert.equal(1, #list)
    assert.equal("running", list[1].state)
  end)

  it("keeps only the last --keep-succeeded runs", function()
    start_server()
    write(dir .. "/ok.sh", "true\n")
    ok({ "cron", dir .. "/ok.sh", "* * * * * *", "--name", "ok", "--isolation", "0", "--keep-succeeded", "2" })
    assert.is_true(wait_for(function() return count_state(runs("ok"), "succeeded") >= 2 end, 5000))
    sleep(3000)
    local list = runs("ok")
    assert.equal(2, count_state(list, "succeeded"), "succeeded runs kept: " .. count_state(list, "succeeded"))
    assert.is_true(#list <= 3)
  end)

  describe("runs missed while the server was down", function()
    -- A schedule due once a minute, at the second 3 s from now.
    local function soon()
      local second = (os.time() + 3) % 60
      return string.format("%d * * * * *", second)
    end

    local function create_then_restart(extra)
      start_server()
      write(dir .. "/once.sh", "true\n")
      local args = { "cron", dir .. "/once.sh", soon(), "--name", "once", "--isolation", "0" }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      ok(args)
      stop_server()
      sleep(4500)
      start_server()
    end

    it("skips them by default, with a cron.missed event", function()
      create_then_restart()
      sleep(1500)
      assert.equal(0, #runs("once"))
      assert.is_true(has(actions("once"), "cron.missed"))
    end)

    it("runs once at start with --catch-up", function()
      create_then_restart({ "--catch-up" })
      assert.is_true(wait_for(function() return #runs("once") == 1 end, 3000), "no catch-up run")
      sleep(1500)
      assert.equal(1, #runs("once"))
      assert.is_true(has(actions("once"), "cron.caught_up"))
    end)
  end)
end)
