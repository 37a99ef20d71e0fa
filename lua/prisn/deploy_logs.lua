-- prisn.deploy_logs: the logs of a deployment's instances, kept, bounded,
-- read back merged and followed.
--
-- Each instance of a deployment (api-1, api-2, ...) has its own log in the
-- format of prisn.logs, written by the supervisor:
--
--   $PRISN_HOME/logs/<ns>/deploy/<deployment>/<number>.log   (+ .log.1)
--
-- An instance keeps its number across restarts, so a restarted process
-- appends to the same file; a rolling update or a scale-up makes new
-- numbers, so new files. Numbers are never reused.
--
-- Bound. A deployment's logs together stay under a total (50 MiB, or
-- PRISN_DEPLOY_LOG_MAX_BYTES): each live instance gets total / (replicas + 1)
-- as its writer's max_bytes, which leaves one share for the logs of
-- instances that are gone; prune() deletes those, least recently written
-- first, while the total is exceeded. remove() deletes everything (for
-- `prisn delete deploy`).
--
-- Reading. A follower polls the directory: every poll returns the new
-- output of every instance as lines, each tagged with its instance
-- ("api-3"), merged by the time the line's first byte was read (stable:
-- equal times keep instance order, then file order). It notices files that
-- appear (new instances) and rotations (prisn.logs.tailer). A line still
-- being written is held back until its newline arrives or it has waited
-- FLUSH_PARTIAL_MS, then sent as it is. read() is one final poll, filtered
-- by since and tail. Polling, not inotify: a poll is one readdir and one
-- stat per file, and the API polls every 100 ms.
--
-- This module reads and deletes; it does not write logs (prisn.logs does)
-- and knows nothing of the state database. M.file_lines reads any one log
-- file this way (a job's too), for merges of several kinds of source.
local uv = require("luv")
local logs = require("prisn.logs")
local fs = require("prisn.fs")
local units = require("prisn.units")
local clock = require("prisn.clock")
local events = require("prisn.store.events")

local M = {}

M.DEFAULT_TOTAL_BYTES = 50 * 1024 * 1024
M.MIN_INSTANCE_BYTES = 64 * 1024
M.TOTAL_ENV = "PRISN_DEPLOY_LOG_MAX_BYTES"
-- How long a line without its newline is held back by a follower.
M.FLUSH_PARTIAL_MS = 500

local now_ms = clock.now_ms

local function check_name(what, name)
  if type(name) ~= "string" or not name:match("^[%w][%w._-]*$") then
    error(string.format("deploy_logs: bad %s %q", what, tostring(name)), 3)
  end
end

local function check_number(number)
  if math.type(number) ~= "integer" or number < 1 then
    error("deploy_logs: an instance number must be a positive integer, got " .. tostring(number), 3)
  end
end

--- The directory holding the logs of `deployment` in namespace `ns`.
function M.dir(home, ns, deployment)
  check_name("namespace", ns)
  check_name("deployment", deployment)
  return string.format("%s/logs/%s/deploy/%s", home, ns, deployment)
end

--- The log file of instance `number` of `deployment` (the writer rotates it
-- into <path>.1).
function M.instance_path(home, ns, deployment, number)
  check_number(number)
  return string.format("%s/%d.log", M.dir(home, ns, deployment), number)
end

--- The name of an instance: "api-3".
function M.instance_name(deployment, number)
  return deployment .. "-" .. number
end

--- The bound on a deployment's logs in bytes: PRISN_DEPLOY_LOG_MAX_BYTES (a
-- size like 50M) or 50 MiB. `text` replaces the environment (for specs).
-- Returns the bytes and, when the setting was unusable, a message saying
-- the default is used instead.
function M.total_bytes(text)
  if text == nil then text = os.getenv(M.TOTAL_ENV) end
  if text == nil or text == "" then return M.DEFAULT_TOTAL_BYTES end
  local bytes = units.parse_size(text)
  if not bytes or bytes < 2 * M.MIN_INSTANCE_BYTES then
    return M.DEFAULT_TOTAL_BYTES, string.format("%s=%s is not a size of at least %s; using %s", M.TOTAL_ENV, text,
      units.format_size(2 * M.MIN_INSTANCE_BYTES), units.format_size(M.DEFAULT_TOTAL_BYTES))
  end
  return bytes
end

