-- prisn.ids: the format, time order, monotonic generation and uniqueness.
local ids = require("prisn.ids")

describe("prisn.ids", function()
  it("makes 12 lower-case Crockford base32 characters", function()
    local id = ids.new()
    assert.equal(12, #id)
    assert.matches("^[0-9a-hjkmnp-tv-z]+$", id)
    assert.is_true(ids.valid(id))
  end)

  it("carries its creation time in milliseconds", function()
    local sec, usec = require("luv").gettimeofday()
    local now = sec * 1000 + usec // 1000
    local t = ids.time_ms(ids.new())
    assert.is_true(math.abs(t - now) < 5000, "time " .. t .. " vs " .. now)
    local gen = ids.generator({ clock = function() return 1795718874123 end, random = function() return 0 end })
    assert.equal(1795718874123, ids.time_ms(gen()))
  end)

  it("encodes and decodes 60-bit numbers, in the order of the numbers", function()
    assert.equal("000000000000", ids.encode(0))
    assert.equal("zzzzzzzzzzzz", ids.encode((1 << 60) - 1))
    local numbers = {}
    for i = 1, 200 do numbers[i] = math.random(0, (1 << 60) - 1) end
    table.sort(numbers)
    for i = 1, #numbers do
      local id = ids.encode(numbers[i])
      assert.equal(numbers[i], ids.decode(id))
      if i > 1 then assert.is_true(ids.encode(numbers[i - 1]) <= id) end
    end
  end)

  it("rejects what is not an id or a prefix", function()
    for _, bad in ipairs({ "", "abc", "0123456789abc", "0123456789AB", "01234567890i", "01234567890u", 42 }) do
      assert.is_false(ids.valid(bad), tostring(bad))
    end
    assert.is_true(ids.valid_prefix("06h1"))
    assert.is_false(ids.valid_prefix("06H1"))
    assert.is_false(ids.valid_prefix("06l1"))
    assert.is_false(ids.valid_prefix(""))
    assert.is_false(ids.valid_prefix("0123456789abc"))
  end)

  it("sorts by creation time", function()
    local t = 1000
    local gen = ids.generator({ clock = function() return t end, random = function() return 4095 end })
    local a = gen()
    t = 1001
    local b = gen()
    t = 5000000
    local c = gen()
    assert.is_true(a < b and b < c)
  end)

  it("stays increasing within a millisecond, when the clock steps back, and past 4096 ids", function()
    local t = 1795718874000
    local gen = ids.generator({ clock = function() return t end, random = function() return 4090 end })
    local prev = gen()
    for _ = 1, 10 do
      local id = gen()
      assert.is_true(id > prev)
      prev = id
    end
    -- 4090 + 10 overflowed the 12 random bits into the next millisecond.
    assert.equal(t + 1, ids.time_ms(prev))
    t = t - 60000
    local after_step_back = gen()
    assert.is_true(after_step_back > prev)
  end)

  it("makes 100,000 unique, strictly increasing ids in a tight loop", function()
    local seen, prev = {}, ""
    for _ = 1, 100000 do
      local id = ids.new()
      assert(not seen[id], "duplicate id " .. id)
      assert(id > prev, "not increasing: " .. prev .. " then " .. id)
      seen[id], prev = true, id
    end
  end)
end)
