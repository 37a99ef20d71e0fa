-- prisn.exec.install.resolution: which wheels pip picked for a requirement
-- set, remembered so that the next cold environment of the same set can be
-- made from prisn's cache of unpacked wheels (prisn.exec.install.wheelcache)
-- without running pip again.
--
-- prisn has no resolver of its own: a resolution is only ever pip's, read
-- from its --report of a real install. It is reused only when it would
-- still be pip's answer:
-- - the key holds everything pip's choice depends on that prisn can see:
--   the interpreter (executable and version, hence the platform tags), the
--   requirement lines and pip options, the PIP_* variables that steer the
--   resolver, and the text of pip's configuration files;
-- - an entry whose requirements are not all exact pins (name==version), or
--   that pulled in dependencies nobody pinned, expires after TTL_S: the
--   age at which pip itself stops trusting an index page from its HTTP cache
--   (PyPI serves /simple/ with max-age=600), so a release published since
--   is picked up as pip would pick it up.
-- Anything else (no entry, an expired one, a damaged file) is "unknown", and
-- the caller runs pip.
local cjson = require("cjson")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")

local M = {}

M.TTL_S = 600

-- PIP_* variables that do not change what pip resolves (where it logs or
-- caches, how it talks): left out of the key so that they do not split it.
local NOT_RESOLVING = {
  PIP_LOG = true, PIP_CACHE_DIR = true, PIP_NO_INPUT = true, PIP_PROGRESS_BAR = true,
  PIP_DISABLE_PIP_VERSION_CHECK = true, PIP_QUIET = true, PIP_VERBOSE = true, PIP_NO_COLOR = true,
  PIP_LOG_FILE = true, PIP_ROOT_USER_ACTION = true, PIP_PYTHON = true,
}

-- pip's configuration files, as pip looks for them (site files, then the
-- user's); a change in any of them changes the key.
local function config_files(env)
  local home = env.HOME or ""
  local list = { "/etc/pip.conf", "/etc/xdg/pip/pip.conf", home .. "/.pip/pip.conf",
    (env.XDG_CONFIG_HOME or (home .. "/.config")) .. "/pip/pip.conf" }
  if env.PIP_CONFIG_FILE then list[#list + 1] = env.PIP_CONFIG_FILE end
  return list
end

-- The "K=V" list as a table.
local function env_table(list)
  local env = {}
  for _, kv in ipairs(list or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if k then env[k] = v end
  end
  return env
end

--- The key of a requirement set: 32 hex digits over `interpreter` ({
-- executable, version }), `lines` (requirement and option lines as given to
-- pip), `env` (the installer's "K=V" list) and `read` (reads a file, nil when
-- absent; default prisn.fs.read_file).
function M.key(interpreter, lines, env_list, read)
  read = read or fs.read_file
  local env = env_table(env_list)
  local parts = { "python", interpreter.executable or "", interpreter.version or "" }
  for _, line in ipairs(lines) do parts[#parts + 1] = "line:" .. line end
  local names = {}
  for k in pairs(env) do
    if k:match("^PIP_") and not NOT_RESOLVING[k] then names[#names + 1] = k end
  end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = "env:" .. k .. "=" .. env[k] end
  for _, path in ipairs(config_files(env)) do
    local text = read(path)
    if text then parts[#parts + 1] = "config:" .. path .. "\0" .. text end
  end
  return crypto.to_hex(crypto.hash(table.concat(parts, "\0"))):sub(1, 32)
end

-- "Foo.Bar_baz" -> "foo-bar-baz" (PEP 503)
function M.normalize(name)
  return (name:lower():gsub("[-_.]+", "-"))
end

--- Whether every requirement line is an exact pin and nothing else was
-- installed: then the answer cannot change with the index.
function M.pinned(lines, wheels)
  local pins = {}
  for _, line in ipairs(lines) do
    local name, version = line:match("^%s*([%w][%w._-]*)%s*==%s*([%w.!+]+)%s*$")
    if not name then return false end
    pins[M.normalize(name)] = version
  end
  for _, w in ipairs(wheels) do
    if pins[M.normalize(w.name)] ~= w.version then return false end
  end
  return #wheels > 0
end

function M.path(root, key)
  return root .. "/resolutions/" .. key .. ".json"
end

--- The wheels of a remembered resolution ({ { id, name, version }, ... }),
-- or nil when unknown or expired at `now` (seconds).
function M.load(root, key, now, read)
  local text = (read or fs.read_file)(M.path(root, key))
  if not text then return nil end
  local ok, data = pcall(cjson.decode, text)
  if not ok or type(data) ~= "table" or type(data.wheels) ~= "table" or #data.wheels == 0
    or type(data.created_at) ~= "number" then
    return nil
  end
  if not data.pinned and now - data.created_at > M.TTL_S then return nil end
  for _, w in ipairs(data.wheels) do
    if type(w.id) ~= "string" or not w.id:match("^[%w._+-]+$") then return nil end
  end
  return data.wheels
end

--- Remembers `wheels` for `key`. Returns true or nil, message, code.
function M.save(root, key, lines, wheels, now)
  local ok, err, code = fs.mkdir_p(root .. "/resolutions", tonumber("755", 8))
  if not ok then return nil, err, code end
  return fs.write_atomic(M.path(root, key), cjson.encode({ created_at = now, pinned = M.pinned(lines, wheels),
    wheels = wheels }), tonumber("644", 8))
end

return M
