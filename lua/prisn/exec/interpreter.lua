-- prisn.exec.interpreter: who really runs a script, asked once and cached.
--
-- `python3` on PATH is often not the interpreter: with pyenv it is a bash
-- shim that costs ~90 ms per start before it execs the real binary. prisn
-- asks the interpreter once who it is (real executable, version, and what the
-- dependency scan needs: Python's stdlib module names, node's builtins) and
-- caches the answer in $PRISN_HOME/cache/interpreters.json. Later runs exec
-- the real binary directly, which is how `prisn run hello.py` can start
-- faster than typing `python3 hello.py`.
--
-- The cache entry is keyed by what decides the answer: the program found on
-- PATH (path, inode, size, mtime) and the environment that steers version
-- managers (PYENV_VERSION, a .python-version / .node-version file above the
-- script's folder, VIRTUAL_ENV, NVM_BIN). An entry is trusted only while the
-- real executable it names is unchanged.
local uv = require("luv")
local cjson = require("cjson")
local async = require("prisn.async")

local M = {}

M.CACHE_VERSION = 1

-- What to ask each kind of interpreter. The answer is one JSON object.
local QUERIES = {
  python = { "-c", "import sys, json; print(json.dumps({'executable': sys.executable, "
    .. "'version': sys.version.split()[0], 'stdlib': sorted(getattr(sys, 'stdlib_module_names', []))}))" },
  node = { "-e", "console.log(JSON.stringify({executable: process.execPath, "
    .. "version: process.version.replace(/^v/, ''), builtins: require('module').builtinModules}))" },
}

local function stat_signature(path)
  local st = uv.fs_stat(path)
  if not st then return nil end
  return string.format("%d:%d:%d.%d", st.ino, st.size, st.mtime.sec, st.mtime.nsec)
end

-- The content of the nearest version-manager file above `dir`, if any.
local function nearest_version_file(dir, names)
  while dir and dir ~= "" do
    for _, name in ipairs(names) do
      local f = io.open(dir .. "/" .. name, "r")
      if f then
        local text = f:read("a")
        f:close()
        return name .. "=" .. text
      end
    end
    if dir == "/" then break end
    dir = dir:match("^(.*)/[^/]*$")
    if dir == "" then dir = "/" end
  end
  return ""
end

--- The cache key for `path` (a program found on PATH) run from `script_dir`.
function M.cache_key(path, script_dir, getenv)
  getenv = getenv or os.getenv
  local parts = {
    path, stat_signature(path) or "missing",
    getenv("PYENV_VERSION") or "", getenv("VIRTUAL_ENV") or "", getenv("NVM_BIN") or "",
    nearest_version_file(script_dir, { ".python-version", ".node-version", ".nvmrc" }),
  }
  return table.concat(parts, "\0")
end

local function cache_path(home)
  return home .. "/cache/interpreters.json"
end

local function load_cache(home)
  local f = io.open(cache_path(home), "r")
  if not f then return { version = M.CACHE_VERSION, entries = {} } end
  local ok, data = pcall(cjson.decode, f:read("a"))
  f:close()
  if not ok or type(data) ~= "table" or data.version ~= M.CACHE_VERSION or type(data.entries) ~= "table" then
    return { version = M.CACHE_VERSION, entries = {} }
  end
  return data
end

-- Written to a temporary file and renamed, so a reader never sees half.
local function save_cache(home, cache)
  local dir = home .. "/cache"
  uv.fs_mkdir(dir, tonumber("700", 8))
  local tmp = string.format("%s.%d.tmp", cache_path(home), uv.os_getpid())
  local f = io.open(tmp, "w")
  if not f then return end
  f:write(cjson.encode(cache))
  f:close()
  uv.fs_rename(tmp, cache_path(home))
end

--- Identifies the interpreter at `path` for a dependency manager ("python",
-- "node" or anything else). Returns { executable, version, signature,
-- stdlib = {...} | nil, builtins = {...} | nil } or nil, message, code.
-- Must run inside an async task when the answer is not cached.
function M.identify(home, path, manager, script_dir)
  local key = manager .. "\0" .. M.cache_key(path, script_dir)
  local cache = home and load_cache(home) or { entries = {} }
  local entry = cache.entries[key]
  if entry and entry.signature == stat_signature(entry.executable) then
    return entry
  end
  local query = QUERIES[manager]
  if not query then
    local real = uv.fs_realpath(path) or path
    entry = { executable = real, version = "", signature = stat_signature(real) }
  else
    local r, err, code = async.capture(path, query, { timeout_ms = 30000 })
    if not r then return nil, err, code end
    local ok, data = pcall(cjson.decode, r.stdout)
    if r.code ~= 0 or not ok or type(data) ~= "table" or type(data.executable) ~= "string" then
      return nil, string.format("%s did not say who it is (exit %s): %s", path, tostring(r.code),
        (r.stderr ~= "" and r.stderr or r.stdout):match("^[^\n]*")), "EINTERPRETER"
    end
    local real = uv.fs_realpath(data.executable) or data.executable
    -- Keep the path the interpreter gave (a venv's bin/python is a symlink
    -- whose location matters); trust it while its target is unchanged.
    entry = {
      executable = data.executable,
      real_executable = real,
      version = data.version,
      signature = stat_signature(data.executable),
      stdlib = data.stdlib,
      builtins = data.builtins,
    }
  end
  if home then
    cache.entries[key] = entry
    save_cache(home, cache)
  end
  return entry
end

--- The folder that holds an interpreter's bin/ (its prefix: /usr for
-- /usr/bin/python3, the venv for .venv/bin/python), or its own folder.
function M.prefix_of(executable)
  local dir = executable and executable:match("^(.*)/[^/]*$")
  return dir and (dir:match("^(.*)/bin$") or dir) or nil
end

return M
