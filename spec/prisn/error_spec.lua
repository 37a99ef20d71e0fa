-- prisn.error: the error type, and the one guard for callbacks (call, guard).
local errors = require("prisn.error")

describe("prisn.error", function()
  it("makes, recognises and renders errors", function()
    local e = errors.new("not_found", "no such job: 7", { hint = "see prisn jobs" })
    assert.is_true(errors.is(e))
    assert.is_false(errors.is({ code = "x" }))
    assert.equal("no such job: 7 (hint: see prisn jobs)", tostring(e))
  end)

  describe("call", function()
    it("passes arguments and results through when fn returns", function()
      local reported = false
      assert.same({ true, 3, "x" }, { errors.call("add", function(a, b) return a + b, "x" end,
        function() reported = true end, 1, 2) })
      assert.is_false(reported)
    end)

    it("reports a raised message once, with its traceback, and returns it", function()
      local reports = {}
      local ok, err = errors.call("tick", function() error("boom") end,
        function(e, what) reports[#reports + 1] = { e, what } end)
      assert.is_false(ok)
      assert.equal(1, #reports)
      assert.equal("tick", reports[1][2])
      assert.equal(err, reports[1][1])
      assert.truthy(err:find("boom", 1, true))
      assert.truthy(err:find("stack traceback:", 1, true))
    end)

    it("keeps a raised prisn.error as it is", function()
      local raised = errors.new("usage", "bad flag")
      local ok, err = errors.call("flag", function() error(raised) end, function() end)
      assert.is_false(ok)
      assert.equal(raised, err)
    end)
  end)

  describe("guard", function()
    it("wraps fn for a callback: arguments in, results out, an error reported and swallowed", function()
      local reports = {}
      local cb = errors.guard("listener", function(x)
        if x == "bad" then error("bad input", 0) end
        return x .. "!"
      end, function(e, what) reports[#reports + 1] = what .. ": " .. e end)
      assert.same({ true, "ok!" }, { cb("ok") })
      local ok = cb("bad")
      assert.is_false(ok)
      assert.equal(1, #reports)
      assert.equal("listener: bad input", reports[1]:match("^[^\n]*"))
    end)
  end)
end)
