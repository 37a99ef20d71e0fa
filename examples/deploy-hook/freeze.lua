-- A deploy freeze: refuses deploys to the namespaces listed in FROZEN (edit
-- the list; hooks are read at every event, nothing to reload), and to the
-- namespaces of WEEKEND from Friday 16:00 to Monday 06:00, server time. Copy
-- it to $PRISN_HOME/hooks/. A hook runs in a sandbox: os.date, os.getenv and
-- the string functions are there, io and require are not (docs/HOOKS.md).

-- namespace -> why it is frozen
local FROZEN = {
  prod = "release freeze until the audit is done (ask #ops)",
}

-- Namespaces that get no deploys over the weekend.
local WEEKEND = { prod = true, billing = true }

-- Whether `t` (an os.date("*t") table) falls between Friday 16:00 and Monday 06:00.
local function weekend(t)
  local wday, hour = t.wday, t.hour -- wday: 1 Sunday .. 7 Saturday
  return wday == 7 or wday == 1 or (wday == 6 and hour >= 16) or (wday == 2 and hour < 6)
end

return {
  pre_deploy = function(event)
    local why = FROZEN[event.namespace]
    if why then return false, why end
    if WEEKEND[event.namespace] and weekend(os.date("*t")) then
      return false, "no deploys to " .. event.namespace .. " from Friday 16:00 to Monday 06:00"
    end
  end,
}
