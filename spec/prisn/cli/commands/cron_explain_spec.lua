-- `prisn cron explain`, parsed as from a command line (under a stand-in
-- `cron` command until the family is wired) with a fixed "now".
local cli = require("prisn.cli")
local declaration = require("prisn.cli.declaration")
local errors = require("prisn.error")
local output = require("prisn.output")
local parse = require("prisn.cli.parse")
local explain = require("prisn.cli.commands.cron_explain")

local cron = { name = "cron", summary = "Cron jobs", subcommands = { explain } }
local root = { name = "prisn", summary = "s", flags = cli.GLOBAL_FLAGS, subcommands = { cron } }

-- 2026-11-26T12:00:00Z
local NOW = 1795694400

local function run(words)
  local parsed = parse.parse(root, words)
  local buffer = {}
  local stdout = { write = function(_, s) buffer[#buffer + 1] = s end }
  local ctx = { args = parsed.args, flags = parsed.flags, globals = parsed.globals, command = parsed.command,
    path = parsed.path, now = NOW, out = output.writer({ format = parsed.globals.output, stdout = stdout }) }
  local status = parsed.command.handler(ctx)
  return status, table.concat(buffer)
end

local function usage_error(words)
  local ok, err = pcall(run, words)
  assert.is_false(ok)
  assert.is_true(errors.is(err), tostring(err))
  assert.equal("usage", err.code)
  assert.equal(2, err.status)
  return err
end

describe("prisn cron explain", function()
  it("is a valid, documented command", function()
    assert.same({ true }, { declaration.check(cron) })
    for _, ex in ipairs(explain.examples) do assert.truthy(ex[1]:find("prisn cron explain", 1, true) == 1) end
  end)

  it("shows the expression, a description and the next 5 times as JSON", function()
    local status, out = run({ "cron", "explain", "0 3 * * *", "--tz", "Europe/Berlin", "-o", "json" })
    assert.equal(0, status)
    assert.same({
      expression = "0 3 * * *",
      description = "at 03:00 every day",
      timezone = "Europe/Berlin",
      next = { "2026-11-27T03:00:00+01:00", "2026-11-28T03:00:00+01:00", "2026-11-29T03:00:00+01:00",
        "2026-11-30T03:00:00+01:00", "2026-12-01T03:00:00+01:00" },
    }, require("cjson").decode(out))
  end)

  it("takes the human syntax with --every, --at and --on", function()
    local _, out = run({ "cron", "explain", "--every", "weekday", "--at", "9:30am", "--tz", "America/New_York",
      "-o", "json" })
    local v = require("cjson").decode(out)
    assert.equal("30 9 * * 1-5", v.expression)
    assert.equal("at 09:30 on Monday through Friday", v.description)
    assert.same({ "2026-11-26T09:30:00-05:00", "2026-11-27T09:30:00-05:00", "2026-11-30T09:30:00-05:00",
      "2026-12-01T09:30:00-05:00", "2026-12-02T09:30:00-05:00" }, v.next)
    _, out = run({ "cron", "explain", "--every", "month on the 1st at 00:00", "--tz", "UTC" })
    assert.truthy(out:find("0 0 1 * *", 1, true), out)
    assert.truthy(out:find("at 00:00 on day 1 of the month", 1, true), out)
    assert.truthy(out:find("2026-12-01T00:00:00+00:00", 1, true), out)
  end)

  it("rejects bad input as usage errors", function()
    assert.equal("minute: 61 is out of range 0-59", usage_error({ "cron", "explain", "61 * * * *" }).message)
    assert.equal("--every: every 7 minutes does not divide an hour evenly; "
      .. "use one of 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 minutes",
      usage_error({ "cron", "explain", "--every", "7m" }).message)
    local err = usage_error({ "cron", "explain", "@daily", "--tz", "Mars/Base" })
    assert.equal("--tz: unknown time zone 'Mars/Base'", err.message)
    assert.truthy(err.hint:find("Europe/Berlin", 1, true))
    usage_error({ "cron", "explain" })
    usage_error({ "cron", "explain", "@daily", "--every", "day" })
    usage_error({ "cron", "explain", "@daily", "--at", "03:00" })
  end)
end)
