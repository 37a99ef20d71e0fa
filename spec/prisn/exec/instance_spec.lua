-- prisn.exec.instance: the output pipes of an instance — made in the
-- home's runtime directory, found again, those of an older prisn in
-- $PRISN_HOME/run still used, and the folders gone with the last pipe.
-- /run is stood for by a temporary folder (runtime_dir.ROOT_BASE).
local uv = require("luv")
local instance = require("prisn.exec.instance")
local runtime_dir = require("prisn.exec.runtime_dir")
local sys = require("prisn.core.sys")
local remove_tree = require("support").remove_tree

describe("prisn.exec.instance pipes", function()
  local tmp, home, saved_base

  before_each(function()
    tmp = assert(uv.fs_mkdtemp("/tmp/prisn-spec-inst-XXXXXX"))
    home = tmp .. "/home"
    assert(uv.fs_mkdir(home, tonumber("700", 8)))
    saved_base = runtime_dir.ROOT_BASE
    runtime_dir.ROOT_BASE = tmp .. "/run"
    assert(uv.fs_mkdir(runtime_dir.ROOT_BASE, tonumber("755", 8)))
  end)

  after_each(function()
    runtime_dir.ROOT_BASE = saved_base
    remove_tree(tmp)
  end)

  local function kind(path)
    local st = uv.fs_lstat(path)
    return st and st.type
  end

  it("makes them in the runtime directory, reuses them, and removes them with their folders", function()
    local dir = assert(runtime_dir.ensure(home))
    local paths = assert(instance.fifo_paths(home, "default", "web", 3))
    if uv.getuid() == 0 then
      assert.equal(runtime_dir.path(home), dir)
      assert.equal(tmp .. "/run/", dir:sub(1, #tmp + 5))
    end
    assert.same({ stdout = dir .. "/default/web-3.out", stderr = dir .. "/default/web-3.err" }, paths)
    assert.equal("fifo", kind(paths.stdout))
    assert.equal("fifo", kind(paths.stderr))
    assert.equal(tonumber("600", 8), assert(uv.fs_lstat(paths.stdout)).mode & tonumber("777", 8))
    -- A second call (an adoption after a restart) finds the same pipes.
    local ino = assert(uv.fs_lstat(paths.stdout)).ino
    assert.same(paths, instance.fifo_paths(home, "default", "web", 3))
    assert.equal(ino, assert(uv.fs_lstat(paths.stdout)).ino)
    -- Something else in a pipe's place is replaced by a pipe.
    assert(uv.fs_unlink(paths.stderr))
    assert(uv.fs_symlink("/etc/passwd", paths.stderr))
    assert.same(paths, instance.fifo_paths(home, "default", "web", 3))
    assert.equal("fifo", kind(paths.stderr))
    local other = assert(instance.fifo_paths(home, "default", "web", 4))
    instance.remove_fifos(paths)
    assert.is_nil(kind(paths.stdout))
    assert.equal("directory", kind(dir .. "/default")) -- web-4's are still there
    instance.remove_fifos(other)
    assert.is_nil(kind(dir .. "/default"))
    if uv.getuid() == 0 then assert.is_nil(kind(dir)) end -- the runtime directory too
    instance.remove_fifos(nil)
  end)

  it("keeps using the pipes an older prisn made in $PRISN_HOME/run", function()
    if uv.getuid() ~= 0 then return pending("needs root: without /run both places are the same") end
    assert(uv.fs_mkdir(home .. "/run", tonumber("700", 8)))
    assert(uv.fs_mkdir(home .. "/run/default", tonumber("700", 8)))
    local old = { stdout = home .. "/run/default/web-1.out", stderr = home .. "/run/default/web-1.err" }
    assert(sys.mkfifo(old.stdout, tonumber("600", 8)))
    assert(sys.mkfifo(old.stderr, tonumber("600", 8)))
    assert.same(old, instance.fifo_paths(home, "default", "web", 1))
    -- Once they are gone (the instance removed), new ones go to the runtime directory.
    instance.remove_fifos(old)
    assert.equal("directory", kind(home .. "/run")) -- the home's own folder stays
    local new = assert(instance.fifo_paths(home, "default", "web", 1))
    assert.equal(runtime_dir.path(home) .. "/default/web-1.out", new.stdout)
    -- Only one of the old pair left: not an instance's pipes; new ones are made.
    instance.remove_fifos(new)
    assert(uv.fs_mkdir(home .. "/run/default", tonumber("700", 8)))
    assert(sys.mkfifo(old.stdout, tonumber("600", 8)))
    assert.equal(new.stdout, instance.fifo_paths(home, "default", "web", 1).stdout)
  end)

  it("fails with the reason when the runtime directory is not its own", function()
    if uv.getuid() ~= 0 then return pending("needs root: chown") end
    local dir = runtime_dir.path(home)
    assert(uv.fs_mkdir(dir, tonumber("777", 8)))
    assert(uv.fs_chmod(dir, tonumber("777", 8)))
    local paths, err, code = instance.fifo_paths(home, "default", "web", 1)
    assert.is_nil(paths)
    assert.equal("EACCES", code)
    assert.equal(dir .. " is not prisn's own runtime directory (a directory, owner uid 0, mode 0777): "
      .. "refusing to use it", err)
    assert.is_nil(kind(dir .. "/default"))
  end)
end)
