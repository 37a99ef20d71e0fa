-- prisn.fs: mkdir -p, the one copy (its modes, its refusals).
local uv = require("luv")
local fs = require("prisn.fs")
local support = require("support")

local function mode_of(path)
  return uv.fs_stat(path).mode & tonumber("777", 8)
end

describe("prisn.fs.mkdir_p", function()
  local root

  before_each(function()
    root = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
  end)

  after_each(function()
    support.remove_tree(root)
  end)

  it("creates the missing parents and is fine with what exists", function()
    assert.is_true(fs.mkdir_p(root .. "/a/b/c"))
    assert.equal("directory", uv.fs_stat(root .. "/a/b/c").type)
    assert.is_true(fs.mkdir_p(root .. "/a/b/c"))
  end)

  it("refuses a path that is a file", function()
    assert(fs.write_atomic(root .. "/f", "x"))
    local ok, err, code = fs.mkdir_p(root .. "/f")
    assert.is_nil(ok)
    assert.equal("ENOTDIR: " .. root .. "/f", err)
    assert.equal("ENOTDIR", code)
    assert.equal("ENOTDIR", select(3, fs.mkdir_p(root .. "/f/below")))
  end)

  it("with exact, gives every directory it creates exactly the mode, whatever the umask", function()
    local old = uv.fs_stat(root).mode
    assert.is_true(fs.mkdir_p(root .. "/x/y", tonumber("770", 8), true))
    assert.equal(tonumber("770", 8), mode_of(root .. "/x"))
    assert.equal(tonumber("770", 8), mode_of(root .. "/x/y"))
    assert.equal(old, uv.fs_stat(root).mode, "what existed is left alone")
  end)
end)
