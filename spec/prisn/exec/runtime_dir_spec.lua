-- prisn.exec.runtime_dir: the home's directory for its services' output
-- pipes — where it goes for root and for other users, and that one made
-- by someone else (or left open) is refused. The real filesystem in a
-- temporary folder stands for /run; the uid is faked
-- so the non-root rules are tested as root too.
local uv = require("luv")
local runtime_dir = require("prisn.exec.runtime_dir")
local remove_tree = require("support").remove_tree

describe("prisn.exec.runtime_dir", function()
  local tmp, home, uid, saved_base

  before_each(function()
    tmp = assert(uv.fs_mkdtemp("/tmp/prisn-spec-rt-XXXXXX"))
    home = tmp .. "/home"
    assert(uv.fs_mkdir(home, tonumber("700", 8)))
    uid = uv.getuid()
    saved_base = runtime_dir.ROOT_BASE
  end)

  after_each(function()
    runtime_dir.ROOT_BASE = saved_base
    remove_tree(tmp)
  end)

  local function deps(fake_uid, env)
    return { uid = fake_uid, env = function(name) return (env or {})[name] end, uv = uv }
  end

  local function mode_of(path)
    return assert(uv.fs_lstat(path)).mode & tonumber("7777", 8)
  end

  it("puts root's under /run, named from the home's real path, made 0700", function()
    if uid ~= 0 then return pending("needs root: the uid of the directory is checked") end
    runtime_dir.ROOT_BASE = tmp
    local dir = assert(runtime_dir.ensure(home, deps(0)))
    assert.matches("^" .. tmp:gsub("%p", "%%%0") .. "/prisn%-%x+$", dir)
    assert.is_true(runtime_dir.is_runtime(dir))
    assert.equal(tonumber("700", 8), mode_of(dir))
    -- The same rule finds it again (a restarted server), through any
    -- spelling of the home; another home has its own.
    assert.equal(dir, runtime_dir.ensure(home .. "/", deps(0)))
    assert.equal(dir, runtime_dir.path(tmp .. "/./home", deps(0)))
    local other = tmp .. "/home2"
    assert(uv.fs_mkdir(other, tonumber("700", 8)))
    assert.not_equal(dir, runtime_dir.path(other, deps(0)))
  end)

  it("keeps a non-root server's pipes in the home's run/, whatever $XDG_RUNTIME_DIR says", function()
    -- A restarted server must find the same directory; XDG_RUNTIME_DIR
    -- depends on how it was started and logind removes it at logout.
    local xdg = tmp .. "/xdg"
    assert(uv.fs_mkdir(xdg, tonumber("700", 8)))
    local fake = uid == 0 and 4242 or uid
    assert.is_nil(runtime_dir.path(home, deps(fake, { XDG_RUNTIME_DIR = xdg })))
    assert.is_nil(runtime_dir.path(home, deps(fake, {})))
    if uid == 0 then
      assert.matches("^/run/prisn%-%x+$", runtime_dir.path(home, deps(0, { XDG_RUNTIME_DIR = xdg })))
    end
    -- Without a base: the home's run/, made 0700, as before.
    assert.equal(home .. "/run", runtime_dir.ensure(home, deps(fake, {})))
    assert.equal(tonumber("700", 8), mode_of(home .. "/run"))
  end)

  it("makes it exactly 0700 whatever the umask", function()
    if uid ~= 0 then return pending("needs root") end
    runtime_dir.ROOT_BASE = tmp
    -- A umask of 0277: mkdir gives 0500.
    local narrow = setmetatable({ fs_mkdir = function(path) return uv.fs_mkdir(path, tonumber("500", 8)) end },
      { __index = uv })
    local dir = assert(runtime_dir.ensure(home, { uid = 0, env = function() end, uv = narrow }))
    assert.equal(tonumber("700", 8), mode_of(dir))
  end)

  it("refuses a directory someone else made, one open to others, or a symlink", function()
    if uid ~= 0 then return pending("needs root: chown") end
    runtime_dir.ROOT_BASE = tmp
    local dir = runtime_dir.path(home, deps(0))
    -- Another user's.
    assert(uv.fs_mkdir(dir, tonumber("700", 8)))
    assert(uv.fs_chown(dir, 4242, 4242))
    local ok, err, code = runtime_dir.ensure(home, deps(0))
    assert.is_nil(ok)
    assert.equal("EACCES", code)
    assert.equal(dir .. " is not prisn's own runtime directory (a directory, owner uid 4242, mode 0700): "
      .. "refusing to use it", err)
    -- Ours but open.
    assert(uv.fs_chown(dir, 0, 0))
    assert(uv.fs_chmod(dir, tonumber("755", 8)))
    ok, err, code = runtime_dir.ensure(home, deps(0))
    assert.is_nil(ok)
    assert.equal("EACCES", code)
    assert.matches("mode 0755", err, 1, true)
    -- A symlink to a good directory of ours.
    assert(uv.fs_rmdir(dir))
    assert(uv.fs_mkdir(tmp .. "/elsewhere", tonumber("700", 8)))
    assert(uv.fs_symlink(tmp .. "/elsewhere", dir))
    ok, err = runtime_dir.ensure(home, deps(0))
    assert.is_nil(ok)
    assert.matches("(a link, owner uid 0", err, 1, true)
  end)

  it("tells its own directories by their name", function()
    assert.is_true(runtime_dir.is_runtime("/run/prisn-0123abcd"))
    assert.is_false(runtime_dir.is_runtime("/run/prisnx0123"))
    assert.is_false(runtime_dir.is_runtime("/var/lib/prisn/run"))
  end)
end)
