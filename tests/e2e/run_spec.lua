-- `prisn run` against real interpreters: output, exit codes, signals,
-- timeouts that leave nothing running, Ctrl-C forwarding, missing
-- interpreters, operator runners, and the job records each run leaves.
local h = require("e2e.helper")
local write, alive = h.write, h.alive
local cjson = require("cjson")
local uv = require("luv")

local function has_command(name)
  return h.run("/bin/sh", { "-c", "command -v " .. name }, { env = { PATH = os.getenv("PATH") } }).code == 0
end

describe("prisn run", function()
  local dir, env
  before_each(function()
    dir = h.tempdir("prisn-run")
    env = h.env()
  end)
  after_each(h.cleanup)

  it("runs python3, keeps stdout and stderr apart and exits with the script's code", function()
    write(dir .. "/job.py", "import sys\nprint('out', sys.argv[1:])\nprint('err', file=sys.stderr)\nsys.exit(3)\n")
    local r = h.prisn({ "run", dir .. "/job.py", "a", "--", "--flag" }, { env = env })
    assert.equal(3, r.code)
    assert.equal("out ['a', '--flag']\n", r.stdout)
    assert.equal("err\n", r.stderr)
  end)

  it("runs nothing when it cannot record the run (a state.db from a newer prisn), at any isolation", function()
    assert.equal(0, h.prisn({ "run", "--exec", "true", "--runner", "sh" }, { env = env }).code)
    local db = require("prisn.core.store").open(env.PRISN_HOME .. "/state.db", { create = false })
    assert(db:set_user_version(999))
    db:close()
    write(dir .. "/mark.sh", "touch " .. dir .. "/ran\necho ran\n")
    local levels = { "0" }
    if require("prisn.exec.isolation").probe().ok then levels[2] = "1" end -- namespaces here
    for _, level in ipairs(levels) do
      local r = h.prisn({ "run", "--isolation", level, dir .. "/mark.sh" }, { env = env })
      assert.equal(1, r.code)
      assert.equal("", r.stdout)
      assert.matches("^Error: the state database .* has schema version 999, newer than this prisn knows", r.stderr)
      assert.is_nil(uv.fs_stat(dir .. "/ran"), "the script ran")
    end
  end)

  it("runs node, bash and lua scripts", function()
    write(dir .. "/a.js", "console.log('node', process.argv.slice(2).join(','))\nprocess.exit(4)\n")
    write(dir .. "/b.sh", "echo bash \"$@\"\nexit 5\n")
    write(dir .. "/c.lua", "print('lua', ...)\nos.exit(6)\n")
    local node = h.prisn({ "run", dir .. "/a.js", "x", "y" }, { env = env })
    assert.same({ 4, "node x,y\n" }, { node.code, node.stdout })
    local bash = h.prisn({ "run", dir .. "/b.sh", "p q" }, { env = env })
    assert.same({ 5, "bash p q\n" }, { bash.code, bash.stdout })
    local lua = h.prisn({ "run", dir .. "/c.lua", "1", "2" }, { env = env })
    assert.same({ 6, "lua\t1\t2\n" }, { lua.code, lua.stdout })
  end)

  it("runs lua scripts with no Lua installed", function()
    write(dir .. "/c.lua", "print(_VERSION)\n")
    local r = h.prisn({ "run", dir .. "/c.lua" }, { env = h.env({ PATH = "/nonexistent" }) })
    assert.equal(0, r.code, r.stderr)
    assert.equal("Lua 5.4\n", r.stdout)
  end)

  it("keeps itself out of the OOM killer's reach when root, but not the script", function()
    local probe = h.prisn({ "lua", "-e", "print(require('prisn.core.sys').set_oom_score_adj(-1000) == true)" })
    if uv.getuid() ~= 0 or probe.stdout ~= "true\n" then
      pending("needs root with CAP_SYS_RESOURCE to lower oom_score_adj (not given here)")
      return
    end
    write(dir .. "/oom.sh", "cat /proc/self/oom_score_adj /proc/$PPID/oom_score_adj\n")
    local r = h.prisn({ "run", "--isolation", "0", dir .. "/oom.sh" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.equal("0\n-1000\n", r.stdout)
  end)

  it("passes stdin through", function()
    write(dir .. "/cat.py", "import sys\nprint(sys.stdin.read().upper(), end='')\n")
    local r = h.prisn({ "run", dir .. "/cat.py" }, { env = env, stdin = "hello\n" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("HELLO\n", r.stdout)
  end)

  it("sets variables from -e and --env-file and records only their names", function()
    write(dir .. "/vars.env", "# settings\nexport FROM_FILE='file value'\nBOTH=file\n")
    write(dir .. "/show.sh", "echo \"$FROM_FILE|$BOTH|$FROM_FLAG\"\n")
    local r = h.prisn({ "run", "-e", "FROM_FLAG=flag", "-e", "BOTH=flag", "--env-file", dir .. "/vars.env",
      dir .. "/show.sh" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.equal("file value|flag|flag\n", r.stdout)
    local job = h.jobs(env)[1]
    table.sort(job.env_keys)
    assert.same({ "BOTH", "FROM_FILE", "FROM_FLAG" }, job.env_keys)
    assert.is_nil(cjson.encode(job):find("file value", 1, true))
  end)

  it("refuses a malformed -e or --env-file line with a hint, never echoing a value", function()
    write(dir .. "/x.sh", "true\n")
    local r = h.prisn({ "run", "-e", "A=1", "-e", "hunter2", dir .. "/x.sh" }, { env = env })
    assert.equal(2, r.code)
    assert.equal("Error: -e #2 is not KEY=VALUE\n", r.stderr:match("^[^\n]*\n"))
    assert.matches("\nHint: ", r.stderr)
    r = h.prisn({ "run", "-e", "DB PASSWORD=hunter2", dir .. "/x.sh" }, { env = env })
    assert.equal(2, r.code)
    assert.matches("^Error: %-e #1: invalid key \"DB PASSWORD\"", r.stderr)
    assert.is_nil(r.stderr:find("hunter2", 1, true))
    write(dir .. "/bad.env", "USER=app\nPASSWORD=\"hunter2\n")
    r = h.prisn({ "run", "--env-file", dir .. "/bad.env", dir .. "/x.sh" }, { env = env })
    assert.equal(2, r.code)
    assert.equal("Error: line 2 of " .. dir .. "/bad.env: the value of PASSWORD has no closing \"\n",
      r.stderr:match("^[^\n]*\n"))
    assert.is_nil(r.stderr:find("hunter2", 1, true))
  end)

  it("reads an env file as 'secret set --from-env-file' does: A=\"x\" # note is x", function()
    write(dir .. "/vars.env", "A=\"x\" # note\nB=y # note\n")
    write(dir .. "/show.sh", "echo \"$A|$B\"\n")
    local r = h.prisn({ "run", "--env-file", dir .. "/vars.env", dir .. "/show.sh" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.equal("x|y\n", r.stdout)
  end)

  it("runs in --cwd", function()
    write(dir .. "/pwd.sh", "pwd\n")
    local r = h.prisn({ "run", "--cwd", "/tmp", dir .. "/pwd.sh" }, { env = env })
    assert.equal("/tmp\n", r.stdout)
  end)

  it("reports a script killed by a signal as 128+N with a note", function()
    write(dir .. "/die.sh", "kill -KILL $$\n")
    local r = h.prisn({ "run", dir .. "/die.sh" }, { env = env })
    assert.equal(137, r.code)
    assert.matches("prisn: job %w+ killed by signal KILL\n$", r.stderr)
    local job = h.jobs(env)[1]
    assert.same({ "failed", "killed", "KILL", 137 }, { job.state, job.reason, job.signal, job.exit_code })
  end)

  it("stops a timed-out process tree, grandchild ignoring SIGTERM included, and exits 124", function()
    local pidfile = dir .. "/grandchild.pid"
    write(dir .. "/tree.sh", table.concat({
      "sh -c 'trap \"\" TERM; echo $$ > " .. pidfile .. "; while :; do sleep 0.05; done' &",
      "wait",
    }, "\n") .. "\n")
    local started = uv.hrtime()
    -- Level 0: the pid written is a host pid (level 1: tests/e2e/isolation_spec.lua).
    local r = h.prisn({ "run", "--isolation", "0", "--timeout", "1s", "--grace", "1s", dir .. "/tree.sh" },
      { env = env })
    local elapsed = (uv.hrtime() - started) / 1e9
    assert.equal(124, r.code)
    assert.matches("timed out after 1s", r.stderr)
    assert.is_true(elapsed >= 1 and elapsed < 10, "took " .. elapsed .. "s")
    local pid = assert(tonumber(assert(io.open(pidfile)):read("l")))
    for _ = 1, 50 do
      if not alive(pid) then break end
      uv.sleep(20)
    end
    assert.is_false(alive(pid), "the grandchild " .. pid .. " is still running")
    local job = h.jobs(env)[1]
    assert.same({ "failed", "timeout", 124 }, { job.state, job.reason, job.exit_code })
  end)

  it("forwards Ctrl-C to the script's process group", function()
    local ready = dir .. "/ready"
    write(dir .. "/wait.py", table.concat({
      "import signal, sys, time",
      "def stop(signum, frame):",
      "    print('got SIGINT', flush=True)",
      "    sys.exit(42)",
      "signal.signal(signal.SIGINT, stop)",
      "open(" .. string.format("%q", ready) .. ", 'w').close()",
      "time.sleep(30)",
    }, "\n") .. "\n")
    -- Start prisn, wait until the script is ready, then interrupt prisn.
    local stdout = uv.new_pipe(false)
    local out, code = {}, nil
    local list = {}
    for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
    local handle
    handle = uv.spawn(h.bin, { args = { "run", dir .. "/wait.py" }, env = list,
      stdio = { nil, stdout, nil } }, function(c) code = c; handle:close() end)
    stdout:read_start(function(_, data) if data then out[#out + 1] = data else stdout:close() end end)
    local deadline = uv.now() + 20000
    while not uv.fs_stat(ready) and uv.now() < deadline do
      uv.run("nowait")
      uv.sleep(10)
      uv.update_time()
    end
    assert.is_truthy(uv.fs_stat(ready), "the script never became ready")
    handle:kill("sigint")
    while (code == nil or not stdout:is_closing()) and uv.now() < deadline do
      uv.run("nowait")
      uv.sleep(10)
      uv.update_time()
    end
    assert.equal(42, code)
    assert.equal("got SIGINT\n", table.concat(out))
  end)

  it("says which interpreter is missing and how to install it, and records the attempt", function()
    write(dir .. "/job.py", "print(1)\n")
    local no_python = h.env({ PATH = "/nonexistent", PRISN_HOME = env.PRISN_HOME })
    local r = h.prisn({ "run", dir .. "/job.py" }, { env = no_python })
    assert.equal(1, r.code)
    assert.equal("Error: python3: not found\n", r.stderr:match("^[^\n]*\n"))
    assert.matches("\nHint: [^\n]*python3", r.stderr)
    assert.equal("", r.stdout)
    local job = h.jobs(env)[1]
    assert.same({ "failed", "failed_to_start", "python3: not found" }, { job.state, job.reason, job.message })
  end)

  it("names a script that does not exist", function()
    local r = h.prisn({ "run", dir .. "/nope.py" }, { env = env })
    assert.equal(1, r.code)
    assert.equal("Error: script not found: " .. dir .. "/nope.py\n", r.stderr:match("^[^\n]*\n"))
  end)

  it("refuses an unknown script type, listing the runners and how to add one", function()
    write(dir .. "/data.xyz", "whatever\n")
    local r = h.prisn({ "run", dir .. "/data.xyz" }, { env = env })
    assert.equal(1, r.code)
    assert.matches("^Error: cannot tell how to run [^\n]*data.xyz: no runner claims the extension .xyz\n", r.stderr)
    assert.matches("\nHint: [^\n]*python3[^\n]*runners/", r.stderr)
  end)

  it("makes a new extension runnable with an operator runner", function()
    if not has_command("tclsh") then
      pending("tclsh is not installed")
      return
    end
    local runners = env.PRISN_HOME .. "/runners"
    assert(h.run("/bin/mkdir", { "-p", runners }, { env = env }).code == 0)
    local example = assert(io.open(h.source_dir .. "/contrib/runners/tcl.lua")):read("a")
    write(runners .. "/tcl.lua", example)
    write(dir .. "/hello.tcl", "puts \"tcl says [lindex $argv 0]\"\nexit 7\n")
    local r = h.prisn({ "run", dir .. "/hello.tcl", "hi" }, { env = env })
    assert.equal(7, r.code, r.stderr)
    assert.equal("tcl says hi\n", r.stdout)
  end)

  it("uses the shebang before the extension, and --runner before both", function()
    write(dir .. "/tool.txt", "#!/usr/bin/env bash\necho \"bash $BASH_VERSION\" | cut -c1-6\n")
    assert.equal("bash 5\n", h.prisn({ "run", dir .. "/tool.txt" }, { env = env }).stdout)
    write(dir .. "/any.py", "echo from sh\n")
    assert.equal("from sh\n", h.prisn({ "run", "--runner", "sh", dir .. "/any.py" }, { env = env }).stdout)
  end)

  it("runs inline code with --exec", function()
    local r = h.prisn({ "run", "--exec", "import sys; print(sum(map(int, sys.argv[1:])))", "--runner", "python3",
      "--", "1", "2", "3" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.equal("6\n", r.stdout)
    local missing = h.prisn({ "run", "--exec", "print(1)" }, { env = env })
    assert.equal(2, missing.code)
    assert.matches("^Error: %-%-exec needs %-%-runner", missing.stderr)
  end)

  it("records every run as a job with its output in the log", function()
    write(dir .. "/a.py", "import sys\nprint('first')\nprint('oops', file=sys.stderr)\n")
    write(dir .. "/b.sh", "echo second\nexit 2\n")
    assert.equal(0, h.prisn({ "run", dir .. "/a.py" }, { env = env }).code)
    assert.equal(2, h.prisn({ "run", dir .. "/b.sh" }, { env = env }).code)
    local jobs = h.jobs(env)
    assert.equal(2, #jobs)
    assert.equal(dir .. "/b.sh", jobs[1].script) -- newest first
    assert.same({ "failed", "exited", 2, "bash" }, { jobs[1].state, jobs[1].reason, jobs[1].exit_code, jobs[1].runner })
    assert.same({ "succeeded", "exited", 0, "python3" },
      { jobs[2].state, jobs[2].reason, jobs[2].exit_code, jobs[2].runner })
    assert.is_string(jobs[2].started_at)
    assert.is_string(jobs[2].finished_at)
    local logs = h.prisn({ "logs", "job/" .. jobs[2].id }, { env = env })
    assert.equal(0, logs.code, logs.stderr)
    assert.equal("first\n", logs.stdout)
    assert.equal("oops\n", logs.stderr)
    local one = h.prisn({ "get", "job", jobs[1].id, "-o", "json" }, { env = env })
    assert.equal(jobs[1].id, cjson.decode(one.stdout).id)
  end)

  it("parses a run's command line as the whole command tree does: help, --version, mistakes", function()
    -- prisn.main parses `run ...` against the run family's declarations
    -- alone, and falls back to the whole tree for these.
    local help = h.prisn({ "run", "--help" }, { env = env })
    assert.equal(0, help.code, help.stderr)
    assert.matches("^prisn run %- ", help.stdout)
    local version = h.prisn({ "run", "--version" }, { env = env })
    assert.equal(0, version.code, version.stderr)
    assert.matches("Version:", version.stdout)
    local bad = h.prisn({ "run", "--bogus", dir .. "/x.sh" }, { env = env })
    assert.equal(2, bad.code)
    assert.matches("^Error: unknown flag %-%-bogus for 'prisn run'\nHint: ", bad.stderr)
  end)

  it("leaves a run's output, record and events complete when it exits without tearing down Lua", function()
    -- 1.1 MB through a pipe: prisn exits without closing its Lua state once
    -- the run is over (core/main.c), and a bash job's creation is written
    -- with its start (prisn.exec.job_record).
    write(dir .. "/big.sh", "for i in $(seq 1 50000); do echo \"line $i of the output\"; done\n"
      .. "echo 'to stderr' >&2\nexit 7\n")
    local r = h.prisn({ "run", dir .. "/big.sh" }, { env = env })
    assert.equal(7, r.code, r.stderr)
    local _, lines = r.stdout:gsub("\n", "")
    assert.equal(50000, lines)
    assert.equal("line 50000 of the output\n", r.stdout:sub(-25))
    assert.equal("to stderr\n", r.stderr)
    local job = h.jobs(env)[1]
    assert.same({ "failed", "exited", 7, "bash" }, { job.state, job.reason, job.exit_code, job.runner })
    local store = require("prisn.store")
    local db = store.open(env.PRISN_HOME, { create = false })
    local row = require("prisn.store.jobs").get_by_id(db, job.id)
    local list = require("prisn.store.events").list(db, { object = "job/" .. job.id, order = "asc" })
    db:close()
    assert.is_true(row.created_at <= row.started_at and row.started_at <= row.finished_at)
    local actions = {}
    for i, ev in ipairs(list) do actions[i] = ev.action end
    assert.same({ "job.created", "job.started", "job.finished" }, actions)
  end)

  it("shows a local run as running while it runs, then its end", function()
    write(dir .. "/slow.sh", "sleep 1\necho slept\n")
    local list = {}
    for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
    local code, pid, handle
    handle, pid = uv.spawn(h.bin, { args = { "run", "-q", dir .. "/slow.sh" }, env = list },
      function(c) code = c; handle:close() end)
    assert(handle, pid)
    local running = h.wait_for(function()
      local job = h.jobs(env)[1]
      return job ~= nil and job.script == dir .. "/slow.sh" and job.state == "running"
    end, 5000)
    if not h.wait_for(function() return code ~= nil end, 15000) then uv.kill(pid, "sigkill") end
    assert.is_true(running, "the job never showed as running")
    assert.equal(0, code)
    local job = h.jobs(env)[1]
    assert.same({ dir .. "/slow.sh", "succeeded", 0 }, { job.script, job.state, job.exit_code })
  end)
end)
