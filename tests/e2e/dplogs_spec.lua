-- Instance output while the server is away (issue #19): an instance prints
-- a numbered line with its own timestamp every millisecond while the server
-- is killed with -9, kept down 5 s and started again, and across `prisn
-- server upgrade`. Afterwards every number is in `prisn logs` exactly once,
-- in order; the instance never stalled on a full pipe (none of its writes
-- slept; no gap between its own timestamps above 500 ms: the issue's 50 ms
-- holds on an idle machine, see the printed figure, but a loaded one
-- delays a process that long without any pipe);
-- and a `prisn logs -f` (of the deployment, and of the namespace) started
-- before the kill went on after the restart with every line once. What an
-- instance prints while `prisn server stop` stops it is kept too.
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

local OUTAGE_MS = 5000
-- No write of the instance may block (sleep on a full pipe), and no gap
-- between two of its lines, which also counts the time a loaded machine
-- did not run it (tens of ms in the full suite on 2 cores: the same before
-- any outage), may be longer than MAX_GAP_MS. A full pipe stalled it for
-- about 2 s of a 5 s outage before the data plane read the pipes.
local MAX_GAP_MS = 500
-- The instance prints for this long, then says "done" and idles.
local PRINT_SECONDS = 9

-- Each line: its number and the time it was written; the last one: how
-- many, the longest a write took (ms), and how many writes blocked: a
-- write into a full pipe puts the process to sleep, which counts a
-- voluntary context switch (a machine too busy to run it preempts it
-- instead, which does not).
local CHATTY = string.format([[
import resource, sys, time
start = time.time()
n, longest, blocked = 0, 0.0, 0
while time.time() - start < %d:
    n += 1
    t = time.time()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    sys.stdout.write("%%d %%.6f\n" %% (n, t))
    sys.stdout.flush()
    if resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw != before:
        blocked += 1
    longest = max(longest, time.time() - t)
    time.sleep(0.001)
sys.stdout.write("done %%d %%.1f %%d\n" %% (n, longest * 1000, blocked))
sys.stdout.flush()
time.sleep(3600)
]], PRINT_SECONDS)

-- Checks the numbered lines of `text` (each "N T", possibly prefixed):
-- 1..last each once, in order, and the largest gap between consecutive
-- timestamps. Returns last, the gap in ms, the number the "done" line
-- says was printed (nil when absent), the line after the gap, and the
-- longest write (ms) and the writes that blocked the "done" line reports.
local function check_numbers(text, what)
  local expect, last_t, max_gap, done, gap_at, longest, blocked = 1, nil, 0, nil, nil, nil, nil
  for line in text:gmatch("[^\n]+") do
    local d, w, b = line:match("done (%d+) (%d+%.%d+) (%d+)$")
    local n, t = line:match("(%d+) (%d+%.%d+)$")
    if d then
      done, longest, blocked = tonumber(d), tonumber(w), tonumber(b)
    elseif n then
      n, t = tonumber(n), tonumber(t)
      assert(n == expect, string.format("%s: expected line %d, got %d", what, expect, n))
      expect = n + 1
      if last_t and (t - last_t) * 1000 > max_gap then max_gap, gap_at = (t - last_t) * 1000, n end
      last_t = t
    end
  end
  return expect - 1, max_gap, done, gap_at, longest, blocked
end

describe("instance output while the server is away", function()
  local env, ok
  local followers = {}

  before_each(function()
    env = h.env({ PRISN_STOP_GRACE_SECONDS = "2" })
    ok = select(2, h.cli(function() return env end))
  end)

  after_each(function()
    for _, f in ipairs(followers) do
      if not f.handle:is_closing() then f.handle:kill("sigkill") end
    end
    h.wait_for(function()
      for _, f in ipairs(followers) do if f.open > 0 then return false end end
      return true
    end, 5000)
    followers = {}
    h.stop_server(env)
    h.cleanup()
  end)

  -- Starts `prisn logs ARGS...` in the background, collecting its output.
  local function follow_logs(args)
    local f = { out = {}, err = {}, open = 3 }
    local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
    local envl = {}
    for k, v in pairs(env) do envl[#envl + 1] = k .. "=" .. v end
    f.handle = assert(uv.spawn(h.bin, { args = args, env = envl,
      stdio = { nil, stdout, stderr } }, function(code)
      f.code = code
      f.handle:close()
      f.open = f.open - 1
    end))
    for pipe, chunks in pairs({ [stdout] = f.out, [stderr] = f.err }) do
      pipe:read_start(function(_, data)
        if data then chunks[#chunks + 1] = data else pipe:close(); f.open = f.open - 1 end
      end)
    end
    followers[#followers + 1] = f
    return f
  end

  -- Deploys the chatty instance with `prisn logs -f` of it and of the
  -- namespace following, calls disrupt(home) once it prints, then checks
  -- every line of `prisn logs` and of both followers, and the largest gap.
  local function survives(what, disrupt)
    local home = env.PRISN_HOME
    local dir = h.tempdir("prisn-dplogs")
    local script = h.write(dir .. "/chatty.py", CHATTY)
    ok({ "server", "start", "-q" })
    ok({ "deploy", script, "--name", "web", "--isolation", "0" })
    local deployment_f = follow_logs({ "logs", "web", "-f" })
    local namespace_f = follow_logs({ "logs", "-f" })
    assert.is_true(h.wait_for(function() return deployment_f.out[1] ~= nil and namespace_f.out[1] ~= nil end, 10000),
      "logs -f printed nothing")
    h.sleep(500)
    local instance_pid = h.recorded_pids(home)[1]
    assert.truthy(instance_pid)
    disrupt(home, dir)
    assert.is_true(h.alive(instance_pid), "the instance died with the server")

    -- Until the instance says it is done, and logs -f has printed that too.
    local text
    assert.is_true(h.wait_for(function()
      text = ok({ "logs", "web" }).stdout
      return text:find("done %d+ [%d.]+ %d+\n") ~= nil
    end, (PRINT_SECONDS + 20) * 1000), "the instance never finished")
    local last, gap, done, gap_at, longest, blocked = check_numbers(text, "prisn logs")
    assert.equal(done, last)
    assert.is_true(last > PRINT_SECONDS * 300, "only " .. last .. " lines in " .. PRINT_SECONDS .. " s")
    io.stderr:write(string.format("  [e2e/dplogs] %s: %d lines, %d writes blocked, longest write %.1f ms, "
      .. "largest gap %.1f ms (before line %d)\n", what, last, blocked, longest, gap, gap_at or 0))
    assert.equal(0, blocked, "writes of the instance blocked on a full pipe")
    assert.is_true(gap < MAX_GAP_MS, string.format("the instance stalled %.0f ms", gap))

    for cmd, f in pairs({ ["prisn logs web -f"] = deployment_f, ["prisn logs -f"] = namespace_f }) do
      assert.is_true(h.wait_for(function() return table.concat(f.out):find("done %d+ [%d.]+ %d+\n")
        ~= nil end, 10000),
        cmd .. " did not go on after the restart: " .. table.concat(f.err))
      assert.equal(last, (check_numbers(table.concat(f.out), cmd)))
      assert.matches("lost the server", table.concat(f.err))
    end
  end

  it("keeps every line through a 5 s kill -9 outage, the instance never stalls, and logs -f goes on", function()
    survives("kill -9, 5 s down", function(home)
      local server_pid = math.tointeger(cjson.decode(h.read(home .. "/server.json")).pid)
      uv.kill(server_pid, "sigkill")
      assert.is_true(h.wait_for(function() return not h.alive(server_pid) end, 5000))
      h.sleep(OUTAGE_MS)
      ok({ "server", "start", "-q" })
    end)
  end)

  it("keeps what an instance prints while 'prisn server stop' stops it", function()
    local dir = h.tempdir("prisn-dplogs")
    local script = h.write(dir .. "/polite.py", table.concat({
      "import signal, sys, time",
      "def bye(*_):",
      "    for i in range(3): print('bye', i, flush=True)",
      "    sys.exit(0)",
      "signal.signal(signal.SIGTERM, bye)",
      "print('up', flush=True)",
      "time.sleep(3600)",
    }, "\n") .. "\n")
    ok({ "server", "start", "-q" })
    ok({ "deploy", script, "--name", "web", "--isolation", "0" })
    assert.is_true(h.wait_for(function() return ok({ "logs", "web" }).stdout:find("up") ~= nil end, 10000))
    ok({ "server", "stop" })
    local text = {}
    for _, l in ipairs(require("prisn.deploy_logs").read(env.PRISN_HOME, "default", "web")) do
      text[#text + 1] = l.data
    end
    assert.equal("up\nbye 0\nbye 1\nbye 2\n", table.concat(text))
  end)

  it("keeps every line across 'prisn server upgrade --binary COPY', and logs -f goes on", function()
    survives("upgrade", function(_, dir)
      local copy = dir .. "/prisn-copy"
      h.run("/bin/cp", { h.bin, copy }, { env = { PATH = "/usr/bin:/bin" } })
      ok({ "server", "upgrade", "--binary", copy })
    end)
  end)
end)
