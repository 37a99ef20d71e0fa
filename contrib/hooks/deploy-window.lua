-- deploy-window.lua: veto deploys outside working hours.
--
-- Copy to $PRISN_HOME/hooks/. By default deploys are allowed Monday to
-- Friday, 09:00 to 17:00, in the server's local time (its TZ). Change the
-- window in the server's environment:
--
--   PRISN_DEPLOY_WINDOW=08:30-18:00            (22:00-06:00 wraps midnight)
--   PRISN_DEPLOY_DAYS=mon,tue,wed,thu,fri,sat
--
-- The window is read on every deploy, so a change needs no restart of
-- anything but the server's environment.
local DAY_NAMES = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" } -- os.date's wday order

local function minutes(hhmm)
  local h, m = hhmm:match("^(%d%d?):(%d%d)$")
  h, m = tonumber(h), tonumber(m)
  if not h or h > 24 or m > 59 then return nil end
  return h * 60 + m
end

-- Whether the local time `t` (os.date("*t")) is inside the window.
local function inside(t, window, days)
  local day_ok = false
  for day in days:gmatch("[^,%s]+") do
    if day:lower() == DAY_NAMES[t.wday] then day_ok = true end
  end
  if not day_ok then return false end
  local from, to = window:match("^%s*([%d:]+)%s*%-%s*([%d:]+)%s*$")
  from, to = from and minutes(from), to and minutes(to)
  if not from or not to then
    error("PRISN_DEPLOY_WINDOW must look like 09:00-17:00, got '" .. window .. "'")
  end
  local now = t.hour * 60 + t.min
  if from <= to then return now >= from and now < to end
  return now >= from or now < to -- a window across midnight
end

return {
  pre_deploy = function(event)
    local window = os.getenv("PRISN_DEPLOY_WINDOW") or "09:00-17:00"
    local days = os.getenv("PRISN_DEPLOY_DAYS") or "mon,tue,wed,thu,fri"
    local t = os.date("*t")
    if not inside(t, window, days) then
      return false, string.format("deploys of %s are allowed on %s, %s (now: %s %02d:%02d)",
        event.deployment or "this deployment", days, window, DAY_NAMES[t.wday], t.hour, t.min)
    end
  end,
}
