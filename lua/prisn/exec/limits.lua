-- prisn.exec.limits: what `--memory`, `--cpu` and `--pids` mean for one
-- workload, and what its end means.
--
-- Policy over prisn.core.cgroup:
--   * With cgroup access (root, or a delegated hierarchy), each workload gets
--     its own cgroup, named after it, under "prisn/" in every hierarchy that
--     carries memory, cpu or pids. The child joins it before exec.
--   * A limit whose controller no hierarchy provides, or every limit when the
--     cgroup cannot be made (not root, no delegation), falls back to an rlimit
--     where one makes sense — --memory to RLIMIT_AS (address space, not
--     resident memory), --pids to RLIMIT_NPROC (per user) — and --cpu has none.
--     prisn says so once on stderr; a flag is never dropped in silence.
--   * Outcomes: an OOM kill counted by the cgroup makes a failed workload's
--     reason "oom_killed". CPU over quota is throttled by the kernel, never
--     killed: nothing to name. A workload at its pids limit sees fork fail
--     (EAGAIN) and ends as it chooses; the job reports that exit.
--   * Cleanup always: when the workload ends (or times out, or prisn errs),
--     everything left in the cgroup is SIGKILLed and the directories removed.
local units = require("prisn.units")
local fields = require("prisn.exec.workload")
local fs = require("prisn.fs")
local cgroup = require("prisn.core.cgroup")
local async = require("prisn.async")
local luv = require("luv")

local M = {}

M.MIN_MEMORY = fields.MIN_MEMORY -- the ranges are the workload's fields' (prisn.exec.workload)
M.MAX_MEMORY = fields.MAX_MEMORY
M.MIN_CPU = fields.MIN_CPU
M.MAX_CPU = fields.MAX_CPU
M.MAX_PIDS = fields.MAX_PIDS
M.PARENT = "prisn"         -- directory under each hierarchy's mount
M.KILL_WAIT_MS = 2000      -- how long cleanup waits for killed processes to go
M.RMDIR_WAIT_MS = 1000     -- and for the kernel to let the directories go

local warned = false -- the fallback note is said once per prisn process

-- Checks the limits in `limits` (memory, cpu, pids; every one optional),
-- naming a bad one as `channel` does (prisn.exec.workload.message).
local function check_as(limits, channel)
  if not limits then return false end
  local out, any = {}, false
  for _, name in ipairs({ "memory", "cpu", "pids" }) do
    local v, problem = fields.normalize(name, limits[name])
    if problem then return nil, fields.message(problem, channel) end
    if v ~= nil then out[name], any = v, true end
  end
  return any and out or false
end

--- Checks a limits table { memory = bytes, cpu = cores, pids = n } from
-- the command line; every field optional. Returns the normalized table, or
-- false when no limit is asked, or nil, message, hint for a value that
-- makes no sense (the message names the flag: "--cpu is a number ...").
function M.check(limits)
  return check_as(limits, "flag")
end

--- Limits from a JSON job spec, where numbers arrive as floats and a size
-- may be a string: { memory = 67108864 | "64M", cpu = 0.5, pids = 32 }.
-- Returns what M.check returns, the message naming the field ("cpu is ...").
function M.from_spec(spec)
  return check_as(spec, "api")
end

