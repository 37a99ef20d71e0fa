-- Feedback on long work (#14): on a terminal `prisn deploy` shows the
-- rollout (n/N ready, elapsed, the step) and the first `prisn run` of a
-- script with dependencies shows what pip does, summarised, with elapsed
-- time; through a pipe, or with -q, none of it. The terminal is a real pty
-- (python3's pty module) around the real binary.
local h = require("e2e.helper")
local wire = require("chaos.http_client")
local uv = require("luv")

-- Runs argv[2:] on a pty in folder argv[1] and writes all it printed.
local ON_PTY = [[
import os, pty, sys
os.chdir(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
]]

local function on_pty(env, cwd, args)
  local argv = { "-c", ON_PTY, cwd, h.bin }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return h.run("/usr/bin/python3", argv, { env = env, timeout_ms = 60000 })
end

describe("progress on a terminal", function()
  local s, dir

  setup(function()
    s = wire.start_server(h, { PRISN_STOP_GRACE_SECONDS = "2" })
    dir = h.tempdir("prisn-progress")
    h.write(dir .. "/app.sh", "exec sleep 600\n")
  end)

  teardown(function()
    h.stop_server(s.env)
    for _, pid in ipairs(h.recorded_pids(s.home)) do
      if h.alive(pid) then uv.kill(-pid, "sigkill") end
    end
    h.cleanup()
  end)

  it("deploy shows instances becoming ready on a pty, nothing through a pipe or with -q", function()
    local r = on_pty(s.env, dir, { "deploy", "app.sh", "--name", "tty", "-r", "2", "--isolation", "0" })
    assert.equal(0, r.code, r.stdout)
    assert.matches("\r\27%[Ktty: uploading", r.stdout)
    assert.matches("\r\27%[Ktty: 0/2 ready, %d+%.%ds, starting", r.stdout)
    assert.matches("\r\27%[Ktty: [12]/2 ready, %d+%.%ds, ", r.stdout)
    assert.matches("deployment tty: revision 1 serving, 2/2 ready", r.stdout)
    h.write(dir .. "/app.sh", "exec sleep 601\n")
    r = on_pty(s.env, dir, { "deploy", "app.sh", "--name", "tty" })
    assert.matches("tty: %d/2 ready, %d+%.%ds, rolling %d/2", r.stdout)

    h.write(dir .. "/app.sh", "exec sleep 602\n")
    local piped = h.prisn({ "deploy", dir .. "/app.sh", "--name", "tty" }, { env = s.env })
    assert.equal(0, piped.code, piped.stderr)
    assert.equal("", piped.stderr)
    assert.is_nil(piped.stdout:find("\27", 1, true))
    h.write(dir .. "/app.sh", "exec sleep 603\n")
    local quiet = on_pty(s.env, dir, { "deploy", "app.sh", "--name", "tty", "-q" })
    assert.equal(0, quiet.code, quiet.stdout)
    assert.equal("", quiet.stdout)
  end)

  it("the first run with dependencies shows pip's progress summarised on a pty, not through a pipe", function()
    local wheels = require("e2e.wheels").build({ { dist = "acme-widgets", version = "1.0", package = "widgets",
      value = "widgets 1.0" } })
    local scratch = h.tempdir("prisn-pip")
    local function pip_env()
      return h.env({ PIP_NO_INDEX = "1", PIP_FIND_LINKS = wheels, PIP_CONFIG_FILE = "/dev/null",
        PIP_CACHE_DIR = scratch .. "/cache" })
    end
    local app = h.tempdir("prisn-progress-app")
    h.write(app .. "/requirements.txt", "acme-widgets\n")
    h.write(app .. "/main.py", "import widgets\nprint(widgets.VALUE)\n")
    local r = on_pty(pip_env(), app, { "run", "main.py" })
    assert.equal(0, r.code, r.stdout)
    assert.matches("prisn: installing 1 dependency from requirements.txt[^\n]*: acme%-widgets\r\n", r.stdout)
    assert.matches("\r\27%[Kprisn: %d+%.%ds installing acme%-widgets", r.stdout)
    assert.matches("\r\27%[Kprisn: %d+%.%ds installed acme%-widgets%-1%.0", r.stdout)
    assert.matches("\r\27%[Kprisn: environment ready in %d+%.%ds\r\nwidgets 1%.0\r\n$", r.stdout)
    assert.is_nil(r.stdout:find("Successfully installed", 1, true), "pip's own lines are summarised")

    local piped = h.prisn({ "run", "main.py" }, { env = pip_env(), cwd = app, timeout_ms = 60000 })
    assert.equal(0, piped.code, piped.stderr)
    assert.same({ "", "widgets 1.0\n" }, { piped.stderr, piped.stdout })
  end)
end)
