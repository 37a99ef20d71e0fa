-- prisn.server.supervisor.names: what the supervisor calls things — a
-- deployment's key, an instance's display name, the cgroups of a home's
-- instances — so every part names them the same way (a cgroup named one way
-- when made and another when swept would never be cleaned up).
local crypto = require("prisn.core.crypto")

local M = {}

--- "ns/name": the key of a deployment in the supervisor's tables and logs.
function M.key(ns, name) return ns .. "/" .. name end

--- "name-number": how an instance is shown (events, logs, $PRISN_INSTANCE).
function M.name(d, inst) return d.name .. "-" .. inst.number end

--- The tag of this server's home in its cgroups' names: cgroups are
-- machine-wide, and two servers may each run a default/api.
function M.home_tag(home)
  return crypto.to_hex(crypto.hash(home)):sub(1, 8)
end

--- The cgroup of an instance's current process: a new one per restart (the
-- old one is cleaned up in the background), named after the server's home,
-- the deployment and the instance: "svc-<tag>-<ns>.<name>-<number>-<restarts>".
-- Names and namespaces hold no ".", so no two deployments share one (as
-- "a-b"/"c" and "a"/"b-c" would with a "-"): a name found taken is a
-- leftover of this very instance, and is replaced.
function M.cgroup_name(d, inst)
  return string.format("svc-%s-%s.%s-%d-%d", d.home_tag, d.ns, d.name, inst.number, inst.restarts)
end

--- A pattern matching the cgroup names of every instance of deployment `d`.
function M.cgroup_pattern(d)
  return "^" .. (string.format("svc-%s-%s.%s-", d.home_tag, d.ns, d.name):gsub("%p", "%%%0")) .. "%d+%-%d+$"
end

return M