--- A one-line description: "memory 64M, cpu 0.25, pids 32".
function M.describe(limits)
  local parts = {}
  if limits.memory then parts[#parts + 1] = "memory " .. units.format_size(limits.memory) end
  if limits.cpu then parts[#parts + 1] = string.format("cpu %g", limits.cpu) end
  if limits.pids then parts[#parts + 1] = "pids " .. limits.pids end
  return table.concat(parts, ", ")
end

-- How many processes the user already runs (RLIMIT_NPROC counts them all).
local function user_processes(uv, uid)
  local n = 0
  for _, entry in ipairs(fs.list_dir("/proc")) do
    local name = entry.name
    if name:match("^%d+$") then
      local st = uv.fs_stat("/proc/" .. name)
      if st and st.uid == uid then n = n + 1 end
    end
  end
  return n
end

local Limiter = {}
Limiter.__index = Limiter

-- Decides the rlimit stand-ins for the limits in `wanted`; returns the
-- rlimits table, and says once what is and is not enforced.
local function fallback(self, wanted, why)
  local rlimits, lines = {}, {}
  if wanted.memory then
    rlimits.as = wanted.memory
    self.enforced.memory = "rlimit"
    lines[#lines + 1] = string.format("  --memory %s: RLIMIT_AS, which bounds address space, not memory in use "
      .. "(node or Java may fail early)", units.format_size(wanted.memory))
  end
  if wanted.pids then
    local uid = self.uv.getuid()
    if uid == 0 then
      lines[#lines + 1] = string.format("  --pids %d: not enforced (RLIMIT_NPROC does not bind root)", wanted.pids)
    else
      local running = self.count_processes(self.uv, uid)
      rlimits.nproc = wanted.pids + running
      self.enforced.pids = "rlimit"
      lines[#lines + 1] = string.format("  --pids %d: RLIMIT_NPROC, which counts every process of your user "
        .. "(set to %d: the %d already running plus %d)", wanted.pids, wanted.pids + running, running, wanted.pids)
    end
  end
  if wanted.cpu then
    lines[#lines + 1] = string.format("  --cpu %g: not enforced (no rlimit can throttle CPU)", wanted.cpu)
  end
  if not warned then
    warned = true
    self.warn("prisn: " .. why .. "; limits fall back to rlimits:\n" .. table.concat(lines, "\n")
      .. "\nprisn: run as root or delegate a cgroup to enforce them ('prisn doctor' shows what is available)")
  end
  return rlimits
end

local CONTROLLER = { memory = "memory", cpu = "cpu", pids = "pids" }

--- Prepares the limits of one workload, before it is spawned. `limits` as
-- returned by M.check; deps (all optional): name (the cgroup's name, one
-- path component), replace (the name is this workload's alone: a cgroup of
-- that name is a leftover of an earlier process, emptied and removed with
-- M.remove_leftover and made again, not a reason to run unlimited), parent,
-- root (a fake tree), cgroup (the core module), warn(text), sleep(ms)
-- (inside a task), uv. Returns a limiter whose spawn_options() go into
-- proc.spawn. Never raises for a system that cannot limit: it falls back
-- and says so.
function M.apply(limits, deps)
  deps = deps or {}
  local self = setmetatable({
    limits = limits,
    cgroup_lib = deps.cgroup or cgroup,
    warn = deps.warn or function(text) io.stderr:write(text, "\n") end,
    sleep = deps.sleep or async.sleep,
    uv = deps.uv or luv,
    count_processes = deps.count_processes or user_processes,
    enforced = {},
    rlimits = {},
  }, Limiter)
  local lib = self.cgroup_lib
  local layout, derr = lib.detect({ root = deps.root })
  local in_cgroup, missing = {}, {}
  for flag, controller in pairs(CONTROLLER) do
    if limits[flag] then
      if layout and layout[controller] then in_cgroup[flag] = limits[flag] else missing[flag] = limits[flag] end
    end
  end
  local why
  if next(in_cgroup) then
    local name = deps.name or string.format("run-%d-%d", self.uv.os_getpid(), self.uv.hrtime() % 1000000)
    local options = { memory = in_cgroup.memory, cpu = in_cgroup.cpu, pids = in_cgroup.pids,
      parent = deps.parent or M.PARENT, root = deps.root }
    local cg, err, code = lib.create(name, options)
    if not cg and code == "EEXIST" and deps.replace then
      M.remove_leftover(name, deps)
      cg, err = lib.create(name, options)
    end
    if cg then
      self.cgroup = cg
      for flag in pairs(in_cgroup) do self.enforced[flag] = "cgroup" end
      why = "no cgroup controller for " .. table.concat(M.sorted_keys(missing), ", ")
    else
      for flag, v in pairs(in_cgroup) do missing[flag] = v end
      why = "no cgroup access (" .. tostring(err) .. ")"
    end
  else
    why = layout and "no cgroup hierarchy carries " .. table.concat(M.sorted_keys(missing), ", ")
      or "cannot read the cgroup mounts (" .. tostring(derr) .. ")"
  end
  if next(missing) then self.rlimits = fallback(self, missing, why) end
  return self
end

--- The limiter of a workload started by an earlier process (a service
-- instance a restarted server re-adopts): its cgroup `deps.name` re-opened,
-- for stats and cleanup; nothing is made or written. Without that cgroup
-- (no limits then, or it is gone) the limiter has none.
function M.adopt(limits, deps)
  deps = deps or {}
  local self = setmetatable({
    limits = limits, cgroup_lib = deps.cgroup or cgroup,
    warn = deps.warn or function(text) io.stderr:write(text, "\n") end,
    sleep = deps.sleep or async.sleep, uv = deps.uv or luv,
    count_processes = deps.count_processes or user_processes, enforced = {}, rlimits = {},
  }, Limiter)
  self.cgroup = self.cgroup_lib.open(deps.name, { parent = deps.parent or M.PARENT, root = deps.root }) or nil
  return self
end

-- The directory of the parent (deps.parent, default "prisn") in each
-- hierarchy that carries a controller prisn uses, with `name` appended when
-- given.
local function hierarchy_dirs(lib, name, deps)
  local layout = lib.detect({ root = deps.root })
  local mounts, dirs = {}, {}
  for _, controller in ipairs({ "memory", "cpu", "pids", "cpuacct" }) do
    local mount = layout and layout[controller] and layout[controller].mount
    if mount and not mounts[mount] then
      mounts[mount] = true
      dirs[#dirs + 1] = mount .. "/" .. (deps.parent or M.PARENT) .. (name and ("/" .. name) or "")
    end
  end
  return dirs
end

--- Removes cgroup `name` that an earlier process left behind (a server
-- killed before it cleaned up after a workload, which is not re-adopted):
-- SIGKILLs what is still inside and removes its directories, even those
-- of a removal that stopped half-way. Synchronous and bounded (about a
-- second at worst, for processes that take long to die), so nothing can
-- make the same name meanwhile. deps: parent, root, cgroup, as for apply;
-- keep_pids, a set of pids: a cgroup holding one of them (a workload that
-- is re-adopted after all) is left alone. Returns true when it was removed
-- or was not there, false when it was left alone, or nil and a message.
function M.remove_leftover(name, deps)
  deps = deps or {}
  local lib = deps.cgroup or cgroup
  if deps.keep_pids then
    -- Read, not opened: a handle would kill what is inside when collected.
    for _, dir in ipairs(hierarchy_dirs(lib, name, deps)) do
      for pid in (fs.read_file(dir .. "/cgroup.procs") or ""):gmatch("%d+") do
        if deps.keep_pids[tonumber(pid)] then return false end
      end
    end
  end
  local cg, err, code = lib.open(name, { parent = deps.parent or M.PARENT, root = deps.root })
  if not cg then return code == "ENOENT" or nil, err end
  cg:kill_all({ rounds = 100 })
  local ok, derr = cg:destroy({ attempts = 100 })
  if not ok then return nil, derr end
  return true
end

--- The names of the cgroups under the parent (deps.parent, default
-- "prisn") in any hierarchy that start with `prefix`, sorted: what an
-- earlier process may have left (see remove_leftover). deps: parent, root,
-- cgroup, as for apply.
function M.list(prefix, deps)
  deps = deps or {}
  local found, names = {}, {}
  for _, dir in ipairs(hierarchy_dirs(deps.cgroup or cgroup, nil, deps)) do
    for _, entry in ipairs(fs.list_dir(dir)) do
      if entry.type == "directory" and entry.name:sub(1, #prefix) == prefix and not found[entry.name] then
        found[entry.name] = true
        names[#names + 1] = entry.name
      end
    end
  end
  table.sort(names)
  return names
end

function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- Options to merge into proc.spawn: cgroup_fd (v2, CLONE_INTO_CGROUP),
-- cgroup_procs_fds (v1; with include_v2 the v2 one too, for kernels without
-- CLONE_INTO_CGROUP) and rlimits (the fallback).
function Limiter:spawn_options(include_v2)
  local opts = {}
  if next(self.rlimits) then opts.rlimits = self.rlimits end
  local cg = self.cgroup
  if cg then
    local fds = cg:procs_fds(include_v2)
    if #fds > 0 then opts.cgroup_procs_fds = fds end
    if not include_v2 then opts.cgroup_fd = cg:dir_fd() end
  end
  return opts
end

--- Whether a spawn failure means "this kernel cannot start a child inside a
-- cgroup" (clone3 or CLONE_INTO_CGROUP missing), worth one retry with
-- spawn_options(true).
function Limiter:retry_without_clone_into(code, stage)
  return self.cgroup ~= nil and self.cgroup:dir_fd() ~= nil and stage == "setup"
    and (code == "ENOSYS" or code == "E2BIG" or code == "EINVAL")
end

--- The cgroup's counters (nil without a cgroup): live until stop(), then
-- the ones kept when the workload ended.
function Limiter:stats()
  if not self.cgroup or self.final_stats then return self.final_stats end
  return self.cgroup:stats()
end

--- Names the outcome once the workload has ended: turns a failure with an
-- OOM kill counted in the cgroup into reason "oom_killed". `result` is supervise's outcome table; `status` the
-- raw exit status. Returns result (with result.stats when there is a cgroup).
function Limiter:name_outcome(result, status)
  local st = self:stats()
  if not st then return result end
  result.stats = st
  local oom = st.oom_kills ~= nil and st.oom_kills > 0
  -- Kernels before 4.13 (v1) count no OOM kills: a SIGKILL after the memory
  -- limit was hit is the best evidence there is.
  if st.oom_kills == nil and status and status.signal == "KILL" and (st.memory_limit_hits or 0) > 0 then
    oom = true
  end
  if oom and result.state == "failed" and not result.timed_out then
    result.reason = "oom_killed"
    result.message = string.format("killed: out of memory (--memory %s%s)", units.format_size(self.limits.memory
      or 0), st.oom_kills and st.oom_kills > 1 and string.format(", %d processes killed", st.oom_kills) or "")
  end
  return result
end

--- Once the workload's main process has ended: keeps the final counters
-- and SIGKILLs everything still in the cgroup (descendants that stayed
-- behind), waiting inside a task until they are gone. Idempotent. Returns
-- true, or false when processes survived the wait.
function Limiter:stop()
  local cg = self.cgroup
  if not cg or self.stopped ~= nil then return self.stopped ~= false end
  self.final_stats = cg:stats()
  local waited = 0
  while true do
    local empty, err = cg:kill_all({ rounds = 1 })
    if empty == nil then self.kill_error = err end
    if empty ~= false or waited >= M.KILL_WAIT_MS then
      self.stopped = empty == true
      return self.stopped
    end
    self.sleep(10)
    waited = waited + 10
  end
end

--- Stops the workload (see stop) and removes its cgroup. Idempotent;
-- returns true, or nil and a message (also said on stderr) when the
-- directories could not be removed; a later call tries again.
function Limiter:cleanup()
  local cg = self.cgroup
  if not cg or self.cleaned then return true end
  local stopped = self:stop()
  local waited = 0
  local ok, err, code
  while true do
    ok, err, code = cg:destroy({ attempts = 1 })
    if ok or code ~= "EBUSY" or waited >= M.RMDIR_WAIT_MS then break end
    self.sleep(5)
    waited = waited + 5
  end
  if ok then
    self.cleaned = true
    return true
  end
  local message = "cannot remove the workload's cgroup: " .. tostring(err)
    .. (not stopped and " (processes did not exit after SIGKILL)" or "")
  self.warn("prisn: " .. message)
  return nil, message
end

-- For specs: forget that the fallback note was said.
function M._reset_warning()
  warned = false
end

return M
