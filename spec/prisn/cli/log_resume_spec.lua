-- prisn.cli.log_resume: a followed log stream resumed after the server came
-- back shows each line once — lines of the same millisecond skipped by
-- count, each source and stream at its own mark, new sources in full.
local log_resume = require("prisn.cli.log_resume")

local function line(source, stream, time_ms, data)
  return { instance = source, stream = stream, time_ms = time_ms, data = data }
end

-- The data of the records `r` lets through, in order.
local function shown(r, records)
  local out = {}
  for _, rec in ipairs(records) do
    if r:fresh(rec) then out[#out + 1] = rec.data end
  end
  return out
end

describe("prisn.cli.log_resume", function()
  it("starts where nothing was shown yet: everything passes, and no since", function()
    local r = log_resume.new()
    assert.is_nil(r:resume())
    assert.same({ "a", "b" }, shown(r, { line("web-1", "stdout", 5, "a"), line("web-1", "stdout", 5, "b") }))
  end)

  it("skips what was shown, by count within a millisecond, and asks from the earliest mark", function()
    local r = log_resume.new()
    local first = {
      line("web-1", "stdout", 100, "1a"), line("web-2", "stdout", 90, "2a"),
      line("web-1", "stdout", 101, "1b"), line("web-1", "stdout", 101, "1c"),
      line("web-1", "stderr", 95, "1e"),
    }
    assert.same({ "1a", "2a", "1b", "1c", "1e" }, shown(r, first))
    assert.equal(90, r:resume())
    -- The new stream: everything since 90 again, then what came meanwhile.
    local again = {
      line("web-2", "stdout", 90, "2a"), line("web-1", "stderr", 95, "1e"), line("web-1", "stdout", 100, "1a"),
      line("web-1", "stdout", 101, "1b"), line("web-1", "stdout", 101, "1c"), line("web-1", "stdout", 101, "1d"),
      line("web-2", "stdout", 150, "2b"), line("web-3", "stdout", 120, "3a"), line("web-1", "stderr", 95, "1f"),
    }
    assert.same({ "1d", "2b", "3a", "1f" }, shown(r, again))
  end)

  it("resumes twice, even when the second stream broke after a few lines", function()
    local r = log_resume.new()
    shown(r, { line("web-1", "stdout", 7, "a"), line("web-1", "stdout", 7, "b") })
    assert.equal(7, r:resume())
    assert.same({}, shown(r, { line("web-1", "stdout", 7, "a") })) -- then it broke
    assert.equal(7, r:resume())
    assert.same({ "c" }, shown(r, { line("web-1", "stdout", 7, "a"), line("web-1", "stdout", 7, "b"),
      line("web-1", "stdout", 7, "c") }))
  end)

  it("does not show, after a resume, the lines --tail left out of the first batch", function()
    local r = log_resume.new()
    -- The first batch was the last 2 lines: web-2's older ones left out.
    assert.same({ "1a", "1b" }, shown(r, { line("web-1", "stdout", 200, "1a"), line("web-1", "stdout", 300, "1b") }))
    assert.equal(300, r:resume())
    assert.same({ "2new" }, shown(r, { line("web-2", "stdout", 150, "2old"), line("web-2", "stdout", 310, "2new") }))
  end)

  it("keys a namespace's lines by source", function()
    local r = log_resume.new()
    assert.is_true(r:fresh({ source = "job/01kax", stream = "stdout", time_ms = 3, data = "x" }))
    r:resume()
    assert.is_false(r:fresh({ source = "job/01kax", stream = "stdout", time_ms = 3, data = "x" }))
    assert.is_true(r:fresh({ source = "web-1", stream = "stdout", time_ms = 3, data = "y" }))
  end)
end)
