-- prisn.doctor: checks of everything prisn depends on, each ok / warn / fail
-- with a one-line fix.
--
-- "fail" is reserved for what breaks prisn itself (an unusable PRISN_HOME, a
-- corrupt state database). Missing pieces that only narrow what prisn can do
-- (no cgroup controllers, no node) are "warn": prisn degrades and says so.
--
-- Every probe of the system goes through `probes`, so specs can run each check
-- against a fake machine.
local units = require("prisn.units")

local M = {}

local OK, WARN, FAIL = "ok", "warn", "fail"

local function result(name, status, detail, fix)
  return { name = name, status = status, detail = detail, fix = fix }
end

-- "6.1.0-18-amd64" -> 6, 1
local function kernel_version(release)
  local major, minor = release:match("^(%d+)%.(%d+)")
  return tonumber(major), tonumber(minor)
end

function M.check_kernel(probes)
  local uname = probes.uname()
  if uname.sysname ~= "Linux" then
    return result("kernel", WARN, uname.sysname .. " " .. uname.release
      .. ": limits and isolation are implemented for Linux only",
      "run prisn on Linux 5.7 or newer for limits and isolation")
  end
  local major, minor = kernel_version(uname.release)
  if not major then
    return result("kernel", WARN, "cannot read the kernel version from '" .. uname.release .. "'", nil)
  end
  local at_least = function(a, b) return major > a or (major == a and minor >= b) end
  if at_least(5, 7) then
    return result("kernel", OK, "Linux " .. uname.release, nil)
  end
  if at_least(4, 5) then
    return result("kernel", WARN, "Linux " .. uname.release
      .. ": no pidfd or CLONE_INTO_CGROUP; prisn falls back to SIGCHLD and placement after fork",
      "upgrade to Linux 5.7 or newer")
  end
  return result("kernel", FAIL, "Linux " .. uname.release .. " is too old for prisn",
    "upgrade to Linux 4.5 or newer (5.7+ recommended)")
end

local CONTROLLERS = { "memory", "cpu", "pids" }

-- Reads cgroup mounts from /proc/self/mountinfo: { v2 = path|nil,
-- v1 = { controller = path } }.
function M.cgroup_mounts(mountinfo)
  local mounts = { v1 = {} }
  for line in (mountinfo or ""):gmatch("[^\n]+") do
    -- fields: id parent major:minor root mountpoint options ... - fstype source superopts
    local mountpoint = line:match("^%S+ %S+ %S+ %S+ (%S+)")
    local fstype, superopts = line:match(" %- (%S+) %S+ (%S+)$")
    if fstype == "cgroup2" and not mounts.v2 then
      mounts.v2 = mountpoint
    elseif fstype == "cgroup" then
      for opt in (superopts or ""):gmatch("[^,]+") do
        for _, c in ipairs(CONTROLLERS) do
          if opt == c and not mounts.v1[c] then mounts.v1[c] = mountpoint end
        end
      end
    end
  end
  return mounts
end

