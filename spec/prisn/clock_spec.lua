-- prisn.clock: milliseconds since the epoch, and their ISO 8601 UTC text.
local clock = require("prisn.clock")

describe("prisn.clock", function()
  it("formats milliseconds as ISO 8601 UTC with milliseconds, nil as nil", function()
    assert.equal("2026-11-26T18:46:00.000Z", clock.iso_time(1795718760000))
    assert.equal("1970-01-01T00:00:00.007Z", clock.iso_time(7))
    assert.is_nil(clock.iso_time(nil))
  end)

  it("reads the wall clock in whole milliseconds", function()
    local before = os.time() * 1000
    local now = clock.now_ms()
    assert.equal("integer", math.type(now))
    assert.is_true(now >= before - 1000 and now <= before + 2000)
  end)
end)
