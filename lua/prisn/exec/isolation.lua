-- prisn.exec.isolation: what `--isolation 0|1|2|3` means for one workload.
--
-- Policy over the `sandbox` spawn option of prisn.core.proc (core/sandbox.c
-- carries it out between fork and exec):
--   0  none: today's behaviour — same user, own session, no namespaces.
--   1  process: + own PID namespace (a tiny init, prisn-init, is pid 1: it
--      reaps and forwards signals), own mount namespace with a fresh /proc
--      (so `ps` shows the workload only) and $PRISN_HOME hidden under an
--      empty tmpfs except the script's folder and its dependency environment
--      (read-only), no_new_privs. Workloads the server starts while running
--      as root run as an unprivileged user (PRISN_WORKLOAD_USER=uid:gid,
--      default 65534:65534).
--   3  network: level 1 + a network namespace with only loopback, up.
-- Level 2 (filesystem) is not implemented yet: asking for it is an error.
--
-- The default is 1 where it works (root with CAP_SYS_ADMIN, or usable user
-- namespaces), else 0 with a one-line note; a default level 1 that fails to
-- set up at spawn time also falls back to 0 with the note. An explicit
-- --isolation never falls back: it works or the run fails with a hint.
local luv = require("luv")
local errors = require("prisn.error")
local rootfs = require("prisn.exec.rootfs")
local fields = require("prisn.exec.workload")

local M = {}

M.DEFAULT = 1
M.IMPLEMENTED = { [0] = true, [1] = true, [2] = true, [3] = true }
M.DEFAULT_WORKLOAD_USER = { uid = 65534, gid = 65534 }
M.HOME_MASK_OPTIONS = "mode=0755,size=65536"
-- The resolv.conf workloads at levels 1 and 2 see, in $PRISN_HOME: written
-- by a server whose DNS can be named in one (prisn.server.dns), removed by
-- one whose DNS cannot; services and server jobs use it while it exists.
M.WORKLOAD_RESOLV_CONF = "workload-resolv.conf"

--- The workloads' resolv.conf of `home` (M.WORKLOAD_RESOLV_CONF), or nil
-- when the server that runs them has none.
function M.workload_resolv_conf(home)
  local path = home .. "/" .. M.WORKLOAD_RESOLV_CONF
  local st = luv.fs_stat(path)
  return st and st.type == "file" and path or nil
end

local CAP_SYS_ADMIN = 21
local noted = false -- the fallback note is said once per prisn process

