-- prisn.exec.job_lock: the lock a server job's runner holds for its whole
-- life. A restarted server tells by it that the runner still runs (and
-- leaves its job alone), and a second runner for the same job cannot start.
--
-- The lock is a claim (prisn.core.sys.claim: an abstract unix socket, gone
-- with the process, no file) under a name only this home's processes can
-- work out: a hash keyed with the home's secret token key, so another user
-- cannot hold a job's name first. Where claims do not work, a locked file,
-- run/jobs/<id>.lock, with the runner's pid in it.
local uv = require("luv")
local sys = require("prisn.core.sys")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")
local tokens = require("prisn.store.tokens")

local M = {}

local function lock_path(home, id)
  return home .. "/run/jobs/" .. id .. ".lock"
end

-- The claim key of each home, loaded once: the job host loads it before it
-- forks, so its runners do not each read it.
local claim_keys = {}

--- The claim name of job `id`'s runner.
function M.claim_name(home, id)
  local key = claim_keys[home]
  if not key then
    key = tokens.load_key(home)
    claim_keys[home] = key
  end
  return "prisn-job/" .. crypto.to_hex(crypto.hash("job-runner\0" .. home .. "\0" .. id, key)):sub(1, 40)
end

--- Takes the lock that says job `id`'s runner runs; returns it, or nil and
-- true when another runner holds it (nil alone when it cannot be taken at
-- all: the runner then has no lock).
function M.take(home, id)
  local claim = sys.claim(M.claim_name(home, id))
  if claim then return { claim = claim } end
  if claim == false then return nil, true end
  fs.mkdir_p(home .. "/run/jobs", tonumber("700", 8))
  local fd = sys.lock(lock_path(home, id))
  if fd == false then return nil, true end
  if not fd then return nil end
  uv.fs_ftruncate(fd, 0)
  uv.fs_write(fd, tostring(uv.os_getpid()) .. "\n", 0)
  return { file = fd }
end

--- Lets go of a lock M.take returned (nil: nothing to do).
function M.release(home, id, lock)
  if not lock then return end
  if lock.claim then return uv.fs_close(lock.claim) end
  uv.fs_unlink(lock_path(home, id))
  sys.unlock(lock.file)
end

--- Whether the runner of job `id` still runs (it holds its lock), and its
-- pid (nil when it cannot be told).
function M.runner_alive(home, id)
  local pid = sys.claimant(M.claim_name(home, id))
  if pid then return true, pid ~= 0 and pid or nil end
  local path = lock_path(home, id)
  if not uv.fs_stat(path) then return false end
  local fd = sys.lock(path)
  if fd then
    -- Nobody held it: a runner that died without cleaning up.
    uv.fs_unlink(path)
    sys.unlock(fd)
    return false
  end
  if fd ~= false then return false end
  return true, math.tointeger(tonumber((fs.read_file(path) or ""):match("%d+") or ""))
end

return M
