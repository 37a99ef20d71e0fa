-- The built-in runners (runners/*.lua, embedded as prisn.runners.<name>).
local runners = require("prisn.exec.runners")
local format = require("prisn.exec.runners.format")

local function each_builtin(fn)
  for _, name in ipairs(runners.BUILTINS) do fn(require("prisn.runners." .. name), name) end
end

describe("built-in runners", function()
  it("include the ones the issue promises", function()
    assert.same({ "bash", "bun", "deno", "lua", "node", "perl", "php", "python3", "ruby", "sh" }, runners.BUILTINS)
  end)

  it("all pass the schema, under the name of their module", function()
    each_builtin(function(r, name)
      assert.is_true(format.check(r, "runners/" .. name .. ".lua"))
      assert.equal(name, r.name)
    end)
  end)

  it("all say how to check and how to install their interpreter", function()
    each_builtin(function(r, name)
      assert.is_string(r.description, name)
      assert.is_string(r.install_hint, name)
      assert.is_truthy(#r.install_hint > 0, name)
      assert.is_table(r.version, name)
      assert.same({ "/usr/bin/x" }, { format.expand(r.version, { interpreter = "/usr/bin/x" })[1] }, name)
      assert.is_truthy(r.deps == "python" or r.deps == "node" or r.deps == "none", name)
    end)
  end)

  it("all run inline code, passing the script's arguments", function()
    each_builtin(function(r, name)
      local argv = runners.command(r, { code = "CODE", interpreter = "/i", args = { "ARG" } })
      assert.is_table(argv, name)
      assert.equal("/i", argv[1], name)
      assert.equal("ARG", argv[#argv], name)
      local has_code = false
      for _, a in ipairs(argv) do if a == "CODE" then has_code = true end end
      assert.is_true(has_code, name)
    end)
  end)

  it("never claim the same extension twice", function()
    local owner = {}
    each_builtin(function(r)
      for _, ext in ipairs(r.extensions or {}) do
        assert.is_nil(owner[ext], ext .. " is claimed by " .. tostring(owner[ext]) .. " and " .. r.name)
        owner[ext] = r.name
      end
    end)
    assert.same({
      [".py"] = "python3", [".pyw"] = "python3", [".js"] = "node", [".mjs"] = "node", [".cjs"] = "node",
      [".sh"] = "bash", [".bash"] = "bash", [".lua"] = "lua", [".rb"] = "ruby", [".pl"] = "perl",
      [".php"] = "php", [".ts"] = "deno", [".tsx"] = "deno", [".mts"] = "deno",
    }, owner)
  end)

  it("hand dependencies to the right manager", function()
    assert.equal("python", require("prisn.runners.python3").deps)
    assert.equal("node", require("prisn.runners.node").deps)
    assert.equal("none", require("prisn.runners.bash").deps)
  end)

  it("run Lua scripts in prisn itself", function()
    local lua = require("prisn.runners.lua")
    assert.equal("@prisn", lua.interpreter)
    assert.same({ "/usr/bin/prisn", "lua", "/s/x.lua", "a" },
      runners.command(lua, { script = "/s/x.lua", interpreter = "/usr/bin/prisn", args = { "a" } }))
  end)
end)
