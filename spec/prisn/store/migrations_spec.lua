-- prisn.store.migrations and the store's dependencies: the schema requires
-- nothing, so prisn.store loads no resource module and no require cycle runs
-- through it; the store's modules require nothing above the store (the
-- server, exec, the CLI, the output renderers), and all at their top, where
-- a reader sees them.
local uv = require("luv")

local DIR = "lua/prisn/store"

-- The store's module sources: { name = source }.
local function sources()
  local out = {}
  local dir = assert(uv.fs_scandir(DIR))
  for name in uv.fs_scandir_next, dir do
    if name:match("%.lua$") then
      local f = assert(io.open(DIR .. "/" .. name))
      out[name] = f:read("a")
      f:close()
    end
  end
  return out
end

-- The modules `source` requires, and the lines that require one other than
-- at the top of the module (a `local x = require(...)` line).
local function requires(source)
  local names, hidden = {}, {}
  for line in source:gmatch("[^\n]*") do
    if not line:match("^%s*%-%-") then
      for name in line:gmatch('require%("([^"]+)"%)') do
        names[#names + 1] = name
        if not line:match('^local [%w_]+ = require%("[^"]+"%)[%.%w_]*$') then hidden[#hidden + 1] = line end
      end
    end
  end
  return names, hidden
end

describe("prisn.store.migrations", function()
  it("holds the schema as an ordered list, with each resource's script by name", function()
    local migrations = require("prisn.store.migrations")
    assert.is_true(#migrations >= 8)
    for i, sql in ipairs(migrations) do assert.is_string(sql, "entry " .. i) end
    for _, name in ipairs({ "events", "secrets", "cronjobs", "deployments" }) do
      local found = false
      for _, sql in ipairs(migrations) do found = found or sql == migrations[name] end
      assert.is_true(found, name .. " is an entry of the list")
      assert.matches("CREATE TABLE " .. name, migrations[name])
    end
  end)

  it("requires no module", function()
    assert.same({}, (requires(sources()["migrations.lua"])))
  end)

  it("leaves the resource modules unloaded when prisn.store is loaded", function()
    local saved = {}
    for name, mod in pairs(package.loaded) do
      if name == "prisn.store" or name:match("^prisn%.store%.") then
        saved[name] = mod
        package.loaded[name] = nil
      end
    end
    local ok, err = pcall(require, "prisn.store")
    local loaded = {}
    for name in pairs(package.loaded) do
      if name:match("^prisn%.store%.") then loaded[#loaded + 1] = name end
    end
    for name in pairs(package.loaded) do
      if name == "prisn.store" or name:match("^prisn%.store%.") then package.loaded[name] = nil end
    end
    for name, mod in pairs(saved) do package.loaded[name] = mod end
    assert(ok, err)
    assert.same({ "prisn.store.migrations" }, loaded)
  end)
end)

describe("the store's modules", function()
  it("require nothing above the store, and only at their top", function()
    local above = { "^prisn%.server", "^prisn%.exec", "^prisn%.cli", "^prisn%.client$", "^prisn%.output$",
      "^prisn%.output%.json$", "^prisn%.output%.yaml$", "^prisn%.output%.text$" }
    local problems = {}
    for file, source in pairs(sources()) do
      local names, hidden = requires(source)
      for _, name in ipairs(names) do
        for _, pattern in ipairs(above) do
          if name:match(pattern) then problems[#problems + 1] = file .. " requires " .. name end
        end
      end
      for _, line in ipairs(hidden) do problems[#problems + 1] = file .. ": " .. line end
    end
    table.sort(problems)
    assert.same({}, problems)
  end)
end)
