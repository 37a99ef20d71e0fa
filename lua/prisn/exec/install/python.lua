-- prisn.exec.install.python: builds a Python virtual environment with the
-- script's dependencies.
--
-- The fast path measured on this machine: `python -m venv --without-pip`
-- (~50 ms) and then the interpreter's own pip installing into it with
-- `pip --python <venv>/bin/python` (pip >= 22.3), instead of seeding pip into
-- every venv (~4 s). pip reads the user's configuration as usual
-- (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, pip.conf): prisn passes the
-- environment through untouched.
local uv = require("luv")
local async = require("prisn.async")
local fs = require("prisn.fs")

local M = {}

-- What pip is asked to install, written into the environment being built
-- and removed once pip is done.
M.REQUIREMENTS = "prisn-requirements.txt"

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

-- venv writes its own path into bin/ scripts (activate, entry points) and
-- pyvenv.cfg; the environment is built under a temporary name and renamed,
-- so point those at the final location before the rename.
local function relocate(tmp_dir, final_dir)
  -- Regular files in real folders only: a restricted build (another user)
  -- may have left symlinks here, and this runs as prisn's user.
  local files = { tmp_dir .. "/pyvenv.cfg" }
  local bin = uv.fs_lstat(tmp_dir .. "/bin")
  for _, entry in ipairs(bin and bin.type == "directory" and fs.list_dir(tmp_dir .. "/bin") or {}) do
    if entry.type == "file" then files[#files + 1] = tmp_dir .. "/bin/" .. entry.name end
  end
  for _, path in ipairs(files) do
    local st = uv.fs_lstat(path)
    local text = st and st.type == "file" and fs.read_file(path)
    if text and text:find(tmp_dir, 1, true) then
      local fixed = text:gsub(tmp_dir:gsub("%p", "%%%0"), (final_dir:gsub("%%", "%%%%")))
      local f = io.open(path, "wb")
      if f then f:write(fixed); f:close() end
    end
  end
end

--- Builds the environment in `tmp_dir` (which will be renamed to
-- `final_dir`). `spec` = { interpreter (real executable), dependencies,
-- options (pip options such as --index-url from requirements.txt), env (list
-- of "K=V" for pip), on_output (optional: sees pip's output as it comes, for
-- a progress display), capture (optional: how to run a program, with
-- prisn.async.capture's contract; prisn.exec.install.confined's for a
-- restricted workload) }. Returns true or nil, message, code, details (the
-- lines of pip's output that explain the failure).
function M.build(spec, tmp_dir, final_dir)
  local capture = spec.capture or async.capture
  local r, err, code = capture(spec.interpreter, { "-m", "venv", "--without-pip", tmp_dir }, { env = spec.env })
  if not r then return nil, err, code end
  if r.code ~= 0 then
    return nil, "python -m venv failed", "EVENV", error_lines(r.stderr .. r.stdout)
  end
  -- pip gets a requirements file, not arguments: options come as one line
  -- each ("--find-links /srv/wheels") and requirements may carry their own
  -- (--hash=...), which pip accepts only in a file.
  local lines = {}
  for _, opt in ipairs(spec.options or {}) do lines[#lines + 1] = opt end
  for _, dep in ipairs(spec.dependencies) do lines[#lines + 1] = dep end
  local req_file = tmp_dir .. "/" .. M.REQUIREMENTS
  local ok, werr, wcode = fs.write_atomic(req_file, table.concat(lines, "\n") .. "\n", tonumber("644", 8))
  if not ok then return nil, werr, wcode end
  r, err, code = capture(spec.interpreter, { "-m", "pip", "--python", tmp_dir .. "/bin/python", "install",
    "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-r", req_file },
    { env = spec.env, on_output = spec.on_output })
  os.remove(req_file)
  if not r then return nil, err, code end
  if r.code ~= 0 then
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
  relocate(tmp_dir, final_dir)
  return true
end

--- How a script runs inside the built environment: the venv's python, and
-- its bin/ first on PATH.
function M.apply(env_dir, launch)
  launch.interpreter = env_dir .. "/bin/python"
  launch.env.VIRTUAL_ENV = env_dir
  launch.env.PATH = env_dir .. "/bin" .. (launch.env.PATH and (":" .. launch.env.PATH) or "")
end

return M
