-- `prisn scale NAME N`: for now, cron jobs only: 0 suspends the cron job
-- (no new runs, history kept), 1 or more resumes it. Deployments join later
-- (replicas, --add). A count is a plain whole number: the forms a shell or a
-- reader could take for something else (-1, +2, 1.5, *2, 00) are refused
-- with the safe forms shown, rather than guessed at.
local errors = require("prisn.error")

local SAFE = "give 0 to suspend or 1 to resume, e.g. prisn scale NAME 0"

--- The count `text` means, or raises a usage error naming the safe forms.
local function parse_count(text)
  if not text:match("^%d+$") or (#text > 1 and text:sub(1, 1) == "0") then
    errors.usage(string.format("'%s' is not a count: use a plain whole number like 0 or 1", text), SAFE)
  end
  return math.tointeger(tonumber(text))
end

local function scale(ctx)
  local count = parse_count(ctx.args.COUNT)
  local client = require("prisn.client")
  local c = client.connect(ctx)
  local name = ctx.args.NAME:match("^cron/(.+)$") or ctx.args.NAME
  local verb = count == 0 and "suspend" or "resume"
  local res = c:request("POST", string.format("/api/v1/namespaces/%s/cronjobs/%s/%s", client.namespace(ctx), name,
    verb), {})
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("cron job %s %s\n", name, count == 0 and "suspended" or "resumed"))
  end
  return 0
end

return {
  {
    name = "scale",
    summary = "Scale a cron job: 0 suspends it, 1 resumes it",
    description = "For a cron job, 'prisn scale NAME 0' suspends it (no new runs; its history\n"
      .. "is kept) and 'prisn scale NAME 1' resumes it from the next time of its\n"
      .. "schedule, like 'prisn cron suspend|resume NAME'. COUNT is a plain whole\n"
      .. "number: -1, +2, 1.5, *2 or 00 are refused.",
    args = {
      { name = "NAME", summary = "The cron job (cron/NAME works too)", required = true },
      { name = "COUNT", summary = "0 to suspend, 1 to resume", required = true },
    },
    examples = {
      { "prisn scale backup 0", "Suspend cron job backup" },
      { "prisn scale backup 1", "Resume it" },
    },
    handler = scale,
  },
}
