-- prisn.core.sys as Lua code sees it: claims (the job runners' locks),
-- process names and descriptors.
local sys = require("prisn.core.sys")
local uv = require("luv")

local function unique(name)
  return string.format("prisn-spec/%s/%d/%d", name, uv.os_getpid(), uv.hrtime())
end

local function wait_for(pred)
  for _ = 1, 200 do
    if pred() then return true end
    uv.sleep(10)
  end
  return false
end

describe("prisn.core.sys", function()
  describe("claim", function()
    it("is held once, names its holder, and ends when closed", function()
      local name = unique("a")
      assert.is_false(sys.claimant(name))
      local fd = sys.claim(name)
      assert.is_number(fd)
      assert.is_false(sys.claim(name))
      assert.equal(math.tointeger(uv.os_getpid()), sys.claimant(name))
      -- Asking many times never blocks (nobody accepts those connections).
      for _ = 1, 300 do assert.is_number(sys.claimant(name)) end
      uv.fs_close(fd)
      assert.is_false(sys.claimant(name))
      fd = sys.claim(name)
      assert.is_number(fd)
      uv.fs_close(fd)
    end)

    it("ends with the process that holds it, which is named", function()
      local name = unique("b")
      local script = string.format("local fd = require('prisn.core.sys').claim(%q) "
        .. "io.stdout:write('held\\n') io.stdout:flush() io.stdin:read('l')", name)
      local stdin, stdout = uv.new_pipe(), uv.new_pipe()
      local child = uv.spawn(uv.exepath(), { args = { "lua", "-e", script }, stdio = { stdin, stdout, 2 } },
        function() end)
      local said = ""
      stdout:read_start(function(_, data) said = said .. (data or "") end)
      assert.is_true(wait_for(function() uv.run("nowait") return said == "held\n" end))
      assert.equal(math.tointeger(child:get_pid()), sys.claimant(name))
      assert.is_false(sys.claim(name))
      stdin:close() -- EOF: the child exits, and its claim with it
      assert.is_true(wait_for(function() uv.run("nowait") return sys.claimant(name) == false end))
      stdout:close()
      child:close()
      uv.run("nowait")
    end)

    it("refuses an empty name and one too long for an address", function()
      assert.has_error(function() sys.claim("") end)
      assert.has_error(function() sys.claim(string.rep("x", 108)) end)
      assert.has_error(function() sys.claimant(string.rep("x", 108)) end)
    end)
  end)

  it("copies a descriptor above the standard three, close-on-exec", function()
    local copy = sys.dup(1)
    assert.is_true(copy >= 3)
    uv.fs_close(copy)
    local ok, _, code = sys.dup(12345)
    assert.is_nil(ok)
    assert.equal("EBADF", code)
  end)
end)
