-- prisn.exec.install.venv: Python virtual environments without pip, and
-- moving one to another path.
--
-- `python -m venv --without-pip` costs 50-70 ms on this machine (the
-- interpreter's start and the venv module writing a dozen files), the largest
-- part of a cold environment made from the wheel cache. What it writes
-- depends only on the interpreter and the target path, so prisn makes it once
-- per interpreter, as a template under the wheel cache, and copies that
-- (folders, files, symlinks as they are) with the template's path rewritten:
-- the same tree venv would have written, in about a millisecond. The
-- template is made by venv itself, so its layout follows the interpreter's
-- version (activate scripts, lib64, pyvenv.cfg fields).
local uv = require("luv")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")

local M = {}

-- Replaces every `from` in `text` with `to`, plainly.
local function replace(text, from, to)
  return (text:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%"))))
end

--- Rewrites `from` to `to` in the venv at `dir`: venv writes its own path
-- into pyvenv.cfg and the bin/ scripts (activate, entry points), and its
-- folder's name into the activate scripts' prompt, "(name) ".
function M.relocate(dir, from, to)
  local prompt_from, prompt_to = "(" .. from:match("[^/]*$") .. ") ", "(" .. to:match("[^/]*$") .. ") "
  -- Regular files in real folders only: a restricted build (another user)
  -- may have left symlinks here, and this runs as prisn's user.
  local files = { dir .. "/pyvenv.cfg" }
  local bin = uv.fs_lstat(dir .. "/bin")
  for _, entry in ipairs(bin and bin.type == "directory" and fs.list_dir(dir .. "/bin") or {}) do
    if entry.type == "file" then files[#files + 1] = dir .. "/bin/" .. entry.name end
  end
  for _, path in ipairs(files) do
    local st = uv.fs_lstat(path)
    local text = st and st.type == "file" and fs.read_file(path)
    if text and text:find(from, 1, true) then
      local fixed = replace(replace(text, from, to), prompt_from, prompt_to)
      local f = io.open(path, "wb")
      if f then f:write(fixed); f:close() end
    end
  end
end

--- Where the template venv of `interpreter` ({ executable, version }) lives
-- under `root`.
function M.template_path(root, interpreter)
  local id = crypto.to_hex(crypto.hash((interpreter.executable or "") .. "\0" .. (interpreter.version or "")))
  return root .. "/venvs/" .. id:sub(1, 16)
end

-- Copies the tree `from` into `to` (which may exist): folders with their
-- modes, files, symlinks as they are.
local function copy_tree(from, to)
  local st = uv.fs_lstat(from)
  if not st then return nil, "missing: " .. from end
  if st.type == "directory" then
    local ok, err, code = uv.fs_mkdir(to, st.mode & tonumber("7777", 8))
    if not ok and code ~= "EEXIST" then return nil, err, code end
    for _, entry in ipairs(fs.list_dir(from)) do
      local copied, cerr, ccode = copy_tree(from .. "/" .. entry.name, to .. "/" .. entry.name)
      if not copied then return nil, cerr, ccode end
    end
    return true
  elseif st.type == "link" then
    local target, err, code = uv.fs_readlink(from)
    if not target then return nil, err, code end
    return uv.fs_symlink(target, to)
  end
  return uv.fs_copyfile(from, to)
end

-- A template is usable when venv finished it: pyvenv.cfg and bin/python.
local function usable(dir)
  return uv.fs_stat(dir .. "/pyvenv.cfg") ~= nil and uv.fs_lstat(dir .. "/bin/python") ~= nil
end

--- Makes the interpreter's template under `root` when missing, by running
-- `python -m venv --without-pip` through `capture` (prisn.async.capture's
-- contract) with `env`. Returns its path or nil, message, code.
function M.template(root, interpreter, capture, env)
  local dir = M.template_path(root, interpreter)
  if usable(dir) then return dir end
  local ok, err, code = fs.mkdir_p(root .. "/venvs", tonumber("755", 8))
  if not ok then return nil, err, code end
  local tmp = string.format("%s.tmp-%d", dir, uv.os_getpid())
  fs.rm_rf(tmp)
  local r
  r, err, code = capture(interpreter.executable, { "-m", "venv", "--without-pip", tmp }, { env = env })
  if not r or r.code ~= 0 then
    fs.rm_rf(tmp)
    return nil, err or "python -m venv failed", code or "EVENV"
  end
  M.relocate(tmp, tmp, dir)
  if not usable(dir) then fs.rm_rf(dir) end -- an unusable leftover
  if not uv.fs_rename(tmp, dir) then fs.rm_rf(tmp) end -- another prisn made it meanwhile
  if not usable(dir) then return nil, "no usable venv template at " .. dir, "EVENV" end
  return dir
end

--- Makes the venv at `dir` (to be renamed to `final_dir`) from the
-- interpreter's template. Returns true or nil, message, code.
function M.from_template(template, dir, final_dir)
  local ok, err, code = copy_tree(template, dir)
  if not ok then return nil, err, code end
  M.relocate(dir, template, final_dir)
  return true
end

return M
