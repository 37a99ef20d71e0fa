-- Next fire times for a table of expressions, each worked out by hand from a
-- calendar: leap years, month ends, Vixie day OR, names, steps on ranges,
-- seconds, and daylight-saving days in Berlin and New York (2026: Berlin
-- springs forward on 29 March and falls back on 25 October, New York on
-- 8 March and 1 November).
local cron = require("prisn.cron")
local tz = require("prisn.cron.tz")

-- "2026-03-29T01:00:00Z" -> epoch seconds
local function utc(text)
  local y, mo, d, h, mi, s = text:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  return tz.naive({ year = tonumber(y), month = tonumber(mo), day = tonumber(d),
    hour = tonumber(h), min = tonumber(mi), sec = tonumber(s) })
end

local function iso(zone, t)
  local f = zone:to_local(t)
  local o = math.abs(f.offset)
  return string.format("%04d-%02d-%02dT%02d:%02d:%02d%s%02d:%02d", f.year, f.month, f.day, f.hour, f.min, f.sec,
    f.offset < 0 and "-" or "+", o // 3600, o % 3600 // 60)
end

local function fires(expr, zone_name, after, n)
  local schedule = assert(cron.compile(expr, { tz = zone_name }))
  local zone = tz.load(zone_name)
  local out = {}
  for i, t in ipairs(schedule:next_n(utc(after), n)) do out[i] = iso(zone, t) end
  return out
end

local CASES = {
  -- leap years: 2100 is not one
  { "0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z",
    { "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00", "2036-02-29T00:00:00+00:00" } },
  { "0 0 29 2 *", "UTC", "2097-01-01T00:00:00Z", { "2104-02-29T00:00:00+00:00" } },
  -- month ends: only months with a 31st, February skipped for the 30th
  { "0 0 31 * *", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-31T00:00:00+00:00", "2026-03-31T00:00:00+00:00", "2026-05-31T00:00:00+00:00",
      "2026-07-31T00:00:00+00:00", "2026-08-31T00:00:00+00:00", "2026-10-31T00:00:00+00:00" } },
  { "0 0 30 * *", "UTC", "2026-01-31T00:00:00Z", { "2026-03-30T00:00:00+00:00", "2026-04-30T00:00:00+00:00" } },
  { "59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", { "2027-12-31T23:59:00+00:00" } },
  -- Vixie: both restricted -> the 13th OR any Friday (1 Jan 2026 is a Thursday)
  { "0 0 13 * 5", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00",
      "2026-01-16T00:00:00+00:00", "2026-01-23T00:00:00+00:00" } },
  -- day-of-month starting with * -> both must match: odd days that are Mondays
  { "0 0 */2 * 1", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-05T00:00:00+00:00", "2026-01-19T00:00:00+00:00", "2026-02-09T00:00:00+00:00",
      "2026-02-23T00:00:00+00:00", "2026-03-09T00:00:00+00:00" } },
  -- names; 1 July 2026 is a Wednesday
  { "0 12 * jan,JUL mon", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-05T12:00:00+00:00", "2026-01-12T12:00:00+00:00", "2026-01-19T12:00:00+00:00",
      "2026-01-26T12:00:00+00:00", "2026-07-06T12:00:00+00:00" } },
  { "0 9 * * 7", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-04T09:00:00+00:00", "2026-01-11T09:00:00+00:00" } },
  { "0 18 * * fri-sun", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-02T18:00:00+00:00", "2026-01-03T18:00:00+00:00", "2026-01-04T18:00:00+00:00",
      "2026-01-09T18:00:00+00:00" } },
  -- steps on ranges
  { "1-30/10 * * * *", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-01T00:01:00+00:00", "2026-01-01T00:11:00+00:00", "2026-01-01T00:21:00+00:00",
      "2026-01-01T01:01:00+00:00" } },
  { "0 9-17/4 * * *", "UTC", "2026-01-01T10:00:00Z",
    { "2026-01-01T13:00:00+00:00", "2026-01-01T17:00:00+00:00", "2026-01-02T09:00:00+00:00" } },
  -- seconds
  { "*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00", "2026-01-01T00:01:00+00:00" } },
  { "15,45 30 9 * * *", "UTC", "2026-01-01T00:00:00Z",
    { "2026-01-01T09:30:15+00:00", "2026-01-01T09:30:45+00:00", "2026-01-02T09:30:15+00:00" } },
  -- strictly after; macros
  { "0 3 * * *", "UTC", "2026-01-01T03:00:00Z", { "2026-01-02T03:00:00+00:00" } },
  { "@yearly", "UTC", "2026-06-01T00:00:00Z", { "2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00" } },
  { "@hourly", "UTC", "2026-01-01T23:30:00Z", { "2026-01-02T00:00:00+00:00" } },

  -- Berlin, spring forward (02:00 CET -> 03:00 CEST): a fixed time in the gap
  -- fires once at 03:00; several gap times and 03:00 are one run
  { "30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z",
    { "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00" } },
  { "0,30 2,3 * * *", "Europe/Berlin", "2026-03-29T00:00:00Z",
    { "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:00:00+02:00" } },
  -- interval schedules follow elapsed time: every 30 real minutes
  { "*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z",
    { "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00" } },
  -- Berlin, fall back (03:00 CEST -> 02:00 CET): the repeated 02:30 fires once
  { "30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00Z",
    { "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00" } },
  { "30 2 * * *", "Europe/Berlin", "2026-10-25T00:40:00Z", { "2026-10-26T02:30:00+01:00" } },
  { "*/30 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z",
    { "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00",
      "2026-10-25T03:00:00+01:00" } },
  { "0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
    { "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00" } },
  -- Berlin in 2050, past the file's transitions: the POSIX footer rule
  { "30 2 * * *", "Europe/Berlin", "2050-03-26T12:00:00Z",
    { "2050-03-27T03:00:00+02:00", "2050-03-28T02:30:00+02:00" } },

  -- New York, spring forward (02:00 EST -> 03:00 EDT)
  { "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
    { "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00" } },
  { "*/30 * * * *", "America/New_York", "2026-03-08T06:00:00Z",
    { "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00" } },
  -- New York, fall back (02:00 EDT -> 01:00 EST)
  { "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
    { "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00" } },
  { "30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", { "2026-11-02T01:30:00-05:00" } },
  { "*/30 * * * *", "America/New_York", "2026-11-01T05:00:00Z",
    { "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00",
      "2026-11-01T02:00:00-05:00" } },
}

