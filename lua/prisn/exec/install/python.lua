-- prisn.exec.install.python: builds a Python virtual environment with the
-- script's dependencies.
--
-- The fast path measured on this machine: `python -m venv --without-pip`
-- (~50 ms) and then the interpreter's own pip installing into it with
-- `pip --python <venv>/bin/python` (pip >= 22.3), instead of seeding pip into
-- every venv (~4 s). pip reads the user's configuration as usual
-- (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, pip.conf): prisn passes the
-- environment through untouched.
--
-- Faster still, with no pip at all: when pip has installed the same
-- requirement set before (prisn.exec.install.resolution) and every wheel it
-- picked is in prisn's cache of unpacked wheels
-- (prisn.exec.install.wheelcache), the files are linked into a venv copied
-- from a template (prisn.exec.install.venv).
-- Only for builds run as prisn's own user (spec.cache); a restricted
-- workload's build always runs pip, confined, as its own user.
local cjson = require("cjson")
local async = require("prisn.async")
local fs = require("prisn.fs")
-- What only a build uses, loaded by the first one: a run whose environment
-- is cached needs M.apply alone (~0.1 ms, tests/bench/run-report.md).
local resolution, venv, wheelcache

local M = {}

-- What pip is asked to install, written into the environment being built
-- and removed once pip is done.
M.REQUIREMENTS = "prisn-requirements.txt"
-- pip's --report of the install, read to fill the wheel cache, then removed.
M.REPORT = "prisn-pip-report.json"