-- Which controllers v2 offers and whether the hierarchy is writable.
local function v2_state(probes, path)
  local available = {}
  local text = probes.read_file(path .. "/cgroup.controllers") or ""
  for word in text:gmatch("%S+") do available[word] = true end
  local missing = {}
  for _, c in ipairs(CONTROLLERS) do
    if not available[c] then missing[#missing + 1] = c end
  end
  return missing, probes.writable(path), available
end

-- What `prisn run` does for a limit whose controller it cannot use
-- (prisn.exec.limits).
local FALLBACK = {
  memory = "--memory falls back to RLIMIT_AS (address space, not memory in use)",
  cpu = "--cpu is not enforced",
  pids = "--pids falls back to RLIMIT_NPROC (counts all of the user's processes)",
}

local function v1_state(probes, mounts)
  local missing, readonly = {}, {}
  for _, c in ipairs(CONTROLLERS) do
    local path = mounts.v1[c]
    if not path then
      missing[#missing + 1] = c
    elseif not probes.writable(path) then
      readonly[#readonly + 1] = c
    end
  end
  return missing, readonly
end

--- Two results: cgroup_v2 and cgroup_v1. Whichever provides memory, cpu and
-- pids writably is the one prisn uses; the other is reported, not blamed.
-- A controller neither provides makes both warn, naming what `prisn run`
-- does instead for its flag.
function M.check_cgroups(probes)
  local mounts = M.cgroup_mounts(probes.read_file("/proc/self/mountinfo"))
  local v2_usable = false
  local v2_detail, v1_detail
  local usable = {} -- controller -> true when some hierarchy carries it writably
  if mounts.v2 then
    local missing, writable, available = v2_state(probes, mounts.v2)
    v2_usable = #missing == 0 and writable
    for _, c in ipairs(CONTROLLERS) do usable[c] = available[c] and writable or nil end
    if v2_usable then
      v2_detail = "mounted at " .. mounts.v2 .. ", memory, cpu and pids writable"
    elseif #missing > 0 then
      v2_detail = "mounted at " .. mounts.v2 .. ", controllers not enabled: " .. table.concat(missing, ", ")
    else
      v2_detail = "mounted at " .. mounts.v2 .. " but not writable by this user"
    end
  else
    v2_detail = "not mounted"
  end
  local missing1, readonly1 = v1_state(probes, mounts)
  local v1_usable = #missing1 == 0 and #readonly1 == 0
  for _, c in ipairs(CONTROLLERS) do
    if mounts.v1[c] and probes.writable(mounts.v1[c]) then usable[c] = true end
  end
  if v1_usable then
    v1_detail = "memory, cpu and pids mounted and writable"
  elseif #missing1 == #CONTROLLERS then
    v1_detail = "not mounted"
  else
    local parts = {}
    if #missing1 > 0 then parts[#parts + 1] = "not mounted: " .. table.concat(missing1, ", ") end
    if #readonly1 > 0 then parts[#parts + 1] = "not writable: " .. table.concat(readonly1, ", ") end
    v1_detail = table.concat(parts, "; ")
  end
  local fix = "run prisn as root, or delegate a cgroup v2 subtree with memory, cpu and pids to this user"
  local v2 = result("cgroup_v2", OK, v2_detail, nil)
  local v1 = result("cgroup_v1", OK, v1_detail, nil)
  if v2_usable then
    v1.detail = v1.detail .. " (not used: v2 is)"
  elseif v1_usable then
    v2.detail = v2.detail .. " (not used: v1 is)"
  end
  local fallbacks = {}
  for _, c in ipairs(CONTROLLERS) do
    if not usable[c] then fallbacks[#fallbacks + 1] = FALLBACK[c] end
  end
  if #fallbacks > 0 then
    local note = "; prisn run: " .. table.concat(fallbacks, ", ")
    v2.status, v2.detail, v2.fix = WARN, v2.detail .. note, fix
    v1.status, v1.detail, v1.fix = WARN, v1.detail .. note, fix
  end
  return v2, v1
end

local NAMESPACE_USE = {
  user = "unprivileged isolation",
  pid = "isolation level 1 and above",
  mount = "isolation level 2 and above",
  net = "isolation level 3",
}

function M.check_namespace(probes, kind)
  local ok, err = probes.probe_namespace(kind)
  local name = "namespace_" .. kind
  if ok then return result(name, OK, kind .. " namespaces can be created", nil) end
  return result(name, WARN, string.format("%s (needed for %s)", err, NAMESPACE_USE[kind]),
    kind == "user" and "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root"
    or "run prisn as root, or in a user namespace that allows it")
end

-- What each isolation level needs beyond the one below it.
local LEVEL_NEEDS = { [1] = { "pid", "mount" }, [2] = {}, [3] = { "net" } }

--- One check per isolation level (isolation_1..3), from the namespace checks
-- already made (`namespaces`: kind -> result): ok when prisn run
-- --isolation N works here, warn with the fix when it does not. Level 2 also
-- says whether --disk can layer the working directory (overlayfs).
function M.check_isolation(probes, namespaces)
  local names = { [1] = "process", [2] = "filesystem", [3] = "network" }
  local checks, missing = {}, {}
  if probes.uid() ~= 0 and namespaces.user.status ~= OK then missing[#missing + 1] = "user" end
  for level = 1, 3 do
    for _, kind in ipairs(LEVEL_NEEDS[level]) do
      if namespaces[kind].status ~= OK then missing[#missing + 1] = kind end
    end
    local name = "isolation_" .. level
    if #missing > 0 then
      checks[level] = result(name, WARN, string.format("level %d (%s) is not available: no %s namespace", level,
        names[level], table.concat(missing, "/")), (level == 1 and "" or "lower levels too; ")
        .. "run prisn as root, or enable unprivileged user namespaces; --isolation 0 runs without a sandbox")
    else
      checks[level] = result(name, OK, string.format("level %d (%s) works here", level, names[level]), nil)
    end
  end
  if checks[2].status == OK then
    local fs = probes.read_file("/proc/filesystems") or ""
    if fs:find("%soverlay\n") then
      checks[2].detail = checks[2].detail .. "; --disk can bound the working directory (overlayfs)"
    else
      checks[2].status, checks[2].detail, checks[2].fix = WARN, checks[2].detail
        .. "; but without overlayfs, --disk cannot bound 'prisn run' in a working directory",
        "load the overlay module (modprobe overlay); server jobs with --disk are not affected"
    end
  end
  return checks
end

local INTERPRETERS = {
  { name = "python3", args = { "--version" }, package = "python3" },
  { name = "node", args = { "--version" }, package = "nodejs" },
  { name = "bash", args = { "--version" }, package = "bash" },
}

function M.check_interpreter(probes, spec)
  local path = probes.which(spec.name)
  if not path then
    return result(spec.name, WARN, "not found on PATH (needed only for " .. spec.name .. " scripts)",
      "install it (Debian: apt-get install " .. spec.package .. ")")
  end
  local r = probes.capture(path, spec.args)
  if not r or r.code ~= 0 then
    return result(spec.name, WARN, path .. " is on PATH but '" .. spec.name .. " --version' failed",
      "check the installation of " .. spec.name)
  end
  local text = (r.stdout ~= "" and r.stdout or r.stderr)
  local version = text:match("(%d+%.%d+[%.%d]*)") or text:match("^[^\n]*")
  return result(spec.name, OK, version .. " (" .. path .. ")", nil)
end

function M.check_home(probes, home)
  local st = probes.stat(home)
  if not st then
    return result("prisn_home", OK, home .. " does not exist yet; it is created 0700 on first use", nil)
  end
  if st.type ~= "directory" then
    return result("prisn_home", FAIL, home .. " is not a directory", "remove it or set PRISN_HOME elsewhere")
  end
  local mode = st.mode & tonumber("777", 8)
  if st.uid ~= probes.uid() then
    return result("prisn_home", FAIL,
      string.format("%s belongs to uid %d, not to you (uid %d)", home, st.uid, probes.uid()),
      "set PRISN_HOME to a directory of your own")
  end
  if mode ~= tonumber("700", 8) then
    return result("prisn_home", FAIL, string.format("%s has mode %03o; it holds tokens and keys", home, mode),
      "chmod 700 " .. home)
  end
  return result("prisn_home", OK, home .. " (mode 700)", nil)
end

-- The nearest existing directory at or above `path`.
local function existing_ancestor(probes, path)
  while path and path ~= "" do
    if probes.stat(path) then return path end
    path = path:match("^(.*)/[^/]*$")
  end
  return "/"
end

function M.check_disk(probes, home)
  local dir = existing_ancestor(probes, home)
  local fs = probes.statfs(dir)
  if not fs then return result("disk_space", WARN, "cannot read free space of " .. dir, nil) end
  local free = fs.bavail * fs.bsize
  local detail = units.format_size(free) .. " free on " .. dir
  if free < 100 * 1024 * 1024 then
    return result("disk_space", FAIL, detail, "free space for environments, logs and the state database")
  elseif free < 1024 * 1024 * 1024 then
    return result("disk_space", WARN, detail, "free some space: dependency environments need room")
  end
  return result("disk_space", OK, detail, nil)
end

function M.check_state_db(probes, home)
  local path = home .. "/state.db"
  if not probes.stat(path) then
    return result("state_db", OK, path .. " not created yet", nil)
  end
  local ok, err = probes.check_db(path)
  if not ok then
    return result("state_db", FAIL, path .. ": " .. err,
      "stop the server, move the file aside and restore a backup (the server recreates an empty one)")
  end
  return result("state_db", OK, path .. " opens and passes quick_check (schema version " .. tostring(ok) .. ")", nil)
end

function M.check_server(probes, home)
  local socket = home .. "/prisn.sock"
  if not probes.stat(socket) then
    return result("server", OK, "not running (needed only for detached jobs, services and cron)", nil)
  end
  local ok, err = probes.connect(socket)
  if ok then return result("server", OK, "running, answering on " .. socket, nil) end
  return result("server", WARN, socket .. " exists but " .. tostring(err),
    "a server that died left its socket; starting the server again replaces it")
end

--- Runs every check; returns the list of results in a stable order.
function M.run(probes, home)
  local checks = { M.check_kernel(probes) }
  local v2, v1 = M.check_cgroups(probes)
  checks[#checks + 1] = v2
  checks[#checks + 1] = v1
  local namespaces = {}
  for _, kind in ipairs({ "user", "pid", "mount", "net" }) do
    namespaces[kind] = M.check_namespace(probes, kind)
    checks[#checks + 1] = namespaces[kind]
  end
  for _, c in ipairs(M.check_isolation(probes, namespaces)) do checks[#checks + 1] = c end
  for _, spec in ipairs(INTERPRETERS) do
    checks[#checks + 1] = M.check_interpreter(probes, spec)
  end
  checks[#checks + 1] = M.check_home(probes, home)
  checks[#checks + 1] = M.check_disk(probes, home)
  checks[#checks + 1] = M.check_state_db(probes, home)
  checks[#checks + 1] = M.check_server(probes, home)
  return checks
end

--- Counts of each status: { ok = n, warn = n, fail = n }.
function M.summary(checks)
  local counts = { ok = 0, warn = 0, fail = 0 }
  for _, c in ipairs(checks) do counts[c.status] = counts[c.status] + 1 end
  return counts
end

return M
