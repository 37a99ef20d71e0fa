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

  describe("proc_numbers", function()
    local fs = require("prisn.fs")
    local self = math.tointeger(uv.os_getpid())

    it("reads the integers of a /proc file, skipping words that are not", function()
      local out = {}
      local n = sys.proc_numbers(self, "statm", out)
      local words = {}
      for w in fs.read_file("/proc/self/statm"):gmatch("%S+") do words[#words + 1] = math.tointeger(tonumber(w)) end
      assert.equal(#words, n)
      assert.equal(words[1], out[1]) -- the size of the address space moves less than the rest
      assert.equal(#words, #out)
    end)

    it("counts only what follows the last `after` character, from index `first`", function()
      local out = { "kept" }
      local n = sys.proc_numbers(self, "stat", out, 2, ")")
      local text = fs.read_file("/proc/self/stat")
      local tail = text:sub(text:match(".*()%)") + 1)
      -- The state letter is skipped: ppid (field 4) comes first.
      assert.equal(select(2, tail:gsub("%-?%d+", "")), n)
      assert.equal("kept", out[1])
      assert.equal(math.tointeger(uv.os_getppid()), out[2])
    end)

    it("stores a value past the integer range as the largest, keeping the places of the rest", function()
      -- stat's rsslim is 2^64-1 when unlimited; parsing it overflowed.
      local text = fs.read_file("/proc/self/stat")
      local tail = text:sub(text:match(".*()%)") + 1)
      local words = {}
      for w in tail:gmatch("%-?%d+") do words[#words + 1] = w end
      local out = {}
      assert.equal(#words, sys.proc_numbers(self, "stat", out, 1, ")"))
      local huge = 0
      for i, w in ipairs(words) do
        if #w >= 19 and not math.tointeger(tonumber(w)) then
          huge = huge + 1
          assert.equal(math.maxinteger, out[i])
        else -- counters move between the two reads: only their kind is fixed
          assert.equal("integer", math.type(out[i]))
        end
      end
      if huge == 0 then pending("no value past the integer range in this process's stat") end
    end)

    it("reads a task's file, and answers the failure triple when there is none", function()
      local out = {}
      local child = assert(uv.spawn("/bin/sleep", { args = { "5" } }, function() end))
      local n = sys.proc_numbers(self, "children", out, 1, nil, self)
      assert.is_true(n >= 1)
      local found = false
      for i = 1, n do found = found or out[i] == math.tointeger(child:get_pid()) end
      assert.is_true(found, "the child is listed")
      child:kill("sigkill")
      child:close()
      local ok, msg, code = sys.proc_numbers(4194304 + 12345, "stat", out) -- above pid_max
      assert.is_nil(ok)
      assert.equal("ENOENT", code)
      assert.matches("/proc/", msg)
    end)
  end)
end)
