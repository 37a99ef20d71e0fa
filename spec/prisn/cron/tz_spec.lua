local tz = require("prisn.cron.tz")

-- "2026-03-29T01:00:00Z" -> epoch seconds
local function utc(text)
  local y, mo, d, h, mi, s = text:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  return tz.naive({ year = tonumber(y), month = tonumber(mo), day = tonumber(d),
    hour = tonumber(h), min = tonumber(mi), sec = tonumber(s) })
end

local function have_tzdata()
  local f = io.open(tz.ZONEINFO .. "/Europe/Berlin", "rb")
  if f then f:close() end
  return f ~= nil
end

describe("prisn.cron.tz", function()
  it("does calendar arithmetic", function()
    assert.equal(0, tz.days_from_civil(1970, 1, 1))
    assert.same({ 2000, 2, 29 }, { tz.civil_from_days(tz.days_from_civil(2000, 2, 29)) })
    assert.equal(4, tz.weekday(0)) -- a Thursday
    assert.equal(29, tz.days_in_month(2028, 2))
    assert.equal(28, tz.days_in_month(2100, 2))
    assert.equal(1767225600, utc("2026-01-01T00:00:00Z"))
  end)

  it("needs tzdata installed (" .. tz.ZONEINFO .. ")", function()
    assert.is_true(have_tzdata(), "install the tzdata package")
  end)

  it("reads offsets and abbreviations from zoneinfo", function()
    local berlin = assert(tz.load("Europe/Berlin"))
    assert.same({ 3600, "CET", false }, { berlin:offset_at(utc("2026-01-15T12:00:00Z")) })
    assert.same({ 7200, "CEST", true }, { berlin:offset_at(utc("2026-07-15T12:00:00Z")) })
    assert.same({ 3600, "CET", false }, { berlin:offset_at(utc("2026-03-29T00:59:59Z")) })
    assert.same({ 7200, "CEST", true }, { berlin:offset_at(utc("2026-03-29T01:00:00Z")) })
    local ny = assert(tz.load("America/New_York"))
    assert.same({ -18000, "EST", false }, { ny:offset_at(utc("2026-01-15T12:00:00Z")) })
    assert.same({ -14400, "EDT", true }, { ny:offset_at(utc("2026-11-01T05:59:59Z")) })
    assert.same({ -18000, "EST", false }, { ny:offset_at(utc("2026-11-01T06:00:00Z")) })
  end)

  it("follows the POSIX footer past the last transition", function()
    local berlin = assert(tz.load("Europe/Berlin"))
    assert.equal(3600, (berlin:offset_at(utc("2050-03-27T00:59:59Z"))))
    assert.equal(7200, (berlin:offset_at(utc("2050-03-27T01:00:00Z"))))
    assert.equal(3600, (berlin:offset_at(utc("2050-10-30T01:00:00Z"))))
    local ny = assert(tz.load("America/New_York"))
    assert.equal(-14400, (ny:offset_at(utc("2060-07-04T12:00:00Z"))))
  end)

  it("converts to local fields", function()
    local f = assert(tz.load("Europe/Berlin")):to_local(utc("2026-11-27T02:00:00Z"))
    assert.same({ 2026, 11, 27, 3, 0, 0, 5, 3600, "CET" },
      { f.year, f.month, f.day, f.hour, f.min, f.sec, f.wday, f.offset, f.abbr })
  end)

  it("maps local times to none, one or two instants", function()
    local berlin = assert(tz.load("Europe/Berlin"))
    local function at(y, mo, d, h, mi)
      return berlin:to_utc_candidates({ year = y, month = mo, day = d, hour = h, min = mi, sec = 0 })
    end
    assert.same({ utc("2026-03-29T00:30:00Z") }, at(2026, 3, 29, 1, 30))
    assert.same({}, at(2026, 3, 29, 2, 30))
    assert.same({ utc("2026-03-29T01:00:00Z") }, at(2026, 3, 29, 3, 0))
    assert.same({ utc("2026-10-25T00:30:00Z"), utc("2026-10-25T01:30:00Z") }, at(2026, 10, 25, 2, 30))
    local ny = assert(tz.load("America/New_York"))
    assert.same({ utc("2026-11-01T05:30:00Z"), utc("2026-11-01T06:30:00Z") },
      ny:to_utc_candidates({ year = 2026, month = 11, day = 1, hour = 1, min = 30, sec = 0 }))
  end)

  it("rejects unknown and unsafe names", function()
    for _, name in ipairs({ "Mars/Base", "../../etc/passwd", "/etc/localtime", "Europe/../Europe/Berlin",
      "", "Europe/Berlin/", "Europe//Berlin", "Europe/Ber lin" }) do
      assert.same({ nil, "unknown time zone '" .. name .. "'", "unknown_zone" }, { tz.load(name) }, name)
    end
    assert.same({ nil, "unknown time zone 'nil'", "unknown_zone" }, { tz.load(nil) })
  end)

  it("knows UTC without tzdata", function()
    local utc_zone = assert(tz.load("UTC", { zoneinfo = "/nonexistent" }))
    assert.same({ 0, "UTC", false }, { utc_zone:offset_at(0) })
    assert.equal(tz.UTC, tz.load(tz.UTC))
  end)

  it("parses POSIX TZ strings", function()
    local r = assert(tz.parse_posix("CET-1CEST,M3.5.0,M10.5.0/3"))
    assert.same({ 3600, "CET", 7200, "CEST", 7200, 10800 },
      { r.std_offset, r.std_abbr, r.dst_offset, r.dst_abbr, r.start.time, r["end"].time })
    r = assert(tz.parse_posix("<+0330>-3:30"))
    assert.same({ 12600, "+0330" }, { r.std_offset, r.std_abbr })
    assert.is_nil(r.dst_abbr)
    r = assert(tz.parse_posix("EST5EDT,M3.2.0,M11.1.0"))
    assert.same({ -18000, -14400 }, { r.std_offset, r.dst_offset })
    r = assert(tz.parse_posix("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1"))
    assert.same({ -10800, -7200, -7200, -3600 }, { r.std_offset, r.dst_offset, r.start.time, r["end"].time })
    assert.is_nil(tz.parse_posix("nonsense,,"))
    assert.is_nil(tz.parse_posix(""))
  end)

  it("reads a TZif version 1 file", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/Test"))
    -- one transition at 1000000000 from type 0 (STD +1h) to type 1 (DST +2h)
    local data = "TZif" .. "\0" .. string.rep("\0", 15)
      .. string.pack(">I4I4I4I4I4I4", 0, 0, 0, 1, 2, 8)
      .. string.pack(">i4", 1000000000) .. string.pack("B", 1)
      .. string.pack(">i4BB", 3600, 0, 0) .. string.pack(">i4BB", 7200, 1, 4)
      .. "STD\0DST\0"
    local f = assert(io.open(dir .. "/Test/Zone", "wb"))
    f:write(data)
    f:close()
    local zone = assert(tz.load("Test/Zone", { zoneinfo = dir }))
    assert.same({ 3600, "STD", false }, { zone:offset_at(999999999) })
    assert.same({ 7200, "DST", true }, { zone:offset_at(1000000000) })
    assert.same({ 7200, "DST", true }, { zone:offset_at(2000000000) })
    os.execute("rm -rf " .. dir)
  end)

  it("finds the local zone from TZ, /etc/localtime, or falls back to UTC", function()
    local none = function() return nil end
    assert.equal("Europe/Berlin", tz.local_zone({ env = { TZ = "Europe/Berlin" }, readlink = none }).name)
    assert.equal("Europe/Berlin", tz.local_zone({ env = { TZ = ":Europe/Berlin" }, readlink = none }).name)
    assert.equal("America/New_York", tz.local_zone({ env = {}, localtime = "/nonexistent",
      readlink = function() return "/usr/share/zoneinfo/America/New_York" end }).name)
    local posix = tz.local_zone({ env = { TZ = "EST5EDT,M3.2.0,M11.1.0" }, zoneinfo = "/nonexistent", readlink = none })
    assert.equal(-14400, (posix:offset_at(utc("2026-07-01T00:00:00Z"))))
    assert.equal(tz.UTC, tz.local_zone({ env = {}, localtime = "/nonexistent", readlink = none }))
  end)
end)
