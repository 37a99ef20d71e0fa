-- prisn.exec.install.wheelcache: prisn's cache of unpacked wheels, from
-- which a cold Python environment is made by linking files instead of
-- running pip (as uv does).
--
-- An entry is one wheel file, named by the wheel's name-version-tags and the
-- first 16 hex digits of its SHA-256 (from pip's --report), so two wheels of
-- the same name with different content never share an entry:
--   <root>/<stem>-<sha>/manifest.json   name, version, each file's size and
--                                       BLAKE2b, the RECORD lines, scripts
--   <root>/<stem>-<sha>/files/...       the files pip installed in
--                                       site-packages, read-only
-- Entries are filled from an environment pip has just built (the installed
-- RECORD says which files came from the wheel; the report which wheel it
-- was), by hard links (a copy across filesystems). A distribution is cached
-- only when everything it installed lives in site-packages, but for console
-- scripts prisn can write itself; any other (an sdist build, data files,
-- plain scripts) makes the whole set uncacheable and pip keeps doing it.
--
-- Hard links share one inode between the cache and every environment made
-- from it, so a write into one environment's file would change them all:
-- files are made read-only (0444), and every file is checked against its
-- size and hash before it is linked into a new environment; an entry that
-- does not match is removed and the caller runs pip.
local uv = require("luv")
local cjson = require("cjson")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")

local M = {}

local READ_ONLY = tonumber("444", 8)

-- Files pip writes per install, which prisn writes itself when linking.
local PER_INSTALL = { RECORD = true, INSTALLER = true }

--- The entry id of the wheel at `url` with SHA-256 `sha256`, or nil when
-- it is not a wheel (an sdist pip built).
function M.entry_id(url, sha256)
  local file = type(url) == "string" and url:match("([^/?#]+)%.whl$")
  if not file or type(sha256) ~= "string" or not sha256:match("^%x+$") or #sha256 < 16 then return nil end
  file = file:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  if not file:match("^[%w._+-]+$") then return nil end
  return file .. "-" .. sha256:sub(1, 16):lower()
end

--- The path field of a RECORD line (CSV: quoted when it holds a comma).
function M.record_path(line)
  if line:sub(1, 1) == '"' then
    local quoted = line:match('^"(.-)"[,]') or line:match('^"(.-)"$')
    return quoted and quoted:gsub('""', '"')
  end
  return line:match("^([^,]*)")
end

--- Console and GUI scripts of an entry_points.txt: { { name, module, attr } }.
function M.scripts(text)
  local list, section = {}, nil
  for line in (text or ""):gmatch("[^\r\n]+") do
    local s = line:match("^%s*%[(.-)%]%s*$")
    if s then
      section = s
    elseif section == "console_scripts" or section == "gui_scripts" then
      local name, module, attr = line:match("^%s*([^=%s]+)%s*=%s*([%w_.]+)%s*:%s*([%w_.]+)%s*$")
      if name then list[#list + 1] = { name = name, module = module, attr = attr } end
    end
  end
  return list
end

--- The script pip would write for entry point `s`, run by `python`.
function M.script_text(s, python)
  local first = s.attr:match("^[^.]+")
  return string.format("#!%s\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom %s import %s\n"
    .. "if __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    .. "    sys.exit(%s())\n", python, s.module, first, s.attr)
end

local function file_hash(path)
  local text = fs.read_file(path)
  return text and crypto.to_hex(crypto.hash(text)), text and #text
end

-- A hard link, or a copy where links cannot go (another filesystem).
local function link_or_copy(from, to)
  local ok, err, code = uv.fs_link(from, to)
  if ok or code ~= "EXDEV" then return ok, err, code end
  return uv.fs_copyfile(from, to)
end

local function parent_of(path)
  return path:match("^(.*)/[^/]*$")
end

-- The dist-info folder of `name` `version` in site-packages, or nil.
local function find_dist_info(site, name, version)
  local function norm(s) return (s:lower():gsub("[-_.]+", "_")) end
  for _, entry in ipairs(fs.list_dir(site)) do
    local n, v = entry.name:match("^(.+)-([^-]+)%.dist%-info$")
    if entry.type == "directory" and n and norm(n) == norm(name) and v == version then return entry.name end
  end
end

-- What one installed distribution is made of, or nil, reason when prisn
-- could not make it again by itself.
local function describe(site, item)
  local meta, info = item.metadata or {}, item.download_info or {}
  local hashes = info.archive_info and info.archive_info.hashes or {}
  local id = M.entry_id(info.url, hashes.sha256)
  if not id or type(meta.name) ~= "string" or type(meta.version) ~= "string" then
    return nil, "not a wheel with a SHA-256: " .. tostring(info.url)
  end
  local dist_info = find_dist_info(site, meta.name, meta.version)
  local record = dist_info and fs.read_file(site .. "/" .. dist_info .. "/RECORD")
  if not record then return nil, "no RECORD for " .. meta.name end
  local scripts = M.scripts(fs.read_file(site .. "/" .. dist_info .. "/entry_points.txt"))
  local script_names = {}
  for _, s in ipairs(scripts) do script_names[s.name] = true end
  local files, lines = {}, {}
  for line in record:gmatch("[^\r\n]+") do
    local path = M.record_path(line) or ""
    local script = path:match("^%.%./%.%./%.%./bin/([^/]+)$")
    local base = path:match("^[^/]+%.dist%-info/([^/]+)$")
    if script then
      if not script_names[script] then return nil, "a script that is not an entry point: " .. path end
    elseif path == "" or path:sub(1, 1) == "/" or path:find("%.%.") then
      return nil, "a file outside site-packages: " .. path
    elseif not (base and PER_INSTALL[base] and path:match("^[^/]+") == dist_info) then
      lines[#lines + 1] = line
      local st = uv.fs_lstat(site .. "/" .. path)
      if st and st.type == "file" then files[#files + 1] = path end
    end
  end
  return { id = id, name = meta.name, version = meta.version, dist_info = dist_info, files = files,
    record = lines, scripts = scripts }
end

-- Puts one described distribution into the cache (nothing when it is there).
local function store(root, site, d)
  local dir = root .. "/" .. d.id
  if M.verify(root, d.id) then return true end
  fs.rm_rf(dir)
  local tmp = string.format("%s.tmp-%d", dir, uv.os_getpid())
  fs.rm_rf(tmp)
  local manifest = { name = d.name, version = d.version, dist_info = d.dist_info, record = d.record,
    scripts = d.scripts, files = {} }
  for _, path in ipairs(d.files) do
    local to = tmp .. "/files/" .. path
    local ok, err, code = fs.mkdir_p(parent_of(to), tonumber("755", 8))
    if ok then ok, err, code = link_or_copy(site .. "/" .. path, to) end
    if not ok then fs.rm_rf(tmp); return nil, err, code end
    uv.fs_chmod(to, READ_ONLY)
    local hash, size = file_hash(to)
    manifest.files[#manifest.files + 1] = { path = path, size = size, hash = hash }
  end
  local ok, err, code = fs.write_atomic(tmp .. "/manifest.json", cjson.encode(manifest), tonumber("644", 8))
  if ok then ok, err, code = uv.fs_rename(tmp, dir) end
  if not ok then fs.rm_rf(tmp) end
  return ok, err, code
end

--- Fills the cache at `root` from site-packages `site` of an environment
-- pip has just built, as its --report (`report`, decoded) describes it.
-- Returns the wheels ({ { id, name, version } }) when all of the set is now
-- cached, or nil, reason when not (the set stays pip's).
function M.fill(root, report, site)
  if type(report) ~= "table" or type(report.install) ~= "table" or #report.install == 0 then
    return nil, "no report"
  end
  local described = {}
  for _, item in ipairs(report.install) do
    local d, why = describe(site, item)
    if not d then return nil, why end
    described[#described + 1] = d
  end
  local ok, err = fs.mkdir_p(root, tonumber("755", 8))
  if not ok then return nil, err end
  local wheels = {}
  for _, d in ipairs(described) do
    local stored, serr = store(root, site, d)
    if not stored then return nil, serr end
    wheels[#wheels + 1] = { id = d.id, name = d.name, version = d.version }
  end
  return wheels
end

--- The manifest of entry `id` when every file is there, with its size and
-- hash; nil, reason otherwise.
function M.verify(root, id)
  local dir = root .. "/" .. id
  local text = fs.read_file(dir .. "/manifest.json")
  local ok, manifest = pcall(cjson.decode, text or "")
  if not ok or type(manifest) ~= "table" or type(manifest.files) ~= "table" then return nil, "no manifest" end
  for _, f in ipairs(manifest.files) do
    local path = dir .. "/files/" .. f.path
    local st = uv.fs_lstat(path)
    if not st or st.type ~= "file" or st.size ~= f.size then return nil, "changed: " .. f.path end
    if file_hash(path) ~= f.hash then return nil, "changed: " .. f.path end
  end
  manifest.dir = dir
  return manifest
end

-- RECORD of a linked distribution: pip's lines, the scripts and INSTALLER.
local function record_text(m)
  local lines = { table.unpack(m.record) }
  for _, s in ipairs(m.scripts) do lines[#lines + 1] = "../../../bin/" .. s.name .. ",," end
  lines[#lines + 1] = m.dist_info .. "/INSTALLER,,"
  lines[#lines + 1] = m.dist_info .. "/RECORD,,"
  return table.concat(lines, "\n") .. "\n"
end

--- Links the verified entries `manifests` into the environment: files into
-- `site`, console scripts into `bin` run by `python`, INSTALLER ("prisn")
-- and RECORD written. Returns true or nil, message, code.
function M.link(manifests, site, bin, python)
  for _, m in ipairs(manifests) do
    for _, f in ipairs(m.files) do
      local to = site .. "/" .. f.path
      local ok, err, code = fs.mkdir_p(parent_of(to), tonumber("755", 8))
      if ok then ok, err, code = link_or_copy(m.dir .. "/files/" .. f.path, to) end
      if not ok then return nil, err, code end
    end
    local info = site .. "/" .. m.dist_info
    local ok, err, code = fs.mkdir_p(info, tonumber("755", 8))
    if ok then ok, err, code = fs.write_atomic(info .. "/INSTALLER", "prisn\n", tonumber("644", 8)) end
    if ok then ok, err, code = fs.write_atomic(info .. "/RECORD", record_text(m), tonumber("644", 8)) end
    for _, s in ipairs(m.scripts) do
      if ok then ok, err, code = fs.write_atomic(bin .. "/" .. s.name, M.script_text(s, python), tonumber("755", 8)) end
    end
    if not ok then return nil, err, code end
  end
  return true
end

return M
