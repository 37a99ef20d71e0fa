-- prisn.server.api: the field checks every handler uses — a value outside
-- its range, NaN, infinite, fractional where a whole number is meant, or of
-- the wrong type is a 422 naming the field and the range — and the strict
-- JSON body.
local api = require("prisn.server.api")
local cjson = require("cjson")
local raised = require("support").raised

local function refusal(fn, ...)
  local err = raised(fn, ...)
  assert.equal(422, api.status_of(err))
  return err.message
end

describe("prisn.server.api", function()
  it("shows values as JSON writes them, NaN and the infinities by name", function()
    assert.same({ "1e+308", "NaN", "Infinity", "-Infinity", "3", "1.5", '"x"', "true", "null", "an object" },
      { api.show(1e308), api.show(0 / 0), api.show(math.huge), api.show(-math.huge), api.show(3.0), api.show(1.5),
        api.show("x"), api.show(true), api.show(cjson.null), api.show({}) })
    assert.equal('"' .. ("y"):rep(40) .. '..."', api.show(("y"):rep(100)))
  end)

  it("takes whole numbers in range, 3.0 included, and nothing else", function()
    assert.equal(3, api.integer_field({ n = 3.0 }, "n", 0, 10))
    assert.equal("integer", math.type(api.integer_field({ n = 3.0 }, "n", 0, 10)))
    assert.is_nil(api.integer_field({}, "n", 0, 10))
    assert.is_nil(api.integer_field({ n = cjson.null }, "n", 0, 10))
    for _, bad in ipairs({ -1, 11, 2.5, 0 / 0, math.huge, 1e308, "3", true, {} }) do
      assert.matches("^n must be a whole number from 0 to 10, got ",
        refusal(api.integer_field, { n = bad }, "n", 0, 10))
    end
    assert.equal("auto.min must be a whole number from 1 to 1000, got 1e+308",
      refusal(api.integer_field, { min = 1e308 }, "min", 1, 1000, "auto.min"))
  end)

  it("takes finite numbers in range", function()
    assert.equal(1.5, api.number_field({ m = 1.5 }, "m", 0.01, 1000))
    for _, bad in ipairs({ 0, 1001, 0 / 0, math.huge, -math.huge, "2", false }) do
      assert.matches("^m must be a number from 0%.01 to 1000, got ", refusal(api.number_field, { m = bad }, "m", 0.01,
        1000))
    end
  end)

  it("takes durations in range, as text or seconds", function()
    assert.equal(5400, api.duration_field({ t = "1h30m" }, "t", 0.001, 86400))
    assert.equal(0.5, api.duration_field({ t = 0.5 }, "t", 0.001, 86400))
    assert.equal("t must be a duration from 1ms to 1d, like 30s, 5m or 1h30m, got 1e+308",
      refusal(api.duration_field, { t = 1e308 }, "t", 0.001, 86400))
    for _, bad in ipairs({ 0, -1, "2d", "forever", 0 / 0, math.huge, true, ("9"):rep(400) }) do
      assert.matches("^t must be a duration from 1ms to 1d",
        refusal(api.duration_field, { t = bad }, "t", 0.001, 86400))
    end
  end)

  it("reads bodies as strict JSON: no NaN, Infinity or hex", function()
    assert.same({ a = 1 }, api.json_body({ body = '{"a": 1}' }))
    for _, text in ipairs({ '{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 0x10}', "[1", "" }) do
      local err = raised(api.json_body, { body = text })
      assert.equal(400, api.status_of(err), text)
    end
    -- 1e999 is JSON; it decodes to infinity, which the field checks refuse.
    assert.equal(math.huge, api.json_body({ body = '{"a": 1e999}' }).a)
  end)
end)
