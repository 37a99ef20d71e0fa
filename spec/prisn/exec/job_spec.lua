-- prisn.exec.job: prepare and execute driven with a fake recorder, against
-- a real bash at isolation 0 (no sandbox, no cgroup): what is recorded and
-- in which order, what the workload sees, and how failures before the start
-- are reported (to the recorder, and as a prisn.error with a hint).
local uv = require("luv")
local async = require("prisn.async")
local fs = require("prisn.fs")
local job = require("prisn.exec.job")
local support = require("support")

-- A recorder that keeps what it is told, in order.
local function fake_recorder()
  local rec = { calls = {}, job = { id = "06spec" } }
  local function note(name) return function(...) rec.calls[#rec.calls + 1] = { name, ... } end end
  rec.create, rec.update, rec.start = note("create"), note("update"), note("start")
  rec.finish, rec.fail_to_start = note("finish"), note("fail_to_start")
  function rec.open_log() return nil end
  function rec.names()
    local list = {}
    for i, call in ipairs(rec.calls) do list[i] = call[1] end
    return list
  end
  return rec
end

describe("prisn.exec.job", function()
  local home, dir

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    dir = home .. "/scripts"
    assert(fs.mkdir_p(dir))
  end)

  after_each(function()
    support.remove_tree(home)
  end)

  local function script(name, text)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
  end

  local function options(path, extra)
    local opts = { home = home, script = path, args = {}, env = {}, cwd = dir, isolation = 0,
      forward_signals = false }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return opts
  end

  it("records create, start and finish in that order and hands the output to the sinks", function()
    local path = script("hello.sh", 'echo "hi $1 $GREETING"; echo oops >&2; exit 3\n')
    local rec, out, err = fake_recorder(), {}, {}
    local outcome = async.main(function()
      return job.execute(options(path, { args = { "there" }, env = { GREETING = "friend" } }), rec, {
        stdout = function(data) out[#out + 1] = data end,
        stderr = function(data) err[#err + 1] = data end,
      })
    end)
    assert.same({ "create", "start", "finish" }, rec.names())
    assert.equal("bash", rec.calls[1][2].name)
    assert.equal("integer", math.type(rec.calls[2][2]))
    assert.same({ state = "failed", reason = "exited", exit_code = 3 },
      { state = rec.calls[3][2].state, reason = rec.calls[3][2].reason, exit_code = rec.calls[3][2].exit_code })
    assert.equal("hi there friend\n", table.concat(out))
    assert.equal("oops\n", table.concat(err))
    assert.equal(3, outcome.exit_code)
  end)

  it("stops a workload at its timeout: SIGTERM to the group, reason timeout, exit 124", function()
    local path = script("slow.sh", "sleep 30\n")
    local rec = fake_recorder()
    local started = uv.hrtime()
    local outcome = async.main(function()
      return job.execute(options(path, { timeout = 0.3, grace = 1 }), rec, {})
    end)
    assert.equal("timeout", outcome.reason)
    assert.equal(124, outcome.exit_code)
    assert.is_true((uv.hrtime() - started) / 1e9 < 5)
    assert.same({ "create", "start", "finish" }, rec.names())
  end)

  it("refuses a script of an unknown type before recording anything", function()
    local path = script("data.unknownext", "x\n")
    local rec = fake_recorder()
    local err = support.raised(job.prepare, options(path), rec)
    assert.same({}, rec.names())
    assert.truthy(err.hint)
  end)

  it("reports a runner whose interpreter is missing to the recorder, then raises with the runner's hint", function()
    assert(fs.mkdir_p(home .. "/runners"))
    local f = assert(io.open(home .. "/runners/ghost.lua", "w"))
    f:write('return { name = "ghost", extensions = { ".ghost" }, interpreter = "prisn-no-such-interpreter",\n'
      .. '  install_hint = "apt install ghost", command = { "{interpreter}", "{script}" } }\n')
    f:close()
    local rec = fake_recorder()
    local err = support.raised(job.prepare, options(script("x.ghost", "boo\n")), rec)
    assert.same({ "create", "fail_to_start" }, rec.names())
    assert.equal("ghost", rec.calls[1][2].name)
    assert.truthy(err.message:find("prisn-no-such-interpreter", 1, true))
    assert.truthy(err.hint:find("apt install ghost", 1, true))
  end)

  it("prepares a bash script without a dependency environment", function()
    local rec = fake_recorder()
    local launch = job.prepare(options(script("plain.sh", "true\n")), rec)
    assert.is_nil(launch.env_dir)
    assert.is_nil(launch.env_key)
    assert.equal("bash", launch.runner.name)
    assert.equal(launch.file, launch.argv[1]:sub(1, 1) == "/" and launch.argv[1] or launch.interpreter)
  end)
end)
