-- `prisn doctor`: check the machine for everything prisn depends on.
local function handler(ctx)
  local doctor = require("prisn.doctor")
  local home = require("prisn.home").path()
  local async = require("prisn.async")
  local checks = async.main(function() return doctor.run(require("prisn.doctor.probes").system(), home) end)
  local summary = doctor.summary(checks)
  if ctx.globals.output ~= "text" then
    ctx.out:emit({ checks = checks, summary = summary })
  else
    ctx.out:emit(checks, { columns = {
      { key = "name", header = "CHECK" }, { key = "status", header = "STATUS" },
      { key = "detail", header = "DETAIL" } } })
    local fixes = {}
    for _, c in ipairs(checks) do
      if c.status ~= "ok" and c.fix then fixes[#fixes + 1] = string.format("  %s: %s", c.name, c.fix) end
    end
    if #fixes > 0 and not ctx.globals.quiet then
      io.stdout:write("\nTo fix:\n", table.concat(fixes, "\n"), "\n")
    end
    if not ctx.globals.quiet then
      io.stdout:write(string.format("\n%d ok, %d warn, %d fail\n", summary.ok, summary.warn, summary.fail))
    end
  end
  return summary.fail > 0 and 1 or 0
end

return {
  {
    name = "doctor",
    summary = "Check this machine for everything prisn depends on",
    description = "Checks the kernel, cgroup v2 and v1 controllers (memory, cpu, pids),\n"
      .. "user/pid/mount/net namespaces, the python3, node and bash interpreters,\n"
      .. "PRISN_HOME (exists, mode 0700, free space), the state database and the\n"
      .. "server. Each check is ok, warn (prisn works with less) or fail (prisn is\n"
      .. "broken here), with a one-line fix. Exits 1 when any check fails.",
    examples = {
      { "prisn doctor", "Check this machine" },
      { "prisn doctor -o json", "The checks as JSON: {checks: [{name, status, detail, fix}], summary}" },
    },
    handler = handler,
  },
}
