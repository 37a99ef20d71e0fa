-- prisn.exec.install.node: installs a script's npm dependencies into a
-- cached node_modules.
--
-- The environment is a directory with a generated package.json and its
-- node_modules; scripts find the packages through NODE_PATH. npm reads the
-- user's configuration as usual (.npmrc, npm_config_* variables).
-- Known limit: NODE_PATH serves require(); ES module imports of bare
-- specifiers resolve only from node_modules folders above the script.
local async = require("prisn.async")
local cjson = require("cjson")
local fs = require("prisn.fs")

local M = {}

-- "left-pad@^1.3.0" -> "left-pad", "^1.3.0"; "@scope/pkg" -> "@scope/pkg", "*"
function M.split(dep)
  local scope_name, range = dep:match("^(@[^@/]+/[^@]+)@(.+)$")
  if scope_name then return scope_name, range end
  if dep:match("^@") then return dep, "*" end
  local name, r = dep:match("^([^@]+)@(.+)$")
  if name then return name, r end
  return dep, "*"
end

--- Builds node_modules in `tmp_dir`. `spec` = { npm (path to npm),
-- dependencies = { "name@range", ... }, env, capture (optional: as in
-- prisn.exec.install.python) }. Returns true or nil, message, code, details.
function M.build(spec, tmp_dir)
  local deps = {}
  for _, dep in ipairs(spec.dependencies) do
    local name, range = M.split(dep)
    deps[name] = range
  end
  local ok, err, code = fs.write_atomic(tmp_dir .. "/package.json",
    cjson.encode({ name = "prisn-env", private = true, dependencies = deps }), tonumber("644", 8))
  if not ok then return nil, err, code end
  local r
  r, err, code = (spec.capture or async.capture)(spec.npm, { "install", "--no-audit", "--no-fund", "--omit=dev",
    "--no-package-lock", "--loglevel=error", "--prefix", tmp_dir }, { env = spec.env, cwd = tmp_dir,
    on_output = spec.on_output })
  if not r then return nil, err, code end
  if r.code ~= 0 then
    local details = {}
    for line in (r.stderr .. "\n" .. r.stdout):gmatch("[^\n]+") do
      if line:match("ERR") then details[#details + 1] = line end
    end
    return nil, "npm install failed (exit " .. tostring(r.code) .. ")", "EINSTALL", details
  end
  return true
end

function M.apply(env_dir, launch)
  launch.env.NODE_PATH = env_dir .. "/node_modules"
  launch.env.PATH = env_dir .. "/node_modules/.bin" .. (launch.env.PATH and (":" .. launch.env.PATH) or "")
end

return M
