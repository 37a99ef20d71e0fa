local units = require("prisn.units")

describe("prisn.units", function()
  it("parses durations", function()
    assert.equal(30, units.parse_duration("30s"))
    assert.equal(300, units.parse_duration("5m"))
    assert.equal(5400, units.parse_duration("1h30m"))
    assert.equal(7 * 86400, units.parse_duration("7d"))
    assert.equal(0.25, units.parse_duration("250ms"))
    assert.equal(90, units.parse_duration("90"))
    assert.equal(1.5, units.parse_duration("1.5s"))
  end)

  it("rejects what it does not understand", function()
    for _, bad in ipairs({ "", "5mn", "m5", "1h 30m", "-5s", "5 s", "1.2.3s" }) do
      local v, err = units.parse_duration(bad)
      assert.is_nil(v, bad)
      assert.is_string(err)
    end
  end)

  it("refuses NaN, infinity and durations past 100 years, which would break a timer", function()
    assert.same({ nil, "a duration must be a number of seconds, not NaN" }, { units.parse_duration(0 / 0) })
    for _, huge in ipairs({ 1e308, math.huge, "36501d", ("9"):rep(400), ("9"):rep(400) .. "w" }) do
      assert.same({ nil, "a duration can be at most 36500d" }, { units.parse_duration(huge) }, tostring(huge))
    end
    assert.equal(units.MAX_DURATION, units.parse_duration("36500d"))
    assert.same({ nil, "a duration cannot be negative" }, { units.parse_duration(-math.huge) })
  end)

  it("formats durations", function()
    assert.equal("250ms", units.format_duration(0.25))
    assert.equal("1m30s", units.format_duration(90))
    assert.equal("1d", units.format_duration(86400))
    assert.equal("0s", units.format_duration(0))
    assert.equal("5ms", units.format_duration(0.005))
    assert.equal("2.5s", units.format_duration(2.5))
  end)

  it("parses sizes in binary units", function()
    assert.equal(512, units.parse_size("512"))
    assert.equal(64 * 1024, units.parse_size("64K"))
    assert.equal(256 * 1024 ^ 2, units.parse_size("256M"))
    assert.equal(math.floor(1.5 * 1024 ^ 3), units.parse_size("1.5G"))
    assert.equal(2 * 1024 ^ 3, units.parse_size("2GiB"))
    assert.equal(1024, units.parse_size("1kb"))
    assert.is_nil(units.parse_size("1GB0"))
    assert.is_nil(units.parse_size("-1G"))
    assert.is_nil(units.parse_size("lots"))
  end)

  it("refuses sizes past 8P, where a double stops counting bytes exactly", function()
    assert.equal(8 * 1024 ^ 5, units.parse_size("8P"))
    assert.equal(units.MAX_SIZE, units.parse_size(units.MAX_SIZE))
    for _, huge in ipairs({ "9P", "99999999999999999999T", ("9"):rep(400), units.MAX_SIZE + 1 }) do
      assert.same({ nil, "a size can be at most 8P" }, { units.parse_size(huge) }, tostring(huge))
    end
    assert.is_nil(units.parse_size(1e308))
    assert.is_nil(units.parse_size(0 / 0))
  end)

  it("formats sizes", function()
    assert.equal("512B", units.format_size(512))
    assert.equal("1.5K", units.format_size(1536))
    assert.equal("256M", units.format_size(256 * 1024 ^ 2))
    assert.equal("80G", units.format_size(80 * 1024 ^ 3))
    assert.equal("8P", units.format_size(8 * 1024 ^ 5))
  end)
end)
