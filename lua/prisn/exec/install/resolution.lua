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
--   resolver, the text of pip's configuration files, and the state (names,
--   sizes, modification times) of every local path pip reads packages or
--   constraints from (--find-links folders, PIP_FIND_LINKS, -c files, a
--   requirement naming a local wheel): a wheel rebuilt there is a new key;
-- - an entry whose requirements are not all exact pins (name==version), or
--   that pulled in dependencies nobody pinned, expires after TTL_S: the
--   age at which pip itself stops trusting an index page from its HTTP cache
--   (PyPI serves /simple/ with max-age=600), so a release published since
--   is picked up as pip would pick it up.
-- Anything else (no entry, an expired one, a damaged file) is "unknown", and
-- the caller runs pip.
local uv = require("luv")
local cjson = require("cjson")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")
local envfile = require("prisn.envfile")

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

-- Options and variables whose value is a local path pip reads from.
local PATH_OPTIONS = { ["-f"] = true, ["--find-links"] = true, ["-c"] = true, ["--constraint"] = true,
  ["-e"] = true, ["--editable"] = true }
local PATH_VARIABLES = { "PIP_FIND_LINKS", "PIP_CONSTRAINT" }

-- The local paths `lines` and `env` make pip read.
local function local_paths(lines, env)
  local paths = {}
  local function add(value)
    value = value:gsub("^file://", "")
    if value:match("^[/.~]") then paths[#paths + 1] = value end
  end
  for _, line in ipairs(lines) do
    local flag, value = line:match("^(%-%-?[%w-]+)[=%s]%s*(.-)%s*$")
    if flag and PATH_OPTIONS[flag] then
      add(value)
    elseif not flag then
      for word in line:gmatch("[^%s;@]+") do add(word) end
    end
  end
  for _, name in ipairs(PATH_VARIABLES) do
    for value in (env[name] or ""):gmatch("%S+") do add(value) end
  end
  return paths
end

-- What a path holds, as far as pip's choice goes: a file's size and
-- modification time, a folder's entries with theirs.
local function path_state(path)
  local st = uv.fs_stat(path)
  if not st then return path .. ":missing" end
  local function one(name, s) return string.format("%s:%d:%d.%d", name, s.size, s.mtime.sec, s.mtime.nsec) end
  if st.type ~= "directory" then return one(path, st) end
  local parts = { one(path, st) }
  for _, entry in ipairs(fs.list_dir(path)) do
    local es = uv.fs_stat(path .. "/" .. entry.name)
    if es then parts[#parts + 1] = one(entry.name, es) end
  end
  return table.concat(parts, "\n")
end

--- The key of a requirement set: 32 hex digits over `interpreter` ({
-- executable, version }), `lines` (requirement and option lines as given to
-- pip), `env` (the installer's "K=V" list), `read` (reads a file, nil when
-- absent; default prisn.fs.read_file) and `state` (what a local path holds;
-- default: sizes and modification times).
function M.key(interpreter, lines, env_list, read, state)
  read, state = read or fs.read_file, state or path_state
  local env = envfile.list_to_table(env_list)
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
  for _, path in ipairs(local_paths(lines, env)) do parts[#parts + 1] = "path:" .. state(path) end
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
