-- prisn.exec.install.confined: runs a dependency installer (python -m venv,
-- pip, npm) as the workload's own user, in a sandbox like the workload's.
--
-- Why: installing a package runs the package's code (an sdist's setup.py,
-- an npm postinstall script), and the installer reads variables such as
-- PYTHONPATH or NODE_OPTIONS from the workload's environment. For a
-- workload of a token that is not a cluster-wide admin (a restricted one,
-- see prisn.server.admission), that code must get no more than the workload
-- itself would: its user (never root, never prisn's own), no_new_privs, its
-- own PID namespace, and $PRISN_HOME hidden but for the folder being built
-- (writable) and what the build reads (read-only: the bundle, the
-- interpreter's prefix, local wheel folders). Isolation level 1, as in
-- prisn.exec.isolation.
--
--   local capture = confined.capture_for({ home = home, user = { uid, gid },
--     keep = { { path = tmp, writable = true }, { path = bundle_dir } } })
--   local r, err, code = capture(file, args, { env = { "K=V", ... }, cwd = dir })
--
-- capture has async.capture's contract: inside a task; returns { code,
-- signal, stdout, stderr }, or nil, message, code when the program could not
-- be started.
local run = require("prisn.exec.group")
local envfile = require("prisn.envfile")

local M = {}

M.TIMEOUT_S = 30 * 60 -- an install that takes longer than this is stuck
M.MAX_OUTPUT_BYTES = 1024 * 1024 -- of each stream, kept for error messages

-- A sink that keeps the first MAX_OUTPUT_BYTES of a stream.
local function collector(chunks)
  local size = 0
  return function(data)
    if size < M.MAX_OUTPUT_BYTES then
      chunks[#chunks + 1] = data
      size = size + #data
    end
  end
end

--- A capture function that runs programs confined: ctx = { home, user =
-- { uid, gid }, keep = { { path, writable }, ... } }.
function M.capture_for(ctx)
  return function(file, args, opts)
    opts = opts or {}
    local argv = { file }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local out, err = {}, {}
    local result = run.supervise({
      file = file, argv = argv, env = envfile.list_to_table(opts.env), cwd = opts.cwd or ctx.keep[1].path,
      stdin = "null", forward_signals = false, timeout = M.TIMEOUT_S, grace = 5,
      on_stdout = collector(out), on_stderr = collector(err),
      isolation = { level = 1, explicit = true, home = ctx.home, user = ctx.user, keep = ctx.keep },
    })
    if result.reason == "failed_to_start" then
      return nil, string.format("%s: %s", file, tostring(result.message)), result.code
    end
    return { code = result.exit_code, signal = result.signal, stdout = table.concat(out),
      stderr = table.concat(err) }
  end
end

return M
