-- Ordinary failures on the way to running a workload — a leftover
-- workspace (EEXIST), a full disk, a PRISN_HOME that is not writable — are
-- prisn.errors with a code, a message naming the subject and a hint, never
-- a raw assert (which the CLI reports as "internal error ... this is a bug").
local uv = require("luv")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local support = require("support")
local raised, remove_tree = support.raised, support.remove_tree

describe("exec: ordinary failures are prisn.errors", function()
  local home

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
  end)

  after_each(function()
    remove_tree(home)
  end)

  describe("prisn.exec.workspace.make", function()
    local workspace = require("prisn.exec.workspace")

    it("replaces a workspace left by an earlier attempt (EEXIST) with a fresh one", function()
      assert(fs.mkdir_p(home .. "/work/06h5abc", tonumber("700", 8)))
      local f = assert(io.open(home .. "/work/06h5abc/stale", "w"))
      f:write("left over")
      f:close()
      local path = workspace.make(home, "06h5abc", { isolation = 2 })
      assert.equal(home .. "/work/06h5abc", path)
      assert.same({}, fs.list_dir(path))
    end)

    it("names the job, the path and what to do when it cannot be made", function()
      -- work/ is a file: nothing can be made below it.
      local f = assert(io.open(home .. "/work", "w"))
      f:close()
      local err = raised(workspace.make, home, "06h5abc", { isolation = 2 })
      assert.equal("ENOTDIR", err.code)
      assert.equal("cannot create the workspace of job 06h5abc (" .. home .. "/work/06h5abc): ENOTDIR: not a "
        .. "directory: " .. home .. "/work/06h5abc", err.message)
      assert.matches("^check that you own PRISN_HOME and may write to it", err.hint)
    end)

    it("makes none below isolation level 2", function()
      assert.is_nil(workspace.make(home, "06h5abc", { isolation = 1 }))
    end)
  end)

  describe("prisn.exec.rootfs.prepare", function()
    local rootfs = require("prisn.exec.rootfs")

    it("raises a prisn.error naming the path when the sandbox cannot be made", function()
      local f = assert(io.open(home .. "/sandbox", "w"))
      f:close()
      local err = raised(rootfs.prepare, home, nil)
      assert.equal("ENOTDIR", err.code)
      assert.matches("^cannot prepare the isolation root: " .. home:gsub("%p", "%%%0") .. "/sandbox/root: ",
        err.message)
      assert.matches("^check that you own PRISN_HOME and may write to it", err.hint)
    end)

    it("says so when the identity files cannot be written (a full disk)", function()
      local real = fs.write_atomic
      fs.write_atomic = function() return nil, "ENOSPC: no space left on device", "ENOSPC" end
      local ok, err = pcall(rootfs.prepare, home, { uid = 12345, gid = 12345 })
      fs.write_atomic = real
      assert.is_false(ok)
      assert.is_true(errors.is(err), tostring(err))
      assert.equal("ENOSPC", err.code)
      assert.matches("/sandbox/etc%-12345%-12345/passwd: ENOSPC", err.message)
      assert.matches("^free some disk space where PRISN_HOME lives", err.hint)
    end)
  end)

  describe("prisn.exec.envcache.ensure", function()
    local envcache = require("prisn.exec.envcache")
    local async = require("prisn.async")

    local function ensure()
      local result
      async.spawn(function()
        result = table.pack(pcall(envcache.ensure, { home = home, runner = "python3", manager = "python",
          interpreter = { executable = "/usr/bin/python3", version = "3.11.2" }, dependencies = { "requests" } }))
      end)
      uv.run("default")
      return result
    end

    it("raises a prisn.error with a hint when the build folder cannot be made", function()
      -- The real mkdir_p for the parents, the failing one for the build folder.
      local real = fs.mkdir_p
      fs.mkdir_p = function(path, ...)
        if path:find("%.tmp%-%d+$") then return nil, "ENOSPC: no space left on device: " .. path, "ENOSPC" end
        return real(path, ...)
      end
      local result = ensure()
      fs.mkdir_p = real
      assert.is_false(result[1])
      local err = result[2]
      assert.is_true(errors.is(err), tostring(err))
      assert.equal("ENOSPC", err.code)
      assert.matches("^cannot create .*/envs/python3/%x+%.tmp%-%d+ for a new environment: ENOSPC", err.message)
      assert.matches("^free some disk space where PRISN_HOME lives %('prisn env prune'", err.hint)
    end)

    it("removes the build and raises a prisn.error when its marker cannot be written", function()
      package.loaded["prisn.exec.install.python"] = { build = function() return true end }
      local real = fs.write_atomic
      fs.write_atomic = function() return nil, "ENOSPC: no space left on device", "ENOSPC" end
      local result = ensure()
      fs.write_atomic = real
      package.loaded["prisn.exec.install.python"] = nil
      assert.is_false(result[1])
      local err = result[2]
      assert.is_true(errors.is(err), tostring(err))
      assert.equal("ENOSPC", err.code)
      assert.matches("^cannot write the marker of the new environment ", err.message)
      -- Nothing half-built is left to be used.
      for _, entry in ipairs(fs.list_dir(home .. "/envs/python3")) do
        assert.is_nil(entry.name:find(".tmp-", 1, true), entry.name)
      end
    end)
  end)
end)
