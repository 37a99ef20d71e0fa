-- prisn.policies: the policy a name stands for — an operator's
-- $PRISN_HOME/policies/NAME.lua when there is one, else the built-in
-- policies/NAME.lua. Both keep the same contract (see the built-in file).
--
-- An operator policy runs in the server, so it is held to what a policy may
-- do: it is loaded in the operator-code sandbox (pure helpers, no I/O, see
-- prisn.sandbox) and every call runs under its instruction
-- budget. A file that does not load, or a call that raises or loops, is
-- logged and answered by the built-in policy instead: a broken policy file
-- must not stop the supervisor. The file is read again when it changes.
local uv = require("luv")
local sandbox = require("prisn.sandbox")
local fs = require("prisn.fs")

local M = {}

local cache = {} -- path -> { mtime, policy }

local function mtime_of(st)
  return st.mtime.sec * 1e9 + st.mtime.nsec
end

-- A table whose functions call the operator's in the sandbox, falling back
-- to the built-in one when it fails.
local function guarded(operator, builtin, path, log)
  return setmetatable({}, { __index = function(_, k)
    local f = operator[k]
    if type(f) ~= "function" then return builtin[k] end
    return function(...)
      local results = table.pack(sandbox.call(f, nil, ...))
      if results[1] then return table.unpack(results, 2, results.n) end
      if log then log:error("policy %s: %s: %s; using the built-in policy", path, k, tostring(results[2])) end
      return builtin[k](...)
    end
  end })
end

--- The policy `name` ("restart", "rollout", "autoscale") for `home`; log
-- (optional, a prisn.server.log) hears about a broken operator file.
function M.get(home, name, log)
  local builtin = require("prisn.policies." .. name)
  if not home then return builtin end
  local path = home .. "/policies/" .. name .. ".lua"
  local st = uv.fs_stat(path)
  if not st then return builtin end
  local cached = cache[path]
  if cached and cached.mtime == mtime_of(st) then return cached.policy end
  local text = fs.read_file(path)
  local operator, err
  if text then operator, err = sandbox.load(text, path) else err = "cannot read " .. path end
  local policy = builtin
  if type(operator) == "table" then
    policy = guarded(operator, builtin, path, log)
  elseif log then
    log:error("policy %s: %s; using the built-in policy", path, tostring(err or "it must return a table"))
  end
  cache[path] = { mtime = mtime_of(st), policy = policy }
  return policy
end

return M
