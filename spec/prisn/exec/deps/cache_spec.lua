-- prisn.exec.deps.cache: a detection reused while nothing it read changed.
local uv = require("luv")
local cache = require("prisn.exec.deps.cache")
local remove_tree = require("support").remove_tree

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("prisn.exec.deps.cache", function()
  local home, dir
  local LATER = os.time() + 60 -- "now" for store: nothing written here is racy then

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    dir = home .. "/project"
    assert(uv.fs_mkdir(dir, tonumber("755", 8)))
    write(dir .. "/app.py", "import requests\n")
  end)

  after_each(function()
    remove_tree(home)
  end)

  -- A detection that reads the script and asks whether a manifest and a
  -- folder exist, through a recording ctx.
  local function detect()
    local ctx, consulted = cache.recording({
      read_file = function(path)
        local f = io.open(path)
        local t = f and f:read("a")
        if f then f:close() end
        return t
      end,
      exists = function(path) return uv.fs_stat(path) ~= nil end,
      is_dir = function(path) local st = uv.fs_stat(path); return st ~= nil and st.type == "directory" end,
      home = "/nonexistent",
    })
    ctx.read_file(dir .. "/app.py")
    ctx.exists(dir .. "/requirements.txt")
    ctx.is_dir(dir)
    return { source = "imports", file = dir .. "/app.py", dependencies = { "requests" }, options = {} }, consulted
  end

  it("stamps a path by its type, and a read one by its size, inode and times too", function()
    assert.equal("none", cache.stamp(dir .. "/missing"))
    assert.equal("directory", cache.stamp(dir))
    assert.equal("file", cache.stamp(dir .. "/app.py"))
    assert.matches("^file:16:%d+:%d+%.%d+:%d+%.%d+$", cache.stamp(dir .. "/app.py", true))
  end)

  it("records which paths were read and which only asked about", function()
    local _, consulted = detect()
    assert.same({ [dir .. "/app.py"] = true, [dir .. "/requirements.txt"] = false, [dir] = false }, consulted)
  end)

  it("gives back a stored result while nothing it consulted changed", function()
    local key = cache.key({ "python", dir .. "/app.py", "/usr/bin/python3", "3.11.7", "/root" })
    assert.is_nil(cache.lookup(home, key))
    local found, consulted = detect()
    assert.is_true(cache.store(home, key, consulted, found, LATER))
    assert.same(found, cache.lookup(home, key))
    -- A new file in the folder changes the folder's times, not its answer.
    write(dir .. "/output.csv", "1,2\n")
    assert.same(found, cache.lookup(home, key))
    -- Another interpreter, another key.
    assert.is_nil(cache.lookup(home, cache.key({ "python", dir .. "/app.py", "/usr/bin/python3", "3.12.1", "/root" })))
  end)

  it("gives nothing back once a read file changed or a manifest it looked for appeared", function()
    local key = cache.key({ "python", dir .. "/app.py" })
    local found, consulted = detect()
    assert.is_true(cache.store(home, key, consulted, found, LATER))
    write(dir .. "/app.py", "import requests, flask\n")
    assert.is_nil(cache.lookup(home, key))

    found, consulted = detect()
    assert.is_true(cache.store(home, key, consulted, found, LATER))
    write(dir .. "/requirements.txt", "requests\n")
    assert.is_nil(cache.lookup(home, key))
  end)

  it("keeps nothing read within the racy window, and ignores an entry it cannot read", function()
    local key = cache.key({ "python", dir .. "/app.py" })
    local found, consulted = detect()
    assert.is_false(cache.store(home, key, consulted, found, os.time()))
    assert.is_nil(cache.lookup(home, key))
    assert.is_true(cache.store(home, key, consulted, found, LATER))
    local entries, scan = {}, uv.fs_scandir(cache.dir(home))
    for name in function() return uv.fs_scandir_next(scan) end do entries[#entries + 1] = name end
    assert.same({ key .. ".json" }, entries)
    write(cache.dir(home) .. "/" .. key .. ".json", "{ torn")
    assert.is_nil(cache.lookup(home, key))
  end)
end)
