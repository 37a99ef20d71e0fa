-- prisn.sandbox: the environments operator Lua gets, and the budget.
local sandbox = require("prisn.sandbox")

describe("prisn.sandbox", function()
  it("gives operator code copies of the libraries, not prisn's own", function()
    local env = sandbox.environment()
    assert.are_not.equal(string, env.string)
    env.string.upper = nil
    assert.is_function(string.upper)
    assert.is_nil(env.require)
    assert.is_nil(env.load)
    assert.is_nil(env.debug)
    assert.is_nil(env.io)
    assert.is_nil(env.os.execute)
    assert.is_function(env.os.getenv)
  end)

  it("keeps metatables and the clock out of code that runs in prisn's process", function()
    local env = sandbox.environment("in_process")
    for _, name in ipairs({ "getmetatable", "setmetatable", "rawget", "rawset" }) do
      assert.is_nil(env[name], name)
    end
    assert.same({ "getenv" }, (function()
      local names = {}
      for k in pairs(env.os) do names[#names + 1] = k end
      return names
    end)())
    assert.is_function(env.pcall)
    assert.is_function(env.tostring)
  end)

  it("gives a hook's child process metatables and the clock as well", function()
    local env = sandbox.environment("child")
    for _, name in ipairs({ "getmetatable", "setmetatable", "rawget", "rawset", "pcall", "tostring" }) do
      assert.is_function(env[name], name)
    end
    for _, name in ipairs({ "time", "date", "clock", "getenv" }) do assert.is_function(env.os[name], name) end
    assert.is_nil(env.os.execute)
    assert.is_nil(env.require)
    assert.is_nil(env.io)
  end)

  it("refuses an environment kind it does not know", function()
    assert.has_error(function() sandbox.environment("server") end,
      "sandbox.environment: unknown kind server")
  end)

  it("leaves no hook behind on the caller", function()
    -- The caller's own hook, if any (PRISN_LUA_COVERAGE's line counter), stays.
    local before = table.pack(debug.gethook())
    sandbox.call(function() while true do end end, 1000)
    assert.same(before, table.pack(debug.gethook()))
  end)
end)
