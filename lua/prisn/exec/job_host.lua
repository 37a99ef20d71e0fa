-- prisn.exec.job_host: a warm prisn that forks one job runner per job.
--
-- A job runs in a runner process of its own (prisn.exec.job.run_recorded),
-- which outlives a crashed server. Exec'ing a fresh `prisn __job-run ID` for
-- each job costs an exec, a Lua start and module loading: about 4 ms before
-- the job's own script starts. The server instead starts one `prisn
-- __job-host` at start-up, which loads those modules once and then, for each
-- job, forks: the child is a runner exactly like `prisn __job-run`, minus the
-- start-up.
--
-- Protocol (lines on the host's stdin and stdout, both pipes to the server):
--
--   server -> host   run <id>
--   host -> server   <id> <pid>            the runner's pid
--                    <id> error <message>  fork failed
--
-- The host never opens state.db nor runs an event loop, so a fork copies
-- nothing that two processes must not share; each runner opens its own.
-- Runners are not the host's to wait for: SIGCHLD is ignored, the kernel
-- reaps them. When the server goes away (EOF on stdin) the host exits; the
-- runners it forked go on and finish their jobs.
local M = {}

--- The body of `prisn __job-host`. Returns 0 at EOF.
function M.main(home)
  local sys = require("prisn.core.sys")
  local job = require("prisn.exec.job")
  local async = require("prisn.async")
  -- Warm: what every runner needs, loaded once here.
  for _, name in ipairs({ "prisn.store", "prisn.store.jobs", "prisn.logs", "prisn.exec.run",
    "prisn.exec.runners", "prisn.exec.limits", "prisn.exec.isolation", "prisn.exec.process",
    "prisn.exec.deps", "prisn.exec.envcache", "prisn.exec.interpreter", "prisn.secrets.keyring",
    "prisn.store.secrets" }) do
    require(name)
  end
  -- Checks the built-in runners once, here, rather than in every runner.
  require("prisn.exec.runners").load({ home = home })
  sys.ignore_children()
  sys.set_name("prisn-jobhost")
  for line in io.stdin:lines() do
    local id = line:match("^run (%S+)$")
    if id then
      local pid, err = sys.fork()
      if pid == 0 then
        sys.set_name("prisn-job")
        local ok, code = pcall(async.main, job.run_recorded, home, id)
        if not ok then io.stderr:write("prisn: job ", id, ": ", tostring(code), "\n") end
        io.stderr:flush()
        os.exit(ok and code or 1)
      end
      io.stdout:write(id, " ", pid or ("error " .. tostring(err)), "\n")
      io.stdout:flush()
    end
  end
  return 0
end

return M
