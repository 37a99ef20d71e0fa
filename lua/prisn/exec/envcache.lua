-- prisn.exec.envcache: dependency environments, built once and reused.
--
-- An environment lives at $PRISN_HOME/envs/<runner>/<key>, where the key is a
-- hash of the real interpreter's identity (executable + version) and the
-- normalized dependency list: the same script needs on the same interpreter
-- share one environment, and upgrading the interpreter gets a new one.
--
-- Building is atomic and happens once: under an exclusive lock on
-- <key>.lock, the environment is built in <key>.tmp-<pid> and renamed into
-- place only when complete; a marker file (env.json) records what it holds.
-- A concurrent first run of the same key waits for the lock and then finds
-- the finished environment. A failed build removes its temporary directory,
-- so nothing half-built is ever used.
local uv = require("luv")
local cjson = require("cjson")
local crypto = require("prisn.core.crypto")
local sys = require("prisn.core.sys")
local async = require("prisn.async")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local confined = require("prisn.exec.install.confined")

local write_hint = require("prisn.home").write_hint

local M = {}

M.MARKER = "env.json"

local INSTALLERS = {
  python = "prisn.exec.install.python",
  node = "prisn.exec.install.node",
}

--- The cache key: 16 hex digits of a BLAKE2b over interpreter and deps.
function M.key(manager, interpreter, dependencies)
  local text = table.concat({ manager, interpreter.executable, interpreter.version or "",
    table.concat(dependencies, "\n") }, "\0")
  return crypto.to_hex(crypto.hash(text)):sub(1, 16)
end

function M.root(home)
  return home .. "/envs"
end

--- prisn's cache of unpacked wheels (prisn.exec.install.wheelcache) and
-- the resolutions that use it; `prisn env prune` leaves it alone.
function M.wheels_root(home)
  return home .. "/wheels/shared"
end

function M.path(home, runner, key)
  return string.format("%s/%s/%s", M.root(home), runner, key)
end

local function read_marker(dir)
  local text = fs.read_file(dir .. "/" .. M.MARKER)
  if not text then return nil end
  local ok, data = pcall(cjson.decode, text)
  return ok and type(data) == "table" and data or nil
end

-- Records a use, for `prisn env list` and `prisn env prune`.
local function touch(dir)
  local now = os.time()
  uv.fs_utime(dir .. "/" .. M.MARKER, now, now)
end

-- Takes the build lock, waiting (without blocking the loop) while another
-- prisn holds it. `on_wait` is called once if we have to wait.
local function acquire_lock(path, on_wait)
  local waited = false
  while true do
    local fd, err, code = sys.lock(path)
    if fd then return fd end
    if fd == nil then return nil, err, code end
    if not waited and on_wait then on_wait() end
    waited = true
    async.sleep(50)
  end
end

