local value = require("prisn.output.value")
local cjson = require("cjson")

local function check_error(v, finite)
  local ok, err = pcall(value.check, v, finite)
  assert.is_false(ok)
  return err
end

describe("prisn.output.value", function()
  describe("null", function()
    it("is cjson.null, so decoded API data passes through", function()
      assert.equal(cjson.null, value.null)
      assert.equal("null", value.kind(value.null))
      assert.equal("null", value.kind(nil))
    end)
  end)

  describe("array", function()
    it("makes an empty table an array; unmarked it is an object", function()
      assert.equal("array", value.kind(value.array({})))
      assert.equal("object", value.kind({}))
    end)

    it("returns its argument and creates a table when given none", function()
      local t = {}
      assert.equal(t, value.array(t))
      assert.equal("array", value.kind(value.array()))
    end)

    it("does not touch the table's metatable", function()
      local mt = {}
      local t = value.array(setmetatable({}, mt))
      assert.equal(mt, getmetatable(t))
      assert.is_true(value.is_marked_array(t))
    end)

    it("raises for a non-table", function()
      assert.has_error(function() value.array("x") end, "output.array: expected a table, got string")
    end)
  end)

  describe("kind", function()
    it("tells every kind apart", function()
      assert.equal("boolean", value.kind(false))
      assert.equal("integer", value.kind(3))
      assert.equal("float", value.kind(3.0))
      assert.equal("string", value.kind(""))
      assert.equal("array", value.kind({ 1, 2 }))
      assert.equal("object", value.kind({ a = 1 }))
    end)
  end)

  describe("check", function()
    it("accepts nested data, shared (non-cyclic) subtables and nulls", function()
      local shared = { x = 1 }
      value.check({ a = shared, b = shared, c = { value.null, 1, "s", true }, d = value.array() })
    end)

    it("names the path of a function", function()
      assert.equal("output: value.jobs[2].handler: cannot encode a function",
        check_error({ jobs = { {}, { handler = print } } }))
    end)

    it("rejects userdata other than null", function()
      assert.equal("output: value.file: cannot encode a userdata", check_error({ file = io.stdout }))
    end)

    it("rejects cycles", function()
      local t = { name = "loop" }
      t.self = t
      assert.equal("output: value.self: cycle: the table contains itself", check_error(t))
    end)

    it("rejects tables mixing list items and string keys", function()
      assert.equal('output: value: mixed table: list items and string key "a"',
        check_error({ 1, 2, a = 3 }))
      assert.equal('output: value: mixed table: list items and string key "a"',
        check_error(value.array({ a = 1 })))
    end)

    it("rejects sparse lists", function()
      assert.equal("output: value: sparse list: item [2] is nil", check_error({ [1] = "a", [3] = "c" }))
    end)

    it("rejects keys that are neither strings nor list indexes", function()
      assert.equal("output: value: key 1.5 is not a string or a list index", check_error({ [1.5] = 1 }))
      assert.equal("output: value: key 0 is not a string or a list index", check_error({ [0] = 1 }))
      assert.equal("output: value: key boolean is not a string or a list index",
        check_error({ [true] = 1 }))
    end)

    it("quotes keys that are not identifiers in the path", function()
      assert.equal('output: value["a b"]: cannot encode a function', check_error({ ["a b"] = print }))
    end)

    it("rejects NaN and infinities only when asked for finite numbers", function()
      value.check({ 0 / 0, math.huge })
      assert.equal("output: value.ratio: cannot encode inf (use output.null for a missing number)",
        check_error({ ratio = math.huge }, true))
      assert.matches("^output: value%[1%]: cannot encode %-?nan", check_error({ 0 / 0 }, true))
    end)
  end)

  describe("sorted_keys", function()
    it("sorts in byte order: upper case before lower case, shorter first", function()
      assert.same({ "B", "a", "ab", "b", "é" }, value.sorted_keys({ b = 1, ["é"] = 1, a = 1, B = 1, ab = 1 }))
    end)
  end)

  describe("utf8_clean", function()
    it("keeps valid UTF-8 as is", function()
      assert.equal("héllo ✓", value.utf8_clean("héllo ✓"))
    end)

    it("replaces each invalid byte with U+FFFD", function()
      assert.equal("a\u{FFFD}b\u{FFFD}\u{FFFD}", value.utf8_clean("a\255b\192\128"))
    end)
  end)

  describe("format_float", function()
    it("writes floats as Python's repr does", function()
      assert.equal("0.1", value.format_float(0.1))
      assert.equal("2.0", value.format_float(2.0))
      assert.equal("-0.0", value.format_float(-0.0))
      assert.equal("0.30000000000000004", value.format_float(0.1 + 0.2))
      assert.equal("1000000000000000.0", value.format_float(1e15))
      assert.equal("1e+16", value.format_float(1e16))
      assert.equal("0.0001", value.format_float(1e-4))
      assert.equal("1e-05", value.format_float(1e-5))
      assert.equal("1.5e-07", value.format_float(1.5e-7))
      assert.equal("5e-324", value.format_float(5e-324))
      assert.equal("1.7976931348623157e+308", value.format_float(1.7976931348623157e308))
    end)

    it("reads back as the same number", function()
      for _, x in ipairs({ math.pi, -math.pi, 1 / 3, 2 ^ 60 + 0.0, 123.456e-200 }) do
        assert.equal(x, tonumber(value.format_float(x)))
      end
    end)
  end)
end)
