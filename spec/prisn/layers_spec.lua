-- prisn's Lua modules keep their layering: core <- store <- exec <- server |
-- cli, with a base of leaf helpers everyone uses (tests/layers.lua says
-- which module is where). A module requiring a layer above its own, a
-- module no layer lists, or a require cycle fails here, naming the line.
local layers = dofile("tests/layers.lua")

describe("the require graph", function()
  local mods = layers.modules(".")

  it("finds the modules", function()
    assert.is_true(#mods > 100)
  end)

  it("has every module in a layer, requiring only its own layer or lower ones", function()
    assert.same({}, layers.violations(mods))
  end)

  it("has no require cycle", function()
    assert.same({}, layers.cycles(mods))
  end)

  it("keeps requires at the top of modules; only command handlers load lazily (start-up time)", function()
    local lazy = {}
    for _, mod in ipairs(mods) do
      if not mod.name:match("^prisn%.cli%.commands%.") and mod.name ~= "prisn.main" then
        for _, dep in ipairs(mod.requires) do
          if dep.lazy and not layers.LAZY_ALLOWED[mod.name .. " -> " .. dep.name] then
            lazy[#lazy + 1] = string.format("%s:%d requires %s inside a function", mod.path, dep.line, dep.name)
          end
        end
      end
    end
    assert.same({}, lazy)
  end)
end)

describe("tests/layers.lua", function()
  it("places modules by their longest listed prefix", function()
    assert.equal("store", layers.layer("prisn.store.jobs"))
    assert.equal("base", layers.layer("prisn.output.json"))
    assert.equal("server", layers.layer("prisn.server.api.jobs"))
    assert.is_nil(layers.layer("prisn.nowhere"))
  end)

  it("lets a layer call down and never up", function()
    assert.is_true(layers.allowed("server", "exec"))
    assert.is_true(layers.allowed("cli", "server"))
    assert.is_false(layers.allowed("exec", "server"))
    assert.is_false(layers.allowed("store", "exec"))
    assert.is_false(layers.allowed("base", "store"))
  end)

  it("finds a cycle and reports a missing layer", function()
    local mods = {
      { name = "prisn.store.a", path = "a.lua", requires = { { name = "prisn.store.b", line = 1 } } },
      { name = "prisn.store.b", path = "b.lua", requires = { { name = "prisn.store.a", line = 2 },
        { name = "prisn.exec.c", line = 3 } } },
      { name = "prisn.nowhere", path = "n.lua", requires = {} },
    }
    assert.same({ { "prisn.store.a", "prisn.store.b" } }, layers.cycles(mods))
    local v = layers.violations(mods)
    assert.equal(2, #v)
    assert.truthy(v[1]:find("prisn.store.b (store) -> prisn.exec.c (exec), b.lua:3", 1, true))
    assert.truthy(v[2]:find("prisn.nowhere (n.lua) has no layer", 1, true))
  end)
end)