describe("prisn.cron", function()
  it("computes next fire times checked by hand", function()
    for _, case in ipairs(CASES) do
      local expr, zone, after, want = table.unpack(case)
      assert.same(want, fires(expr, zone, after, #want), expr .. " in " .. zone .. " after " .. after)
    end
  end)

  it("keeps the normalized expression and the zone", function()
    local s = assert(cron.compile("0 0 * * SUN", { tz = "Europe/Berlin" }))
    assert.equal("0 0 * * 0", s.expression)
    assert.equal("Europe/Berlin", s.zone.name)
    assert.equal("0 0 * * *", assert(cron.compile("@daily", { tz = tz.UTC })).expression)
  end)

  it("reports a bad expression or zone", function()
    assert.same({ nil, "minute: 61 is out of range 0-59" }, { cron.compile("61 * * * *", { tz = "UTC" }) })
    assert.same({ nil, "unknown time zone 'Mars/Base'" }, { cron.compile("* * * * *", { tz = "Mars/Base" }) })
  end)

  it("never doubles or skips a daily run across a year of DST changes", function()
    for _, name in ipairs({ "Europe/Berlin", "America/New_York" }) do
      for _, expr in ipairs({ "30 2 * * *", "30 1 * * *", "0 3 * * *" }) do
        local times = assert(cron.compile(expr, { tz = name })):next_n(utc("2026-01-01T00:00:00Z"), 365)
        local zone, days = tz.load(name), {}
        for i, t in ipairs(times) do
          local f = zone:to_local(t)
          days[i] = string.format("%04d-%02d-%02d", f.year, f.month, f.day)
          if i > 1 then assert.is_true(days[i] > days[i - 1], name .. " " .. expr .. " " .. days[i]) end
        end
        assert.equal("2026-12-31", days[365], name .. " " .. expr)
      end
    end
  end)

  it("finds a per-second schedule's next time quickly", function()
    local s = assert(cron.compile("* * * * * *", { tz = "Europe/Berlin" }))
    local t = utc("2026-10-25T00:59:59Z")
    assert.equal(t + 1, s:next(t))
    assert.equal(100, #s:next_n(t, 100))
  end)

  it("uses the local zone when none is given", function()
    local s = assert(cron.compile("0 0 * * *"))
    assert.is_true(tz.is_zone(s.zone))
  end)
end)
