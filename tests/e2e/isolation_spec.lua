-- `prisn run --isolation` for real: at level 1 a script sees and signals only
-- its own processes, finds $PRISN_HOME empty, and its exit (code or signal)
-- is reported as if it ran directly; what it leaves running dies with it. At
-- level 3 it cannot reach the host's loopback but has its own. A server job
-- of a root server runs as the unprivileged workload user. Needs namespaces
-- (root, or user namespaces); each test says why when it cannot run.
local h = require("e2e.helper")
local read, write, alive = h.read, h.write, h.alive
local cjson = require("cjson")
local uv = require("luv")

local function no_namespaces_reason()
  local p = require("prisn.exec.isolation").probe()
  if not p.ok then return "no namespaces here: " .. p.why end
  return nil
end

-- A sleep of the test's own, outside any sandbox; killed by the caller.
local function start_sleeper()
  local handle, pid = uv.spawn("/bin/sleep", { args = { "300" } }, function() end)
  assert(handle, pid)
  return handle, pid
end

describe("prisn run --isolation", function()
  local dir, env, reason

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or env
    return h.prisn(args, opts)
  end

  local function jobs() return h.jobs(env) end

  before_each(function()
    dir = h.tempdir("prisn-iso")
    env = h.env()
    reason = no_namespaces_reason()
  end)

  after_each(function() h.cleanup() end)

  it("level 1: the script sees only its own processes and cannot kill one outside", function()
    if reason then return pending(reason) end
    local sleeper, pid = start_sleeper()
    finally(function()
      uv.kill(pid, "sigkill")
      sleeper:close()
      uv.run("nowait")
    end)
    write(dir .. "/probe.sh", "echo self=$$\nls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo\n"
      .. "if kill -9 \"$VICTIM\" 2>/dev/null; then echo killed; else echo refused; fi\n")
    local r = prisn({ "run", "--isolation", "1", "-e", "VICTIM=" .. pid, dir .. "/probe.sh" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^self=2\n", r.stdout)
    -- pid 1 is prisn-init, 2 the script, the rest its own ls/grep/sort/tr.
    local listed = r.stdout:match("\n([%d ]+)\n")
    for n in listed:gmatch("%d+") do assert.is_true(tonumber(n) < 20, "foreign pid listed: " .. n) end
    assert.matches("refused\n$", r.stdout)
    assert.is_true(alive(pid), "the sleeper outside was killed")
    -- pid 1 names itself prisn-init: as the fork (comm), then as prisn's
    -- binary exec'd in init mode (argv[0] at once, comm once it runs).
    local who = prisn({ "run", "--isolation", "1", "--exec",
      "cat /proc/1/comm; tr '\\0' ' ' < /proc/1/cmdline; echo", "--runner", "sh" })
    local comm, argv0 = who.stdout:match("^(%S+)\n(%S+)")
    assert.is_true(comm == "prisn-init" or argv0 == "prisn-init", "pid 1 is " .. who.stdout)
  end)

  it("level 1: hides $PRISN_HOME from the script", function()
    if reason then return pending(reason) end
    write(dir .. "/peek.sh", "ls -A \"$PRISN_HOME\" | tr '\\n' ' '; echo\n"
      .. "cat \"$PRISN_HOME/state.db\" >/dev/null 2>&1 && echo read || echo hidden\n")
    local r = prisn({ "run", "--isolation", "1", dir .. "/peek.sh" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("\nhidden\n", r.stdout)
  end)

  it("level 1: pid 1 shows nothing of prisn's to the script (its memory, environment, arguments)", function()
    if reason then return pending(reason) end
    -- The script must be the user prisn runs as, not root: as root prisn
    -- is run as nobody (a local run's init may be a copy of prisn itself).
    local cmd, args = h.bin, {}
    if uv.getuid() == 0 then
      if not uv.fs_access("/usr/bin/setpriv", "X") then return pending("setpriv (util-linux) is not installed") end
      cmd, args = "/usr/bin/setpriv", { "--reuid=65534", "--regid=65534", "--clear-groups", "--", h.bin }
      assert(uv.fs_chmod(dir, tonumber("755", 8)))
      local home = h.tempdir("prisn-iso-home")
      assert(uv.fs_chown(home, 65534, 65534))
      env = h.env({ PRISN_HOME = home .. "/home", HOME = home })
    end
    env.PRISN_ISO_MARK = "secret-of-prisn"
    for _, a in ipairs({ "run", "--isolation", "1", "--exec", "tr '\\0' ' ' < /proc/1/cmdline; echo; "
      .. "cat /proc/1/environ >/dev/null 2>&1 && echo environ || echo no-environ; "
      .. "head -c 1 /proc/1/maps >/dev/null 2>&1 && echo maps || echo no-maps", "--runner", "sh" }) do
      args[#args + 1] = a
    end
    local r = h.run(cmd, args, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^prisn%-init[%w%s_-]*\nno%-environ\nno%-maps\n$", r.stdout)
    assert.is_nil(r.stdout:find("exec", 1, true), r.stdout)
  end)

  it("level 1: reports the script's own exit code and signal, not the init's", function()
    if reason then return pending(reason) end
    local r = prisn({ "run", "--isolation", "1", "--exec", "exit 7", "--runner", "sh" })
    assert.equal(7, r.code, r.stderr)
    r = prisn({ "run", "--isolation", "1", "--exec", "kill -TERM $$", "--runner", "sh" })
    assert.equal(143, r.code, r.stderr)
    local job = jobs()[1]
    assert.same({ "failed", "killed", "TERM" }, { job.state, job.reason, job.signal })
  end)

  it("level 1: forwards the timeout's SIGTERM and kills what is left when the script ends", function()
    if reason then return pending(reason) end
    local mark = tostring(300 + uv.getpid() % 600)
    write(dir .. "/tree.sh", "trap 'echo got TERM; exit 3' TERM\nsleep " .. mark .. " &\necho ready\n"
      .. "while :; do sleep 0.05; done\n")
    local r = prisn({ "run", "--isolation", "1", "--timeout", "1s", "--grace", "2s", dir .. "/tree.sh" })
    assert.equal(124, r.code, r.stderr)
    assert.equal("ready\ngot TERM\n", r.stdout)
    -- The backgrounded sleep died with the namespace.
    local dirh = uv.fs_scandir("/proc")
    while true do
      local name = uv.fs_scandir_next(dirh)
      if not name then break end
      if name:match("^%d+$") then
        local cmd = read("/proc/" .. name .. "/cmdline") or ""
        assert.is_nil(cmd:find("sleep\0" .. mark, 1, true), "left running: pid " .. name)
      end
    end
  end)

  it("level 3: cannot reach the host's loopback, has its own", function()
    if reason then return pending(reason) end
    if not uv.fs_access("/usr/bin/python3", "X") then return pending("python3 is not installed") end
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    assert(server:listen(8, function() end))
    finally(function() server:close(); uv.run("nowait") end)
    local port = server:getsockname().port
    write(dir .. "/net.py", table.concat({
      "import socket, sys",
      "def reach(port):",
      "    try:",
      "        socket.create_connection(('127.0.0.1', port), timeout=2).close(); return 'reached'",
      "    except OSError as e: return 'refused'",
      "print('host', reach(int(sys.argv[1])))",
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)",
      "print('own', reach(s.getsockname()[1]))",
    }, "\n") .. "\n")
    local r = prisn({ "run", "--isolation", "3", dir .. "/net.py", tostring(port) })
    assert.equal(0, r.code, r.stderr)
    assert.equal("host refused\nown reached\n", r.stdout)
    local control = prisn({ "run", "--isolation", "1", dir .. "/net.py", tostring(port) })
    assert.equal("host reached\nown reached\n", control.stdout)
  end)

  it("level 2: the host is out of reach while the script's own work succeeds", function()
    if reason then return pending(reason) end
    local app, work, other = dir .. "/app", dir .. "/work", dir .. "/other"
    for _, d in ipairs({ app, work, other }) do uv.fs_mkdir(d, tonumber("755", 8)) end
    write(app .. "/data.txt", "own data\n")
    write(other .. "/secret", "another workload's\n")
    write(app .. "/escape.sh", table.concat({
      "try() { if eval \"$2\" >/dev/null 2>&1; then echo \"$1 ok\"; else echo \"$1 denied\"; fi; }",
      "try shadow 'cat /etc/shadow'",
      "try root 'ls /root'",
      "try usr 'touch /usr/prisn-escape'",
      "try home 'cat \"$PRISN_HOME/state.db\"'",
      "try other 'cat " .. other .. "/secret'",
      "try own-folder 'cat " .. app .. "/data.txt'",
      "try write-own-folder 'touch " .. app .. "/new'",
      "try workspace 'echo out > result.txt'",
      "try tmp 'echo t > /tmp/t && cat /tmp/t'",
      "try python 'python3 -c \"import json, sqlite3, ssl\"'",
      "ls -A \"$PRISN_HOME\" | tr '\\n' ' '; echo",
    }, "\n") .. "\n")
    local r = prisn({ "run", "--isolation", "2", app .. "/escape.sh" }, { cwd = work })
    assert.equal(0, r.code, r.stderr)
    assert.equal(table.concat({ "shadow denied", "root denied", "usr denied", "home denied", "other denied",
      "own-folder ok", "write-own-folder denied", "workspace ok", "tmp ok", "python ok", "" }, "\n") .. "\n",
      r.stdout)
    assert.equal("out\n", read(work .. "/result.txt"))
    assert.is_nil(read("/usr/prisn-escape"))
    assert.is_nil(uv.fs_stat(app .. "/new"))
    -- The private /tmp is gone with the run.
    assert.equal(1, prisn({ "run", "--isolation", "2", "--exec", "cat /tmp/t", "--runner", "sh" }).code)
  end)

  it("--disk 10M stops a 50 MB write in the working directory with ENOSPC", function()
    if reason then return pending(reason) end
    write(dir .. "/fill.sh", "dd if=/dev/zero of=big bs=1M count=50\n"
      .. "ls -s big >/dev/null && echo partial\nexit 28\n")
    local r = prisn({ "run", "--disk", "10M", dir .. "/fill.sh" }, { cwd = dir })
    assert.equal(28, r.code, r.stderr)
    assert.equal("partial\n", r.stdout)
    assert.matches("No space left on device", r.stderr)
    assert.matches("prisn: job %w+ out of disk space: the job filled its %-%-disk 10M\n$", r.stderr)
    -- What it wrote was bounded and is gone; the folder's own files stayed.
    assert.is_nil(uv.fs_stat(dir .. "/big"))
    assert.is_truthy(uv.fs_stat(dir .. "/fill.sh"))
    local job = jobs()[1]
    assert.same({ "failed", 28, "out of disk space: the job filled its --disk 10M" },
      { job.state, job.exit_code, job.message })
    r = prisn({ "run", "--disk", "10M", "--isolation", "1", dir .. "/fill.sh" })
    assert.equal(2, r.code)
    assert.matches("needs isolation level 2 or 3", r.stderr)
  end)

  it("rejects a level out of range", function()
    local r = prisn({ "run", "--isolation", "7", "--exec", "true", "--runner", "sh" })
    assert.equal(2, r.code)
  end)

  it("a root server runs jobs as the unprivileged workload user, who cannot read $PRISN_HOME", function()
    if reason then return pending(reason) end
    if uv.getuid() ~= 0 then return pending("needs root (the server drops privileges only as root)") end
    local start = prisn({ "server", "start", "-q" })
    assert.equal(0, start.code, start.stderr)
    finally(function()
      local info = read(env.PRISN_HOME .. "/server.json")
      prisn({ "server", "stop", "--timeout", "5s" })
      local pid = info and math.tointeger(cjson.decode(info).pid)
      if pid and uv.kill(pid, 0) then uv.kill(pid, "sigkill") end
    end)
    write(dir .. "/who.sh", "id -u\ncat " .. env.PRISN_HOME .. "/master.key >/dev/null 2>&1 && echo read || "
      .. "echo denied\nls -A " .. env.PRISN_HOME .. "/logs 2>/dev/null | wc -l\n")
    local r = prisn({ "run", "--detach", dir .. "/who.sh" })
    assert.equal(0, r.code, r.stderr)
    local id = r.stdout:match("^(%w+)\n$")
    local follow = prisn({ "logs", "-f", "job/" .. id })
    assert.equal(0, follow.code, follow.stderr)
    assert.equal("65534\ndenied\n0\n", follow.stdout)
    -- Level 0 keeps the server's user.
    r = prisn({ "run", "--detach", "--isolation", "0", dir .. "/who.sh" })
    id = r.stdout:match("^(%w+)\n$")
    follow = prisn({ "logs", "-f", "job/" .. id })
    assert.matches("^0\nread\n", follow.stdout)
    -- Level 2: a workspace of its own under $PRISN_HOME/work, removed after;
    -- with --disk a bounded tmpfs there instead.
    write(dir .. "/ws.sh", "pwd\necho out > result && cat result\nls -A " .. env.PRISN_HOME .. " | tr '\\n' ' '\n"
      .. "echo\nhead -c 3000000 /dev/zero > big 2>/dev/null || echo full\n")
    r = prisn({ "run", "--detach", "--isolation", "2", dir .. "/ws.sh" })
    id = r.stdout:match("^(%w+)\n$")
    follow = prisn({ "logs", "-f", "job/" .. id })
    assert.equal(env.PRISN_HOME .. "/work/" .. id .. "\nout\n\n", follow.stdout) -- home: not listable
    assert.is_nil(uv.fs_stat(env.PRISN_HOME .. "/work/" .. id))
    r = prisn({ "run", "--detach", "--disk", "2M", dir .. "/ws.sh" })
    id = r.stdout:match("^(%w+)\n$")
    follow = prisn({ "logs", "-f", "job/" .. id })
    assert.matches("^" .. env.PRISN_HOME:gsub("%p", "%%%0") .. "/work/" .. id .. "\nout\n.*full\n$", follow.stdout)
  end)
end)
