-- prisn.policies.admission: whether a caller may have the workload it asks
-- for. Every request that makes a workload run — a job, a deployment (create,
-- update, scale up, rollback), a cron job (create, update, and each firing)
-- — is put to admit() before anything is stored; a denial is a 403 with the
-- reason, an `admission.denied` event, and nothing stored or started.
--
-- The server works out the facts first (the isolation level the workload
-- will really get, the user it will run as), so the policy decides on what
-- will happen, not on what was written in the request. Pure: no clock, no
-- I/O, the same request always gets the same answer.
--
-- Contract (an operator's $PRISN_HOME/policies/admission.lua must keep it):
--
--   M.admit(request) -> allowed, reason, hint
--     request {
--       action    = "job.submit" | "deployment.apply" | "deployment.scale"
--                 | "deployment.rollback" | "deployment.restart" | "cronjob.apply"
--                 | "cronjob.fire",
--       namespace = "a",
--       caller    = { token_id = "…", role = "view" | "edit" | "admin",
--                     namespaces = { "a", … } | { "*" },
--                     cluster_admin = bool },  -- role admin, namespaces '*'
--       spec      = { isolation = 0..3,            -- the level it will get
--                     run_as = { uid, gid },       -- the user it will run as
--                     script = "/srv/x.py" | nil,  -- a path on the server
--                     bundle = "sha256…" | nil,    -- or an uploaded bundle
--                     runner = "python3" | nil,
--                     no_deps = bool,              -- no dependency install
--                     env_keys = { "NAME", … },
--                     hooks = { "hooks.lua", … } | nil,
--                     port = 8080 | nil, host = "0.0.0.0" | nil,
--                     hostname = "api.example.com" | nil, path = "/v1" | nil,  -- the ingress route
--                     tls_cert = "/etc/…", tls_key = "/etc/…" | nil },  -- files on the server
--       server    = { uid = 0, min_isolation = 1 },
--     }
--   allowed  true, or false with
--   reason   one line saying what was refused ("isolation 0 needs an admin
--            token"), shown to the caller: never name another namespace's
--            objects in it
--   hint     what to do instead (optional)
--
-- The default rules: a cluster-wide admin token may ask for anything. Any
-- other token (an edit token, or an admin token bound to namespaces) gets
-- only workloads that cannot reach the host: at or above the server's
-- minimum isolation, never as root or as prisn's own user, from an uploaded
-- bundle rather than a path on the server, without environment variables
-- that steer the dynamic loader or prisn itself, without deploy hooks from
-- the bundle (they run in the server's process tree), naming no certificate
-- file on the server (--tls-cert: a secret holds it instead), and not on a
-- privileged port. docs/SECURITY.md lists each field and who may set it.
local M = {}

-- Environment names a workload may set only with an admin token: the
-- dynamic loader's (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …), glibc's that
-- load code or data from a path (GCONV_PATH), and prisn's own, which steer
-- the prisn code that runs inside a workload's process tree.
local function privileged_env(name)
  return name:match("^LD_") ~= nil or name:match("^PRISN_") ~= nil or name == "GCONV_PATH"
    or name == "MALLOC_TRACE" or name == "LOCPATH" or name == "NLSPATH"
end
M.privileged_env = privileged_env

M.FIRST_UNPRIVILEGED_PORT = 1024

local ADMIN_HINT = "ask an admin (a token with role admin and namespace '*') to do it"

--- See the contract at the top of the file.
function M.admit(request)
  local caller, spec, server = request.caller, request.spec, request.server
  if caller.cluster_admin then return true end
  local level, min = spec.isolation, server.min_isolation
  if level < min then
    return false, string.format("isolation %d needs an admin token", level),
      string.format("this server runs other tokens' workloads at isolation %d or above: drop --isolation, or "
        .. "ask for %d or more", min, min)
  end
  local uid = spec.run_as and spec.run_as.uid
  if uid == 0 then
    return false, "this workload would run as root (uid 0), which needs an admin token",
      "the server picks the user: PRISN_WORKLOAD_USER must not be 0 for other tokens' workloads"
  end
  if uid == nil or uid == server.uid then
    return false, string.format("this workload would run as prisn's own user (uid %d), which needs an admin token",
      server.uid), "run the server as root, so that it can start workloads as an unprivileged user; "
      .. ADMIN_HINT
  end
  if spec.script then
    return false, "a script path on the server needs an admin token",
      "upload the script's folder as a bundle ('prisn run --detach', 'prisn deploy' and 'prisn cron' do)"
  end
  for _, name in ipairs(spec.env_keys or {}) do
    if privileged_env(name) then
      return false, string.format("the environment variable %s needs an admin token", name),
        "LD_*, PRISN_*, GCONV_PATH, MALLOC_TRACE, LOCPATH and NLSPATH steer the loader or prisn: " .. ADMIN_HINT
    end
  end
  if spec.tls_cert or spec.tls_key then
    return false, "a certificate file on the server needs an admin token",
      "put the certificate and key in a secret of the namespace (keys TLS_CERT, TLS_KEY) and give --tls-secret NAME"
  end
  if spec.hooks and #spec.hooks > 0 then
    return false, "deploy hooks from the bundle need an admin token",
      "drop 'hooks' from the request; an admin can install hooks in $PRISN_HOME/hooks"
  end
  if spec.port and spec.port < M.FIRST_UNPRIVILEGED_PORT then
    return false, string.format("port %d (below %d) needs an admin token", spec.port, M.FIRST_UNPRIVILEGED_PORT),
      "choose a port from 1024 up"
  end
  return true
end

return M