--- Makes the build folder `tmp` the builder's: owned by builder.user, with
-- a HOME of its own inside (pip and npm keep caches and configuration under
-- HOME; the server's is not theirs), and a capture function that runs the
-- installer as that user, confined (prisn.exec.install.confined) with `tmp`
-- writable and builder.keep readable. Returns the installer's environment
-- list, the capture function and that HOME (removed after the build).
function M.hand_over(home, tmp, builder, env)
  local user = builder.user
  local build_home = tmp .. "/.prisn-build-home"
  local ok, err, code = fs.mkdir_p(build_home, tonumber("700", 8))
  if not ok then errors.raise(code or "EIO", "cannot create " .. build_home .. ": " .. tostring(err)) end
  for _, path in ipairs({ tmp, build_home }) do
    local chowned, cerr, ccode = uv.fs_chown(path, user.uid, user.gid)
    if not chowned then
      errors.raise(ccode or "EPERM", "cannot hand " .. path .. " to uid " .. user.uid .. ": " .. tostring(cerr),
        { hint = "a restricted workload's dependencies are built as its own user: prisn must run as root" })
    end
  end
  local list = {}
  for _, kv in ipairs(env or {}) do
    if not kv:match("^HOME=") then list[#list + 1] = kv end
  end
  list[#list + 1] = "HOME=" .. build_home
  local keep = { { path = tmp, writable = true } }
  for _, k in ipairs(builder.keep or {}) do keep[#keep + 1] = { path = k.path } end
  local capture = confined.capture_for({ home = home, user = user, keep = keep })
  return list, capture, build_home
end

--- Makes sure the environment for `spec` exists and returns its directory.
-- spec = { home, runner, manager ("python"|"node"), interpreter (from
-- prisn.exec.interpreter), dependencies (normalized list), key_parts
-- (optional: every string that decides what gets installed, the
-- dependencies plus pip options and the like; default the dependencies),
-- options, source,
-- env (list of "K=V" for the installer), npm (path, for node), progress
-- (optional: function(event, info) for "waiting", "building", "output" (a
-- chunk of the installer's output, info.data), "built"),
-- cached_only (optional: never build; a missing environment is an error),
-- builder (optional: { user = { uid, gid }, keep = { { path }, ... } } to
-- build as that user, confined: see M.hand_over and
-- prisn.exec.install.confined; the caller keys such builds apart) }.
-- Raises a prisn.error when the build fails. Must run in an async task.
function M.ensure(spec)
  local key = M.key(spec.manager, spec.interpreter, spec.key_parts or spec.dependencies)
  local dir = M.path(spec.home, spec.runner, key)
  if read_marker(dir) then
    touch(dir)
    return dir, key, false
  end
  if spec.cached_only then
    errors.raise("EDEPS", string.format("the %s dependencies of this workload (%s) are not built, and this "
      .. "token's workloads may not build them", spec.manager, table.concat(spec.dependencies, ", ")),
      { hint = "an admin builds the environment once (the same script run by an admin token); "
        .. "or vendor the packages into the bundle and run with --no-deps" })
  end
  local progress = spec.progress or function() end
  local parent = M.root(spec.home) .. "/" .. spec.runner
  local ok, err, code = fs.mkdir_p(parent)
  if not ok then
    errors.raise(code or "EIO", "cannot create " .. parent .. ": " .. tostring(err), { hint = write_hint(code) })
  end
  local lock, lerr, lcode = acquire_lock(dir .. ".lock", function() progress("waiting", { key = key }) end)
  if not lock then
    errors.raise(lcode or "EIO", "cannot lock the environment " .. dir .. ": " .. tostring(lerr),
      { hint = write_hint(lcode) })
  end
  local built_here = false
  local result = table.pack(pcall(function()
    if read_marker(dir) then return end -- built by whoever held the lock
    fs.rm_rf(dir) -- a directory without its marker is a leftover: rebuild
    local tmp = string.format("%s.tmp-%d", dir, uv.os_getpid())
    fs.rm_rf(tmp)
    local made, merr, mcode = fs.mkdir_p(tmp, tonumber("755", 8))
    if not made then
      errors.raise(mcode or "EIO", "cannot create " .. tmp .. " for a new environment: " .. tostring(merr),
        { hint = write_hint(mcode) })
    end
    local started = uv.hrtime()
    progress("building", { key = key, dependencies = spec.dependencies })
    local installer = require(INSTALLERS[spec.manager])
    local env, capture, build_home = spec.env, nil, nil
    if spec.builder then env, capture, build_home = M.hand_over(spec.home, tmp, spec.builder, spec.env) end
    local built, berr, bcode, details = installer.build({
      interpreter = spec.interpreter.executable,
      -- The wheel cache is prisn's own: a build run as another user
      -- (spec.builder) neither reads nor fills it (docs/DEPENDENCIES.md).
      cache = not spec.builder and { root = M.wheels_root(spec.home), interpreter = spec.interpreter } or nil,
      dependencies = spec.dependencies,
      options = spec.options,
      env = env,
      npm = spec.npm,
      capture = capture,
      on_output = function(data) progress("output", { data = data }) end,
    }, tmp, dir)
    if build_home then fs.rm_rf(build_home) end
    if not built then
      fs.rm_rf(tmp)
      local message = string.format("installing %s dependencies failed: %s", spec.manager, berr)
      if details and #details > 0 then message = message .. "\n  " .. table.concat(details, "\n  ") end
      errors.raise(bcode or "EINSTALL", message, { hint = M.failure_hint(spec, bcode) })
    end
    local marker = {
      key = key,
      runner = spec.runner,
      manager = spec.manager,
      interpreter = spec.interpreter.executable,
      interpreter_version = spec.interpreter.version,
      dependencies = spec.dependencies,
      source = spec.source,
      created_at = os.time(),
      build_ms = (uv.hrtime() - started) // 1000000,
      -- on success the installer's second value says how it built
      installer = type(berr) == "table" and berr.installer or nil,
      wheel_cache = type(berr) == "table" and berr.wheel_cache or nil,
      not_linked = type(berr) == "table" and berr.not_linked or nil,
    }
    local marked, werr, wcode = fs.write_atomic(tmp .. "/" .. M.MARKER, cjson.encode(marker), tonumber("644", 8))
    if not marked then
      fs.rm_rf(tmp)
      errors.raise(wcode or "EIO", "cannot write the marker of the new environment " .. tmp .. ": "
        .. tostring(werr), { hint = write_hint(wcode) })
    end
    local renamed, rerr, rcode = uv.fs_rename(tmp, dir)
    if not renamed then
      fs.rm_rf(tmp)
      errors.raise(rcode or "EIO", "cannot move the new environment into place: " .. tostring(rerr),
        { hint = write_hint(rcode) })
    end
    built_here = true
    progress("built", { key = key, ms = marker.build_ms })
  end))
  sys.unlock(lock)
  if not result[1] then error(result[2], 0) end
  touch(dir)
  return dir, key, built_here
end

-- Where the dependency list came from, in words, for a hint.
local function where_listed(source)
  if not source then return "" end
  if source:match("^pep723") then return " in the script's '# /// script' block" end
  if source:match("^imports") then return " (guessed from the script's imports)" end
  return " in " .. source
end

function M.failure_hint(spec, code)
  if code == "ENOPIP" then
    return "install pip for " .. spec.interpreter.executable .. " (Debian: apt-get install python3-pip)"
  elseif code == "EPIPOLD" then
    return "upgrade it: " .. spec.interpreter.executable .. " -m pip install --upgrade pip"
  end
  local where = where_listed(spec.source)
  if spec.manager == "python" then
    return "check the package names" .. where
      .. "; pip's index comes from PIP_INDEX_URL, PIP_FIND_LINKS or pip.conf (or run with --no-deps)"
  end
  return "check the package names" .. where .. "; npm's registry comes from .npmrc (or run with --no-deps)"
end

--- The built environments: { key, runner, manager, dependencies, size,
-- created_at, last_used, path }, most recently used first.
function M.list(home)
  local envs = {}
  for _, runner in ipairs(fs.list_dir(M.root(home))) do
    if runner.type == "directory" then
      local base = M.root(home) .. "/" .. runner.name
      for _, entry in ipairs(fs.list_dir(base)) do
        local dir = base .. "/" .. entry.name
        local marker = entry.type == "directory" and read_marker(dir)
        if marker then
          local st = uv.fs_stat(dir .. "/" .. M.MARKER)
          envs[#envs + 1] = {
            key = entry.name,
            runner = runner.name,
            manager = marker.manager,
            dependencies = marker.dependencies or {},
            interpreter = marker.interpreter,
            size = fs.tree_size(dir),
            created_at = marker.created_at,
            last_used = st and st.mtime.sec or marker.created_at,
            path = dir,
          }
        end
      end
    end
  end
  table.sort(envs, function(a, b) return a.last_used > b.last_used end)
  return envs
end

--- Removes environments not used for `older_than` seconds (all when 0),
-- skipping any that is being built or used under its lock right now.
-- Returns the removed entries.
function M.prune(home, older_than)
  local removed = {}
  local cutoff = os.time() - older_than
  for _, env in ipairs(M.list(home)) do
    if env.last_used <= cutoff then
      local lock = sys.lock(env.path .. ".lock")
      if lock then
        fs.rm_rf(env.path)
        sys.unlock(lock)
        uv.fs_unlink(env.path .. ".lock")
        removed[#removed + 1] = env
      end
    end
  end
  return removed
end

return M