-- The lines of pip's output worth showing when it fails.
local function error_lines(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^ERROR") or line:match("^error") or line:match("[Nn]o matching distribution")
      or line:match("Could not") then
      lines[#lines + 1] = line
    end
  end
  if #lines == 0 then
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    while #lines > 10 do table.remove(lines, 1) end
  end
  return lines
end

-- The venv's site-packages folder (lib/pythonX.Y/site-packages).
local function site_packages(dir)
  for _, entry in ipairs(fs.list_dir(dir .. "/lib")) do
    if entry.type == "directory" and entry.name:match("^python%d") then
      return dir .. "/lib/" .. entry.name .. "/site-packages"
    end
  end
end

-- Empties the folder being built, for pip to start again in.
local function clear(dir)
  for _, entry in ipairs(fs.list_dir(dir)) do fs.rm_rf(dir .. "/" .. entry.name) end
end

-- Makes the environment from the wheel cache when pip's answer for `key`
-- is known and every wheel of it is cached intact: the venv from the
-- interpreter's template (prisn.exec.install.venv), the files linked.
-- Returns true, or nil, why (then pip builds it, in an empty `tmp_dir`).
local function from_cache(spec, key, tmp_dir, final_dir)
  local cache = spec.cache
  local wheels = resolution.load(cache.root, key, os.time())
  if not wheels then return nil, "requirements not resolved before" end
  local manifests = {}
  for _, w in ipairs(wheels) do
    local m, why = wheelcache.verify(cache.root, w.id)
    if not m then
      fs.rm_rf(cache.root .. "/" .. w.id) -- damaged: pip fills it again
      return nil, w.id .. ": " .. tostring(why)
    end
    manifests[#manifests + 1] = m
  end
  local template, terr = venv.template(cache.root, cache.interpreter, spec.capture or async.capture, spec.env)
  if not template then return nil, "no venv template: " .. tostring(terr) end
  local ok, err = venv.from_template(template, tmp_dir, final_dir)
  local site = ok and site_packages(tmp_dir)
  if site then ok, err = wheelcache.link(manifests, site, tmp_dir .. "/bin", final_dir .. "/bin/python") end
  if not ok or not site then
    clear(tmp_dir)
    return nil, "linking failed: " .. tostring(err or "no site-packages")
  end
  return true
end

-- After pip: the wheels it installed go into the cache and its answer for
-- `key` is remembered. Returns what happened, for the environment's marker.
local function remember(cache, key, lines, report_file, tmp_dir)
  local text = fs.read_file(report_file)
  os.remove(report_file)
  local ok, report = pcall(cjson.decode, text or "")
  if not ok then return "not cached: no report from pip" end
  local site = site_packages(tmp_dir)
  if not site then return "not cached: no site-packages" end
  local wheels, why = wheelcache.fill(cache.root, report, site)
  if not wheels then return "not cached: " .. tostring(why) end
  local saved, serr = resolution.save(cache.root, key, lines, wheels, os.time())
  return saved and "cached" or ("not cached: " .. tostring(serr))
end

--- Builds the environment in `tmp_dir` (which will be renamed to
-- `final_dir`). `spec` = { interpreter (real executable), dependencies,
-- options (pip options such as --index-url from requirements.txt), env (list
-- of "K=V" for pip), on_output (optional: sees pip's output as it comes, for
-- a progress display), capture (optional: how to run a program, with
-- prisn.async.capture's contract; prisn.exec.install.confined's for a
-- restricted workload), cache (optional: { root, interpreter = { executable,
-- version } }, the wheel cache to build from and fill) }. Returns true,
-- info ({ installer = "pip"|"prisn", wheel_cache = what happened }) or nil,
-- message, code, details (the lines of pip's output that explain the
-- failure).
function M.build(spec, tmp_dir, final_dir)
  resolution = resolution or require("prisn.exec.install.resolution")
  venv = venv or require("prisn.exec.install.venv")
  wheelcache = wheelcache or require("prisn.exec.install.wheelcache")
  local capture = spec.capture or async.capture
  -- pip gets a requirements file, not arguments: options come as one line
  -- each ("--find-links /srv/wheels") and requirements may carry their own
  -- (--hash=...), which pip accepts only in a file.
  local lines = {}
  for _, opt in ipairs(spec.options or {}) do lines[#lines + 1] = opt end
  for _, dep in ipairs(spec.dependencies) do lines[#lines + 1] = dep end
  local cache = spec.cache
  local key = cache and resolution.key(cache.interpreter, lines, spec.env)
  local why_not
  if key then
    local linked
    linked, why_not = from_cache(spec, key, tmp_dir, final_dir)
    if linked then return true, { installer = "prisn", wheel_cache = "linked" } end
  end
  local r, err, code = capture(spec.interpreter, { "-m", "venv", "--without-pip", tmp_dir }, { env = spec.env })
  if not r then return nil, err, code end
  if r.code ~= 0 then
    return nil, "python -m venv failed", "EVENV", error_lines(r.stderr .. r.stdout)
  end
  local req_file = tmp_dir .. "/" .. M.REQUIREMENTS
  local ok, werr, wcode = fs.write_atomic(req_file, table.concat(lines, "\n") .. "\n", tonumber("644", 8))
  if not ok then return nil, werr, wcode end
  local args = { "-m", "pip", "--python", tmp_dir .. "/bin/python", "install",
    "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-r", req_file }
  local report_file = tmp_dir .. "/" .. M.REPORT
  if key then
    args[#args + 1] = "--report"
    args[#args + 1] = report_file
  end
  r, err, code = capture(spec.interpreter, args, { env = spec.env, on_output = spec.on_output })
  os.remove(req_file)
  if not r then return nil, err, code end
  if r.code ~= 0 then
    os.remove(report_file)
    local details = error_lines(r.stderr .. "\n" .. r.stdout)
    if (r.stderr .. r.stdout):match("No module named pip") then
      return nil, spec.interpreter .. " has no pip", "ENOPIP", details
    end
    if (r.stderr .. r.stdout):match("no such option: %-%-python") then
      return nil, spec.interpreter .. "'s pip is too old to install into another environment (it needs pip 22.3)",
        "EPIPOLD", { (r.stderr .. r.stdout):match("no such option: %-%-python") }
    end
    return nil, "pip install failed (exit " .. tostring(r.code) .. ")", "EINSTALL", details
  end
  local cached = key and remember(cache, key, lines, report_file, tmp_dir) or "off"
  venv.relocate(tmp_dir, tmp_dir, final_dir)
  return true, { installer = "pip", wheel_cache = cached, not_linked = why_not }
end

--- How a script runs inside the built environment: the venv's python, and
-- its bin/ first on PATH.
function M.apply(env_dir, launch)
  launch.interpreter = env_dir .. "/bin/python"
  launch.env.VIRTUAL_ENV = env_dir
  launch.env.PATH = env_dir .. "/bin" .. (launch.env.PATH and (":" .. launch.env.PATH) or "")
end

return M
