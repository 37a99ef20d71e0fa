local home = require("prisn.home")
local uv = require("luv")

describe("prisn.home", function()
  local tmp
  before_each(function() tmp = assert(uv.fs_mkdtemp("/tmp/prisn-home-spec-XXXXXX")) end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  local function env(vars)
    return function(name) return vars[name] end
  end

  it("prefers PRISN_HOME", function()
    assert.equal("/srv/prisn", home.path(env({ PRISN_HOME = "/srv/prisn", HOME = "/home/u" })))
  end)

  it("uses /var/lib/prisn for root and ~/.prisn for anyone else", function()
    local expected = uv.getuid() == 0 and "/var/lib/prisn" or "/home/u/.prisn"
    assert.equal(expected, home.path(env({ HOME = "/home/u" })))
  end)

  it("creates the directory and its parents, the directory itself 0700", function()
    local path = tmp .. "/a/b/home"
    assert.equal(path, home.ensure(env({ PRISN_HOME = path })))
    local st = assert(uv.fs_stat(path))
    assert.equal("directory", st.type)
    assert.equal(tonumber("700", 8), st.mode & tonumber("777", 8))
    assert.equal(tonumber("755", 8), uv.fs_stat(tmp .. "/a").mode & tonumber("777", 8))
  end)

  it("leaves an existing directory's mode alone", function()
    assert(uv.fs_chmod(tmp, tonumber("750", 8)))
    home.ensure(env({ PRISN_HOME = tmp }))
    assert.equal(tonumber("750", 8), uv.fs_stat(tmp).mode & tonumber("777", 8))
  end)

  it("refuses a PRISN_HOME that is a file, with a hint", function()
    local file = tmp .. "/file"
    assert(io.open(file, "w")):close()
    local ok, err = pcall(home.ensure, env({ PRISN_HOME = file }))
    assert.is_false(ok)
    assert.equal("ENOTDIR", err.code)
    assert.equal("PRISN_HOME " .. file .. " is not a directory", err.message)
    assert.is_string(err.hint)
  end)

  it("reports a directory it cannot create", function()
    local ok, err = pcall(home.ensure, env({ PRISN_HOME = "/proc/prisn-cannot-exist/home" }))
    assert.is_false(ok)
    assert.matches("^cannot create PRISN_HOME /proc/prisn%-cannot%-exist/home", err.message)
  end)
end)
