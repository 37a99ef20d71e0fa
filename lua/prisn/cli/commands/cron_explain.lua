-- `prisn cron explain`: what a schedule means and when it fires next, without
-- a server. Returns ONE subcommand table; the `cron` family file lists it
-- among its subcommands.
local errors = require("prisn.error")

local SCHEDULE_HINT = "use five fields like '0 3 * * *' (minute hour day-of-month month day-of-week), "
  .. "a macro like @daily, or --every \"day at 03:00\""

--- ISO 8601 local time with the zone's offset: 2026-11-27T03:00:00+01:00.
local function iso(zone, utc)
  local f = zone:to_local(utc)
  local offset = f.offset
  local sign = offset < 0 and "-" or "+"
  offset = math.abs(offset)
  return string.format("%04d-%02d-%02dT%02d:%02d:%02d%s%02d:%02d", f.year, f.month, f.day,
    f.hour, f.min, f.sec, sign, offset // 3600, offset % 3600 // 60)
end

local function handler(ctx)
  local flags = ctx.flags
  local expr = ctx.args.EXPR
  if expr and flags.every then
    errors.usage("give either EXPR or --every, not both", SCHEDULE_HINT)
  end
  if (flags.at or flags.on) and not flags.every then
    errors.usage("--at and --on go with --every", "e.g. prisn cron explain --every day --at 03:00")
  end
  if flags.every then
    local normalized, err = require("prisn.cron.human").normalize(flags.every, { at = flags.at, on = flags.on })
    if not normalized then errors.usage("--every: " .. err) end
    expr = normalized
  elseif not expr then
    errors.usage("missing argument EXPR for 'prisn cron explain'", SCHEDULE_HINT)
  end
  local tz = require("prisn.cron.tz")
  local zone
  if flags.tz then
    local err
    zone, err = tz.load(flags.tz)
    if not zone then errors.usage("--tz: " .. err, tz.HINT) end
  else
    zone = tz.local_zone()
  end
  local schedule, err = require("prisn.cron").compile(expr, { tz = zone })
  if not schedule then errors.usage(err, SCHEDULE_HINT) end
  local next_times = {}
  for i, utc in ipairs(schedule:next_n(ctx.now or os.time(), 5)) do next_times[i] = iso(zone, utc) end
  ctx.out:emit({
    expression = schedule.expression,
    description = require("prisn.cron.explain").describe(schedule.expression),
    timezone = zone.name,
    next = require("prisn.output").array(next_times),
  }, { fields = { "expression", "description", "timezone", "next" } })
  return 0
end

return {
  name = "explain",
  summary = "Show what a schedule means and its next fire times",
  description = "Prints the normalized cron expression (what prisn stores and shows), an\n"
    .. "English description, and the next 5 fire times in ISO 8601 with the zone's\n"
    .. "offset. EXPR is a standard expression: five fields (minute hour\n"
    .. "day-of-month month day-of-week) or six with seconds first; *, lists,\n"
    .. "ranges, steps, month and weekday names; @hourly, @daily, @weekly,\n"
    .. "@monthly, @yearly. --every takes the human syntax instead: 5m,\n"
    .. "\"15 minutes\", hour, day, weekday, monday, month, \"day at 03:00\",\n"
    .. "\"month on the 1st at 00:00\". Times are in --tz, the server's local\n"
    .. "zone by default.",
  args = {
    { name = "EXPR", summary = "A cron expression like '0 3 * * *' or a macro like @daily" },
  },
  flags = {
    { name = "every", type = "string", placeholder = "TEXT",
      summary = "A human schedule instead of EXPR: 5m, hour, \"day at 03:00\", monday..." },
    { name = "at", type = "string", placeholder = "HH:MM", summary = "Time of day for --every (03:00, 9:30am)" },
    { name = "on", type = "string", placeholder = "DAY",
      summary = "Day for --every: a weekday (monday, weekdays) or a day of the month (1st)" },
    { name = "tz", type = "string", placeholder = "ZONE",
      summary = "IANA time zone such as Europe/Berlin (default: the local zone)" },
  },
  examples = {
    { "prisn cron explain '*/15 * * * *'", "Every 15 minutes: the next five times" },
    { "prisn cron explain --every 'weekday at 9:30am' --tz Europe/Berlin", "A human schedule in a zone" },
    { "prisn cron explain @daily -o json", "As JSON" },
  },
  handler = handler,
}