--- The max_bytes of each instance's writer for a deployment of `replicas`:
-- the total (default M.total_bytes()) split over replicas + 1 shares, at
-- least MIN_INSTANCE_BYTES.
function M.max_bytes_per_instance(replicas, total)
  total = total or M.total_bytes()
  local shares = math.max(math.tointeger(replicas) or 1, 1) + 1
  return math.max(total // shares, M.MIN_INSTANCE_BYTES)
end

local function file_size(path)
  local st = uv.fs_stat(path)
  return st and st.size or 0, st and (st.mtime.sec * 1000000000 + st.mtime.nsec) or 0
end

--- The instances with a log: a list of { number, path, bytes (both
-- files), mtime_ns (of the current file) }, by number.
function M.instances(home, ns, deployment)
  local dir = M.dir(home, ns, deployment)
  local out = {}
  for _, entry in ipairs(fs.list_dir(dir)) do
    local number = entry.name:match("^(%d+)%.log$")
    number = number and math.tointeger(tonumber(number))
    if number and number > 0 then
      local path = dir .. "/" .. entry.name
      local bytes, mtime = file_size(path)
      out[#out + 1] = { number = number, path = path, bytes = bytes + file_size(path .. ".1"), mtime_ns = mtime }
    end
  end
  table.sort(out, function(a, b) return a.number < b.number end)
  return out
end

--- Deletes the logs of instances not in `keep` (a set {[number] = true} or
-- a list of numbers), least recently written first, while the deployment's
-- logs exceed `total` (default M.total_bytes()). Returns the numbers
-- removed (a list) and the bytes left.
function M.prune(home, ns, deployment, keep, total)
  total = total or M.total_bytes()
  local kept = {}
  for k, v in pairs(keep or {}) do
    if v == true then kept[k] = true elseif math.type(v) == "integer" then kept[v] = true end
  end
  local sum, candidates = 0, {}
  for _, inst in ipairs(M.instances(home, ns, deployment)) do
    sum = sum + inst.bytes
    if not kept[inst.number] then candidates[#candidates + 1] = inst end
  end
  table.sort(candidates, function(a, b)
    if a.mtime_ns ~= b.mtime_ns then return a.mtime_ns < b.mtime_ns end
    return a.number < b.number
  end)
  local removed = {}
  for _, inst in ipairs(candidates) do
    if sum <= total then break end
    uv.fs_unlink(inst.path .. ".1")
    uv.fs_unlink(inst.path)
    sum = sum - inst.bytes
    removed[#removed + 1] = inst.number
  end
  return removed, sum
end

--- Deletes every log of a deployment. Returns true, or nil, message, code.
function M.remove(home, ns, deployment)
  return fs.rm_rf(M.dir(home, ns, deployment))
end

-- Following -------------------------------------------------------------------

-- Starts following the log at `path`: a tailer of the current file and the
-- records of the .1 file kept from before a rotation. The tailer is given
-- the inode seen before .1 was read, so a rotation in between shows as one
-- on its first poll and nothing is missed.
local function open_log(path)
  local st = uv.fs_stat(path)
  local tail = logs.tailer(path)
  local records = logs.tailer(path .. ".1").poll()
  tail.ino = st and st.ino
  for _, r in ipairs(tail.poll()) do records[#records + 1] = r end
  return tail, records
end

-- The lines of one log file (an instance's or a job's), as a follower
-- reads them: complete lines as they come, a line still being written held
-- back (see FLUSH_PARTIAL_MS).
local FileLines = {}
FileLines.__index = FileLines

--- A reader of the lines of the log at `path` (prisn.logs format, with its
-- .1), each tagged with `source` ("api-3", "job/01kax..."). opts: clock,
-- flush_ms, fields (a table copied into every line, like { number = 3 }),
-- counter (a table { n }, shared by the readers of one merge: each line
-- gets the next n as its `seq`, which keeps a sort by time stable).
function M.file_lines(path, source, opts)
  opts = opts or {}
  return setmetatable({ path = path, source = source, partial = {}, fields = opts.fields,
    clock = opts.clock or now_ms, flush_ms = opts.flush_ms or M.FLUSH_PARTIAL_MS,
    counter = opts.counter or { n = 0 } }, FileLines)
end

function FileLines:emit(out, stream, p)
  self.counter.n = self.counter.n + 1
  local line = { source = self.source, stream = stream, time_ms = p.time_ms, data = table.concat(p.parts),
    seq = self.counter.n }
  for k, v in pairs(self.fields or {}) do line[k] = v end
  out[#out + 1] = line
end

-- Cuts `records` into lines; complete ones go to `out`.
function FileLines:take(records, out)
  for _, r in ipairs(records) do
    local pos = 1
    while pos <= #r.data do
      local nl = r.data:find("\n", pos, true)
      local p = self.partial[r.stream]
      if not p then
        p = { time_ms = r.time_ms, parts = {}, seen = self.clock() }
        self.partial[r.stream] = p
      end
      p.parts[#p.parts + 1] = r.data:sub(pos, nl or #r.data)
      if nl then
        self:emit(out, r.stream, p)
        self.partial[r.stream] = nil
      end
      pos = (nl or #r.data) + 1
    end
  end
end

--- Appends to `out` the lines written since the last call (the first:
-- everything kept); with `final`, the unfinished lines too, else those
-- that waited flush_ms. Returns `out` (a new list when nil).
function FileLines:poll(final, out)
  out = out or {}
  local records
  if self.tail then
    records = self.tail.poll()
  else
    self.tail, records = open_log(self.path)
  end
  self:take(records, out)
  local now = self.clock()
  for _, stream in ipairs({ "stdout", "stderr" }) do
    local p = self.partial[stream]
    if p and (final or now - p.seen >= self.flush_ms) then
      self:emit(out, stream, p)
      self.partial[stream] = nil
    end
  end
  return out
end

--- Sorts `lines` (of several readers sharing a counter) by time, stable.
function M.merge(lines)
  table.sort(lines, function(a, b)
    if a.time_ms ~= b.time_ms then return a.time_ms < b.time_ms end
    return a.seq < b.seq
  end)
  return lines
end

local Follower = {}
Follower.__index = Follower

-- The instance numbers that have a log file now, ascending.
function Follower:numbers()
  if self.instance then
    if uv.fs_stat(M.instance_path(self.home, self.ns, self.deployment, self.instance)) then
      return { self.instance }
    end
    return {}
  end
  local out = {}
  for _, inst in ipairs(M.instances(self.home, self.ns, self.deployment)) do out[#out + 1] = inst.number end
  return out
end

--- The lines written since the last poll (the first poll: everything kept),
-- merged in time order: a list of { instance = "api-3" (also its source),
-- number, stream = "stdout"|"stderr", time_ms, data } where data is one
-- line with its "\n", or a line that stayed unfinished (see
-- FLUSH_PARTIAL_MS). `final` sends unfinished lines at once (for a last
-- poll). An instance whose log is gone sends what it held back, then is
-- forgotten.
function Follower:poll(final)
  local out, present = {}, {}
  for _, number in ipairs(self:numbers()) do
    present[number] = true
    if not self.files[number] then
      local name = M.instance_name(self.deployment, number)
      self.files[number] = M.file_lines(M.instance_path(self.home, self.ns, self.deployment, number), name,
        { clock = self.clock, flush_ms = self.flush_ms, counter = self.counter,
          fields = { instance = name, number = number } })
    end
  end
  local known = {}
  for number in pairs(self.files) do known[#known + 1] = number end
  table.sort(known)
  for _, number in ipairs(known) do
    local gone = not present[number]
    self.files[number]:poll(final or gone, out)
    if gone then self.files[number] = nil end
  end
  return M.merge(out)
end

--- A follower of a deployment's logs (see the module header). opts:
-- instance (only that instance number), clock (() -> ms, for specs),
-- flush_ms (default FLUSH_PARTIAL_MS), counter (shared with other readers
-- whose lines are merged with these, see M.file_lines).
function M.follower(home, ns, deployment, opts)
  opts = opts or {}
  M.dir(home, ns, deployment)
  if opts.instance ~= nil then check_number(opts.instance) end
  return setmetatable({ home = home, ns = ns, deployment = deployment, instance = opts.instance,
    clock = opts.clock or now_ms, flush_ms = opts.flush_ms or M.FLUSH_PARTIAL_MS, files = {},
    counter = opts.counter or { n = 0 } }, Follower)
end

--- Keeps the lines of `lines` written at or after opts.since (ms since the
-- epoch) to opts.stream (when given), then the last opts.tail of those.
-- Returns a new list.
function M.select(lines, opts)
  local since, tail, stream = opts and opts.since, opts and opts.tail, opts and opts.stream
  local out = {}
  for _, line in ipairs(lines) do
    if (not since or line.time_ms >= since) and (not stream or line.stream == stream) then out[#out + 1] = line end
  end
  if tail and #out > tail then
    out = table.move(out, #out - tail + 1, #out, 1, {})
  end
  return out
end

-- A whole number of at least `min` from query value `text`; nil when
-- absent; false and a message when it is something else.
local function whole(name, text, min)
  if text == nil or text == "" then return nil end
  local n = text:match("^%d+$") and math.tointeger(tonumber(text))
  if not n or n < min then
    return false, string.format("%s must be a whole number of at least %d, got '%s'", name, min, text)
  end
  return n
end

--- The reading options of a log request's query (a table of strings):
-- { since (ms), tail, instance, follow, stream ("stdout" or "stderr": only
-- that one; absent or "all": both) }. Returns them, or nil, a message and a
-- hint for a bad value.
function M.options(query)
  local opts = { follow = query.follow == "1" }
  if query.stream ~= nil and query.stream ~= "" and query.stream ~= "all" then
    if query.stream ~= "stdout" and query.stream ~= "stderr" then
      return nil, "stream must be stdout, stderr or all, got '" .. query.stream .. "'"
    end
    opts.stream = query.stream
  end
  for _, f in ipairs({ { "tail", 0 }, { "instance", 1 } }) do
    local n, err = whole(f[1], query[f[1]], f[2])
    if n == false then return nil, err end
    opts[f[1]] = n
  end
  if query.since ~= nil and query.since ~= "" then
    local ms, err = events.parse_since(query.since)
    if not ms then
      return nil, "bad 'since': " .. err, "use a duration like since=1h or a time like since=2026-11-26T18:46:00Z"
    end
    opts.since = ms
  end
  return opts
end

--- A deployment's kept output as merged lines (see Follower:poll), with
-- opts: since (ms), tail (last N lines after merging), instance (number).
function M.read(home, ns, deployment, opts)
  opts = opts or {}
  local lines = M.follower(home, ns, deployment, { instance = opts.instance }):poll(true)
  return M.select(lines, opts)
end

return M
