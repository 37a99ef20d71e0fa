-- prisn.exec.install.python: builds a Python virtual environment with the
-- script's dependencies.
--
-- The fast path measured on this machine: `python -m venv --without-pip`
-- (~50 ms) and then the interpreter's own pip installing into it with
-- `pip --python <venv>/bin/python` (pip >= 22.3), instead of seeding pip into
-- every venv (~4 s). pip reads the user's configuration as usual
-- (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, pip.conf): prisn passes the
-- environment through untouched.
local async = require("prisn.async")
local fs = require("prisn.fs")

local M = {}

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

-- venv writes its own path into bin/ scripts (activate, entry points); the
-- environment is built under a temporary name and renamed, so point those
-- at the final location before the rename.
local function relocate_bin(tmp_dir, final_dir)
  for _, entry in ipairs(fs.list_dir(tmp_dir .. "/bin")) do
    local path = tmp_dir .. "/bin/" .. entry.name
    if entry.type == "file" then
      local text = fs.read_file(path)
      if text and text:find(tmp_dir, 1, true) then
        local fixed = text:gsub(tmp_dir:gsub("%p", "%%%0"), (final_dir:gsub("%%", "%%%%")))
        local f = io.open(path, "wb")
        if f then f:write(fixed); f:close() end
      end
    end
  end
end

--- Builds the environment in `tmp_dir` (which will be renamed to
-- `final_dir`). `spec` = { interpreter (real executable), dependencies,
-- options (pip options such as --index-url from requirements.txt), env (list
-- of "K=V" for pip) }. Returns true or nil, message, code, details (the
-- lines of pip's output that explain the failure).
function M.build(spec, tmp_dir, final_dir)
  local r, err, code = async.capture(spec.interpreter, { "-m", "venv", "--without-pip", tmp_dir },
    { env = spec.env })
  if not r then return nil, err, code end
  if r.code ~= 0 then
    return nil, "python -m venv failed", "EVENV", error_lines(r.stderr .. r.stdout)
  end
  local args = { "-m", "pip", "--python", tmp_dir .. "/bin/python", "install",
    "--disable-pip-version-check", "--no-input", "--quiet" }
  for _, opt in ipairs(spec.options or {}) do args[#args + 1] = opt end
  for _, dep in ipairs(spec.dependencies) do args[#args + 1] = dep end
  r, err, code = async.capture(spec.interpreter, args, { env = spec.env })
  if not r then return nil, err, code end
  if r.code ~= 0 then
    local details = error_lines(r.stderr .. "\n" .. r.stdout)
    if (r.stderr .. r.stdout):match("No module named pip") then
      return nil, spec.interpreter .. " has no pip", "ENOPIP", details
    end
    return nil, "pip install failed (exit " .. tostring(r.code) .. ")", "EINSTALL", details
  end
  relocate_bin(tmp_dir, final_dir)
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
