local isolation = require("prisn.exec.isolation")

describe("prisn.exec.isolation.setup_failed", function()
  it("takes a failure to make the sandbox for a machine that cannot make one", function()
    assert.is_true(isolation.setup_failed("EPERM", "namespace"))
    assert.is_true(isolation.setup_failed("ENOENT", "mount"))
    assert.is_true(isolation.setup_failed("ENOENT", "init"))
    assert.is_true(isolation.setup_failed("EPERM", "setup"))
  end)

  it("does not take a start that timed out, nor a failure of the script's own start, for one", function()
    assert.is_false(isolation.setup_failed("ETIMEDOUT", "init"))
    assert.is_false(isolation.setup_failed("ETIMEDOUT", "mount"))
    assert.is_false(isolation.setup_failed("ENOENT", "exec"))
    assert.is_false(isolation.setup_failed("EACCES", "chdir"))
  end)
end)

describe("prisn.exec.isolation.spawn_options resolv_conf", function()
  local home
  before_each(function() home = assert(require("luv").fs_mkdtemp("/tmp/prisn-iso-spec-XXXXXX")) end)
  after_each(function() os.execute("rm -rf '" .. home .. "'") end)

  local function file_stat(path)
    if path == "/etc/resolv.conf" or path == "/dns/resolv.conf" then return { type = "file" } end
    return require("luv").fs_stat(path)
  end

  local function binds_to(mounts, target)
    for _, m in ipairs(mounts) do
      if m.type == "bind" and m.target:sub(-#target) == target then return m end
    end
  end

  it("shows the DNS's resolv.conf as /etc/resolv.conf at levels 1 and 2, not at 3 (a loopback of its own)", function()
    local ctx = { home = home, resolv_conf = "/dns/resolv.conf", stat = file_stat, keep = {} }
    local one = binds_to(isolation.spawn_options(1, ctx).sandbox.mounts, "/etc/resolv.conf")
    assert.are.same({ type = "bind", source = "/dns/resolv.conf", target = "/etc/resolv.conf", readonly = true }, one)
    local two = binds_to(isolation.spawn_options(2, ctx).sandbox.mounts, "/etc/resolv.conf")
    assert.are.equal("/dns/resolv.conf", two.source)
    assert.are.equal("/etc/resolv.conf", binds_to(isolation.spawn_options(3, ctx).sandbox.mounts,
      "/etc/resolv.conf").source, "level 3: the host's")
    local without = binds_to(isolation.spawn_options(2, { home = home, stat = file_stat, keep = {} }).sandbox.mounts,
      "/etc/resolv.conf")
    assert.are.equal("/etc/resolv.conf", without.source)
    assert.is_nil(binds_to(isolation.spawn_options(1, { home = home, stat = file_stat, keep = {} }).sandbox.mounts,
      "/etc/resolv.conf"))
  end)
end)

describe("prisn.exec.isolation.lookup_user", function()
  local dir, path, recheck
  before_each(function()
    dir = assert(require("luv").fs_mkdtemp("/tmp/prisn-passwd-spec-XXXXXX"))
    path = dir .. "/passwd"
    -- Every lookup looks at the file's stamp (the server's looks once a second).
    recheck, isolation.PASSWD_RECHECK_MS = isolation.PASSWD_RECHECK_MS, -1
  end)
  after_each(function()
    isolation.PASSWD_RECHECK_MS = recheck
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function write(text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  end

  it("finds a user by name or by uid, the first matching line winning", function()
    write("root:x:0:0::/root:/bin/sh\n1001:x:1002:1002::/:/bin/sh\nalice:x:1001:1003::/:/bin/sh\n"
      .. "alice:x:1004:1004::/:/bin/sh\n")
    assert.are.same({ uid = 1001, gid = 1003, name = "alice" }, isolation.lookup_user("alice", path))
    assert.are.same({ uid = 0, gid = 0, name = "root" }, isolation.lookup_user("0", path))
    -- "1001" names the user on line 2 before uid 1001 on line 3.
    assert.are.same({ uid = 1002, gid = 1002, name = "1001" }, isolation.lookup_user("1001", path))
    assert.are.same({ uid = 1002, gid = 1002, name = "1001" }, isolation.lookup_user("1002", path))
    assert.are.same({ uid = 1004, gid = 1004, name = "alice" }, isolation.lookup_user("1004", path))
  end)

  it("reads the file again once it changed", function()
    write("alice:x:1001:1001::/:/bin/sh\n")
    assert.are.equal(1001, isolation.lookup_user("alice", path).uid)
    write("bob:x:1005:1005::/:/bin/sh\nalice:x:1007:1007::/:/bin/sh\n")
    assert.are.equal(1007, isolation.lookup_user("alice", path).uid)
    assert.are.equal("bob", isolation.lookup_user("1005", path).name)
  end)

  it("takes an unknown number as uid and gid, and refuses an unknown name", function()
    write("root:x:0:0::/root:/bin/sh\n")
    assert.are.same({ uid = 4242, gid = 4242 }, isolation.lookup_user("4242", path))
    local found, err = isolation.lookup_user("nobody-here", path)
    assert.is_nil(found)
    assert.matches("no such user: nobody%-here", err)
    os.remove(path)
    assert.are.same({ uid = 7, gid = 7 }, isolation.lookup_user("7", path))
    assert.is_nil((isolation.lookup_user("root", path)))
  end)

  it("keeps what it read for a second without looking at the file again", function()
    isolation.PASSWD_RECHECK_MS = 1000
    write("carol:x:1010:1010::/:/bin/sh\n")
    assert.are.equal(1010, isolation.lookup_user("carol", path).uid)
    os.remove(path)
    assert.are.equal(1010, isolation.lookup_user("carol", path).uid)
  end)
end)

describe("prisn.exec.isolation.spawn_options hide", function()
  local function tmpfs_on(mounts, target)
    for _, m in ipairs(mounts) do
      if m.type == "tmpfs" and m.target == target then return true end
    end
    return false
  end

  it("hides the paths of ctx.hide like $PRISN_HOME at level 1 (the pipes' runtime directory)", function()
    local stat = function() return { type = "directory" } end
    local mounts = isolation.spawn_options(1, { home = "/h", hide = { "/run/prisn-0123" }, stat = stat, keep = {} })
      .sandbox.mounts
    assert.is_true(tmpfs_on(mounts, "/h"))
    assert.is_true(tmpfs_on(mounts, "/run/prisn-0123"))
    assert.is_false(tmpfs_on(isolation.spawn_options(1, { home = "/h", stat = stat, keep = {} }).sandbox.mounts,
      "/run/prisn-0123"))
  end)
end)
