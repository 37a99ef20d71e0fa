local policies = require("prisn.policies")
local support = require("spec.support")
local uv = require("luv")

describe("prisn.policies", function()
  local home, logged

  local function write(name, text)
    local f = assert(io.open(home .. "/policies/" .. name .. ".lua", "w"))
    f:write(text)
    f:close()
  end

  local log = { error = function(_, fmt, ...) logged[#logged + 1] = string.format(fmt, ...) end }

  before_each(function()
    home = os.tmpname()
    os.remove(home)
    assert(uv.fs_mkdir(home, tonumber("700", 8)))
    assert(uv.fs_mkdir(home .. "/policies", tonumber("700", 8)))
    logged = {}
  end)

  after_each(function() support.remove_tree(home) end)

  it("is the built-in policy when the operator has none", function()
    assert.equal(require("prisn.policies.restart"), policies.get(home, "restart", log))
    assert.equal(require("prisn.policies.rollout"), policies.get(nil, "rollout"))
  end)

  it("uses the operator's policy, and the built-in for what it leaves out", function()
    write("restart", [[
return { decide = function(state, event)
  return { restart = true, delay_s = 7, crash_loop = false, status = "restarting", reason = "operator",
    next = state or {} }
end }
]])
    local p = policies.get(home, "restart", log)
    local d = p.decide(nil, { type = "exit", at = 1, code = 1 })
    assert.equal(7, d.delay_s)
    assert.equal("operator", d.reason)
    assert.equal(require("prisn.policies.restart").base_delay, p.base_delay)
    assert.same({}, logged)
  end)

  it("falls back to the built-in policy when the operator's raises or loops", function()
    write("restart", "return { decide = function() error('boom') end }\n")
    local d = policies.get(home, "restart", log).decide(nil, { type = "exit", at = 1, code = 1 })
    assert.equal(0, d.delay_s) -- the built-in's first restart
    assert.matches("restart.lua: decide: .*boom; using the built%-in policy", logged[1])
    -- A changed file is read again.
    write("restart", "return { decide = function() while true do end end }\n")
    uv.fs_utime(home .. "/policies/restart.lua", 100, 100)
    d = policies.get(home, "restart", log).decide(nil, { type = "exit", at = 1, code = 1 })
    assert.is_true(d.restart)
    assert.matches("ran over its budget", logged[2])
  end)

  it("says so and uses the built-in policy when the file does not load", function()
    write("autoscale", "return {")
    assert.equal(require("prisn.policies.autoscale"), policies.get(home, "autoscale", log))
    assert.matches("autoscale.lua:1: .*using the built%-in policy", logged[1])
    write("rollout", "os.execute('true')\nreturn {}")
    uv.fs_utime(home .. "/policies/rollout.lua", 100, 100)
    assert.equal(require("prisn.policies.rollout"), policies.get(home, "rollout", log))
    assert.matches("rollout.lua:1: attempt to call a nil value %(field 'execute'%)", logged[2])
  end)
end)
