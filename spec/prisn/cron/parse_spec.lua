local parse = require("prisn.cron.parse")

local function values(set, lo, hi)
  local out = {}
  for v = lo, hi do
    if set[v] then out[#out + 1] = v end
  end
  return out
end

describe("prisn.cron.parse", function()
  it("parses lists, ranges, steps, steps on ranges and names", function()
    local p = assert(parse.parse("*/15 9-17 1,15 jan-mar/2 mon-fri"))
    assert.same({ 0, 15, 30, 45 }, values(p.minute.set, 0, 59))
    assert.same({ 9, 10, 11, 12, 13, 14, 15, 16, 17 }, values(p.hour.set, 0, 23))
    assert.same({ 1, 15 }, values(p.dom.set, 1, 31))
    assert.same({ 1, 3 }, values(p.month.set, 1, 12))
    assert.same({ 1, 2, 3, 4, 5 }, values(p.dow.set, 0, 6))
    assert.same({ 1, 6, 11, 16, 21, 26 }, values(assert(parse.parse("1-30/5 * * * *")).minute.set, 0, 59))
    assert.same({ 5, 25, 45 }, values(assert(parse.parse("5/20 * * * *")).minute.set, 0, 59))
  end)

  it("treats 7 as Sunday", function()
    assert.same({ 0 }, values(assert(parse.parse("0 0 * * 7")).dow.set, 0, 6))
    assert.same({ 0, 5, 6 }, values(assert(parse.parse("0 0 * * 5-7")).dow.set, 0, 6))
    assert.same({ 0, 5, 6 }, values(assert(parse.parse("0 0 * * fri-sun")).dow.set, 0, 6))
  end)

  it("reads an optional leading seconds field", function()
    local p = assert(parse.parse("*/10 * * * * *"))
    assert.is_true(p.has_seconds)
    assert.same({ 0, 10, 20, 30, 40, 50 }, values(p.second.set, 0, 59))
    assert.same({ 0 }, values(assert(parse.parse("* * * * *")).second.set, 0, 59))
  end)

  it("marks which day fields are restricted (Vixie)", function()
    local p = assert(parse.parse("0 0 13 * 5"))
    assert.is_false(p.dom.star)
    assert.is_false(p.dow.star)
    p = assert(parse.parse("0 0 */2 * 1"))
    assert.is_true(p.dom.star)
  end)

  it("normalizes", function()
    local cases = {
      { "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
      { "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
      { "@hourly", "0 * * * *" }, { "@DAILY", "0 0 * * *" },
      { "  0   3 * * *  ", "0 3 * * *" },
      { "0 0 * JAN,feb SUN", "0 0 * 1,2 0" },
      { "0 0 * * 7", "0 0 * * 0" },
      { "*/1 * * * *", "* * * * *" },
      { "30,0,15,0 * * * *", "0,15,30 * * * *" },
      { "0 * * * * *", "* * * * *" },
      { "5/20 * * * *", "5-59/20 * * * *" },
      { "0 9-9 * * mon-fri", "0 9 * * 1-5" },
      { "*/5 1-30/5 * * * *", "*/5 1-30/5 * * * *" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], parse.normalize(c[1]), c[1])
    end
  end)

  it("names the field and the problem", function()
    local cases = {
      { "61 * * * *", "minute: 61 is out of range 0-59" },
      { "* 24 * * *", "hour: 24 is out of range 0-23" },
      { "* * 0 * *", "day-of-month: 0 is out of range 1-31" },
      { "* * * 13 *", "month: 13 is out of range 1-12" },
      { "* * * * 8", "day-of-week: 8 is out of range 0-7" },
      { "60 * * * * *", "second: 60 is out of range 0-59" },
      { "* * * foo *", "month: 'foo' is not a number or a month name" },
      { "* * * * funday", "day-of-week: 'funday' is not a number or a weekday name" },
      { "x * * * *", "minute: 'x' is not a number" },
      { "30-10 * * * *", "minute: range 30-10 goes backwards" },
      { "*/0 * * * *", "minute: a step must be at least 1" },
      { "*/x * * * *", "minute: step 'x' is not a number" },
      { "1,,2 * * * *", "minute: '1,,2' has an empty list item" },
      { "1-2-3 * * * *", "minute: '1-2-3' is not a range like 1-5" },
      { "* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) "
        .. "or 6 with seconds first, got 4 in '* * * *'" },
      { "@often", "unknown macro '@often' (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)" },
      { "", "empty cron expression; expected five fields like '0 3 * * *'" },
      { "0 0 30 2 *", "day-of-month: 30 never occurs in February" },
      { "0 0 31 4,6 *", "day-of-month: 31 never occurs in April or June" },
    }
    for _, c in ipairs(cases) do
      assert.same({ nil, c[2] }, { parse.parse(c[1]) }, c[1])
      assert.same({ nil, c[2] }, { parse.normalize(c[1]) }, c[1])
    end
  end)

  it("accepts 30 February when a weekday can match instead (Vixie OR)", function()
    assert.equal("0 0 30 2 1", parse.normalize("0 0 30 2 mon"))
  end)
end)