local function read_first_line(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

local function has_cap_sys_admin()
  local f = io.open("/proc/self/status", "r")
  if not f then return false end
  local text = f:read("a")
  f:close()
  local hex = text:match("CapEff:%s*(%x+)")
  if not hex then return false end
  local low = tonumber(hex:sub(-8), 16) or 0
  return (low >> CAP_SYS_ADMIN) & 1 == 1
end

local probed -- { ok = bool, why = string, user_ns = bool }

--- Whether namespaces can be made here, cheaply (file reads, no fork):
-- returns { ok, why, user_ns } — user_ns true when a user namespace is needed
-- (not root). Cached per process; deps.uv / deps.read for specs.
function M.probe(deps)
  if probed and not deps then return probed end
  deps = deps or {}
  local uv = deps.uv or luv
  local read = deps.read or read_first_line
  local result
  if uv.getuid() == 0 then
    local cap = deps.cap_sys_admin
    if cap == nil then cap = has_cap_sys_admin() end
    result = cap and { ok = true, user_ns = false }
      or { ok = false, why = "root without CAP_SYS_ADMIN (a container?)" }
  else
    local max = tonumber(read("/proc/sys/user/max_user_namespaces") or "1")
    if max == 0 then
      result = { ok = false, why = "user namespaces are disabled (user.max_user_namespaces = 0)" }
    elseif read("/proc/sys/kernel/unprivileged_userns_clone") == "0" then
      result = { ok = false, why = "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)" }
    elseif read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" then
      result = { ok = false, why = "AppArmor restricts unprivileged user namespaces" }
    else
      result = { ok = true, user_ns = true }
    end
  end
  if not deps.uv then probed = result end
  return result
end

--- Checks a requested level from the command line (nil: the default).
-- Returns level, explicit (bool), or raises a usage prisn.error for a level
-- that is not 0..3 (the rule is prisn.exec.workload's) or not implemented.
function M.check(level)
  if level == nil then return nil, false end
  local n, problem = fields.normalize("isolation", level)
  if problem then errors.usage(fields.message(problem, "flag")) end
  if not M.IMPLEMENTED[n] then
    errors.raise("ENOTSUP", "isolation level " .. n .. " (filesystem) is not implemented yet",
      { hint = "use --isolation 1 (process) or 3 (process + network)", status = 2 })
  end
  return n, true
end

M.MIN_DISK = fields.MIN_DISK
M.MAX_DISK = fields.MAX_DISK

--- Checks --disk (bytes or nil) against a checked level (nil: the default).
-- --disk bounds the writable places of the level-2 root, so it needs level
-- 2 or 3 and makes the default 2. Returns the level; raises a usage error.
function M.check_disk(level, disk)
  local problem
  disk, problem = fields.normalize("disk", disk)
  if not problem then level, problem = fields.disk_level(level, disk) end
  if problem then errors.usage(fields.message(problem, "flag")) end
  return level
end

--- The level to use: `requested` (already checked) or the default. Returns
-- level, explicit. A default that cannot work here becomes 0, with the note.
function M.resolve(requested, warn)
  if requested ~= nil then return requested, true end
  local p = M.probe()
  if p.ok then return M.DEFAULT, false end
  M.note("isolation level 1 is not available here (" .. p.why .. ")", warn)
  return 0, false
end

--- Says once that the default level fell back to 0.
function M.note(why, warn)
  if noted then return end
  noted = true
  warn = warn or function(text) io.stderr:write(text, "\n") end
  warn("prisn: " .. why .. "; running at isolation level 0 (no sandbox) — 'prisn doctor' shows what is available")
end

--- Parses "uid:gid" or "uid" (gid = uid). Returns { uid, gid } or nil, message.
function M.parse_user_ids(text)
  local uid, gid = tostring(text):match("^(%d+):(%d+)$")
  if not uid then uid = tostring(text):match("^(%d+)$"); gid = uid end
  if not uid then return nil, "expected uid:gid, got '" .. tostring(text) .. "'" end
  return { uid = math.tointeger(tonumber(uid)), gid = math.tointeger(tonumber(gid)) }
end

-- The passwd file last read, parsed: { path, stamp, checked, by_name,
-- by_uid }, each entry { uid, gid, name, line }. The server resolves a
-- deployment's user on every GET of it (its run_as); reading and matching
-- the whole file each time cost a read and ~3 KB of garbage a request. The
-- stamp (inode, size, mtime) says when to read it again; it is looked at
-- again at most every M.PASSWD_RECHECK_MS of the loop's clock (a stat's
-- table is itself ~2 KB): a user added is known within a second.
local passwd_cache
M.PASSWD_RECHECK_MS = 1000

local function passwd_entries(path)
  local now = luv.now()
  if passwd_cache and passwd_cache.path == path and now - passwd_cache.checked < M.PASSWD_RECHECK_MS then
    return passwd_cache
  end
  local st = luv.fs_stat(path)
  if not st then return nil end
  local stamp = string.format("%d:%d:%d.%d", st.ino, st.size, st.mtime.sec, st.mtime.nsec)
  if passwd_cache and passwd_cache.path == path and passwd_cache.stamp == stamp then
    passwd_cache.checked = now
    return passwd_cache
  end
  local f = io.open(path, "r")
  if not f then return nil end
  local by_name, by_uid, n = {}, {}, 0
  for line in f:lines() do
    local name, uid, gid = line:match("^([^:]*):[^:]*:(%d+):(%d+):")
    if name then
      n = n + 1
      local entry = { uid = math.tointeger(tonumber(uid)), gid = math.tointeger(tonumber(gid)), name = name, line = n }
      if not by_name[name] then by_name[name] = entry end
      if entry.uid and not by_uid[entry.uid] then by_uid[entry.uid] = entry end
    end
  end
  f:close()
  passwd_cache = { path = path, stamp = stamp, checked = now, by_name = by_name, by_uid = by_uid }
  return passwd_cache
end

--- Resolves --user NAME|UID through /etc/passwd (a number need not exist
-- there: its gid is then the same number): the first line whose name or uid
-- matches. Returns { uid, gid, name } or nil, message.
function M.lookup_user(spec, passwd_path)
  local numeric = math.tointeger(tonumber(spec))
  local entries = passwd_entries(passwd_path or "/etc/passwd")
  if entries then
    local by_name, by_uid = entries.by_name[spec], numeric and entries.by_uid[numeric]
    local found = by_name
    if by_uid and (not found or by_uid.line < found.line) then found = by_uid end
    if found then return { uid = found.uid, gid = found.gid, name = found.name } end
  end
  if numeric and numeric >= 0 then return { uid = numeric, gid = numeric } end
  return nil, "no such user: " .. tostring(spec)
end

--- The identity a server-started workload runs as when the server is root:
-- PRISN_WORKLOAD_USER=uid:gid, or 65534:65534. Returns { uid, gid } or nil,
-- message for a malformed variable.
function M.workload_user(getenv)
  local value = (getenv or os.getenv)("PRISN_WORKLOAD_USER")
  if value == nil or value == "" then return M.DEFAULT_WORKLOAD_USER end
  local ids, err = M.parse_user_ids(value)
  if not ids then return nil, "PRISN_WORKLOAD_USER: " .. err end
  return ids
end

local function starts_with_dir(path, dir)
  return path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

-- Whether `user` ({ uid, gid }) may traverse directory `st` (a stat).
local function traversable(st, user)
  if user.uid == 0 then return true end
  local mode = st.mode
  if st.uid == user.uid then return mode & 64 ~= 0 end
  if st.gid == user.gid then return mode & 8 ~= 0 end
  return mode & 1 ~= 0
end

-- The outermost ancestor of `path` that `user` cannot traverse, or nil.
local function closed_ancestor(path, user, stat)
  local at = ""
  for part in path:gmatch("[^/]+") do
    local parent = at == "" and "/" or at
    local st = stat(parent)
    if st and not traversable(st, user) then return parent end
    at = at .. "/" .. part
  end
  return nil
end

-- Mounts that hide each of `masks` under an empty tmpfs and bring back the
-- `keep` paths inside them ({ path, writable }) at the same place.
local function mask_mounts(masks, keep)
  table.sort(masks, function(a, b) return #a < #b end)
  local outer = {}
  for _, m in ipairs(masks) do
    local covered = m == "/"
    for _, o in ipairs(outer) do covered = covered or starts_with_dir(m, o) end
    if not covered then outer[#outer + 1] = m end
  end
  local mounts = {}
  for _, mask in ipairs(outer) do
    mounts[#mounts + 1] = { type = "tmpfs", target = mask, options = M.HOME_MASK_OPTIONS }
    local inside, seen = {}, {}
    for _, k in ipairs(keep) do
      if starts_with_dir(k.path, mask) and k.path ~= mask and not seen[k.path] then
        seen[k.path] = true
        inside[#inside + 1] = k
      end
    end
    table.sort(inside, function(a, b) return #a.path < #b.path end)
    local made = { [mask] = true }
    for _, k in ipairs(inside) do
      local covered = false
      for p in pairs(made) do
        if p ~= mask and starts_with_dir(k.path, p) and made[p] == "bound" then covered = true end
      end
      if not covered then
        local at, parts = mask, {}
        for part in k.path:sub(#mask + 2):gmatch("[^/]+") do parts[#parts + 1] = part end
        for i = 1, #parts - 1 do
          at = at .. "/" .. parts[i]
          if not made[at] then
            made[at] = true
            mounts[#mounts + 1] = { type = "dir", target = at, mkdir = tonumber("755", 8) }
          end
        end
        made[k.path] = "bound"
        mounts[#mounts + 1] = { type = "bind", source = k.path, target = k.path, readonly = not k.writable,
          mkdir = tonumber("755", 8) }
      end
    end
  end
  return mounts
end
M._mask_mounts = mask_mounts

--- Spawn options for `level`: merge them into a proc.spawn spec. ctx:
-- home ($PRISN_HOME, hidden at level >= 1), hide (more paths hidden like
-- it: the home's runtime directory), keep (list of { path, writable }
-- that must stay reachable: the script's folder, the environment, the cwd),
-- user ({ uid, gid } to switch to, needs root), resolv_conf (a file to show
-- as /etc/resolv.conf at levels 1 and 2: the one of prisn's DNS; level 3 has
-- a loopback of its own, where that DNS is not), uv (for specs).
function M.spawn_options(level, ctx)
  ctx = ctx or {}
  local opts = {}
  if ctx.user then
    opts.uid, opts.gid, opts.groups = ctx.user.uid, ctx.user.gid, {}
  end
  if level == 0 then return opts end
  opts.no_new_privs = true
  local sandbox = { mounts = {} }
  local p = M.probe()
  if p.user_ns then
    local uv = ctx.uv or luv
    sandbox.user_map = { uid = uv.getuid(), gid = uv.getgid() }
  end
  if level >= 3 then sandbox.net = true end
  opts.sandbox = sandbox
  if level >= 2 then
    local root, etc = rootfs.prepare(ctx.home, ctx.user, ctx.uv)
    local steps, put_old = rootfs.steps({ root = root, etc = etc, home = ctx.home, keep = ctx.keep,
      workspace = ctx.workspace, disk = ctx.disk, stat = ctx.stat,
      resolv_conf = level == 2 and ctx.resolv_conf or nil })
    if not steps then errors.usage(put_old, "run it from a plainer working directory") end
    sandbox.mounts, sandbox.pivot_root, sandbox.put_old = steps, root, put_old
    return opts
  end
  local stat = ctx.stat or luv.fs_stat
  local keep, masks = {}, {}
  for _, k in ipairs(ctx.keep or {}) do
    if k.path and stat(k.path) then keep[#keep + 1] = k end
  end
  if ctx.home and ctx.home ~= "/" then masks[#masks + 1] = ctx.home end
  for _, path in ipairs(ctx.hide or {}) do masks[#masks + 1] = path end
  -- A workload switched to another user must still reach what it runs
  -- (e.g. an interpreter under /root): the closed directory on the way is
  -- masked and the path brought back, read-only.
  if ctx.user then
    for _, k in ipairs(keep) do
      local closed = closed_ancestor(k.path, ctx.user, stat)
      if closed then masks[#masks + 1] = closed end
    end
  end
  sandbox.mounts = mask_mounts(masks, keep)
  -- (over the host's file, followed if it is a link; none there: nothing to cover)
  local resolv = stat("/etc/resolv.conf")
  if ctx.resolv_conf and level == 1 and resolv and resolv.type == "file" then
    sandbox.mounts[#sandbox.mounts + 1] = { type = "bind", source = ctx.resolv_conf, target = "/etc/resolv.conf",
      readonly = true }
  end
  return opts
end

--- Whether a spawn failure (code, stage) means "this machine cannot make the
-- sandbox" — worth a fallback to level 0 when the level was the default. A
-- start that timed out (ETIMEDOUT: stuck, killed) says nothing of the kind:
-- falling back would run the script unsandboxed, as a user its files were
-- not prepared for.
function M.setup_failed(code, stage)
  if code == "ETIMEDOUT" then return false end
  if stage == "namespace" or stage == "mount" or stage == "network" or stage == "init" then return true end
  return stage == "setup" and (code == "EPERM" or code == "EINVAL" or code == "ENOSPC" or code == "ENOSYS"
    or code == "EUSERS")
end

--- A one-line description of a level, for doctor and messages.
M.NAMES = { [0] = "none", [1] = "process", [2] = "filesystem", [3] = "network" }

-- For specs: forget the cached probe and the note.
function M._reset()
  probed, noted = nil, false
end

return M
