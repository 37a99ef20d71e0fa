-- prisn.dataplane.logs: the log pump — reads the output pipes of service
-- instances into their log files, for as long as it is attached, whatever
-- the server is doing — and the data plane's service (kind "logs") that
-- runs one.
--
-- An instance writes stdout and stderr into two named pipes
-- (prisn.exec.instance.fifo_paths). A pipe holds 64 KiB: if nobody reads, a
-- chatty instance blocks in its own write(). The server used to read them in
-- its own loop, so a server that was down stalled its services; the pump
-- lives in the long-lived data-plane process instead (the server only sends
-- attach/detach), and in the server itself when there is no data plane.
--
-- attach(key, { fifos = { stdout, stderr }, path, max_bytes }) opens each
-- pipe for reading (O_NONBLOCK: never waits for a writer) and then holds a
-- write end of its own, so the pipe never reports EOF: an instance that
-- exits and is restarted writes into the same pipe, read by the same
-- attachment, with nothing to re-attach. Every chunk read goes through
-- prisn.logs' writer (same records, same rotation as a job's log), stamped
-- with the time it was read, so the order of each stream is kept.
--
-- detach(key) stops reading, reads what is left in the pipes (without
-- waiting), writes it, and closes the pipes and the log. Whatever a detached
-- attachment did not read stays in the pipe (the instance holds it open), so
-- a hand-over is lossless and in order as long as the old pump detaches
-- before the new one attaches — the protocol of the data plane does that.
--
-- sync(list) takes the full list of attachments (the server's, sent on
-- every (re)connect): attaches what is new, updates the bound of what is
-- kept, detaches the rest.
--
-- It does not know deployments, the store, or the server: keys are opaque
-- ("ns/name/number" by convention), paths are given.
--
-- The service's ops (fields of the request; replies in brackets):
--   attach   key, fifos = { stdout, stderr }, path, max_bytes  [] or an error
--   detach   key                                               []
--   sync     attachments = { [key] = { fifos, path, max_bytes } }: the full
--            list (prisn.server.log_host sends it on every (re)connect)
--            [ failed = { [key] = message } ]
-- At an upgrade the old process lets go of every pipe (reading what is left)
-- when its snapshot is taken, before the new one starts and attaches them
-- again: in between the pipes hold what is written (64 KiB, a few ms of an
-- upgrade), and requests only change the list it takes back if the new
-- process never takes over (HANDOVER_TIMEOUT_MS). At a stop it lets go of
-- its write ends and reads each pipe until its instance has closed it too
-- (the server stops the instances after the data plane), at most
-- STOP_DRAIN_MS.
local uv = require("luv")
local logs = require("prisn.logs")

local M = {}

local O_RDONLY, O_WRONLY, O_NONBLOCK = 0, 1, 2048 -- Linux; luv takes open(2) flags as an integer
M.STREAMS = { "stdout", "stderr" }
-- A writer that could not open is tried again at most this often.
M.REOPEN_MS = 1000
-- How much a detach reads at most from a pipe still being written to.
local DRAIN_MAX_BYTES = 4 * 1024 * 1024
-- At a stop: how long the pipes are read for the last words of instances
-- being stopped (their grace, and some).
M.STOP_DRAIN_MS = 15000
-- At an upgrade: when the new process has not taken over after this long,
-- the old one attaches again (the upgrade failed).
M.HANDOVER_TIMEOUT_MS = 15000

local Pump = {}
Pump.__index = Pump

-- One stream of an attachment: the read end as a luv pipe, and the write
-- end held so the pipe never ends.
local function open_stream(self, path)
  local uvx = self.uv
  local rfd, err, code = uvx.fs_open(path, O_RDONLY | O_NONBLOCK, 0)
  if not rfd then return nil, err, code end
  local wfd, werr, wcode = uvx.fs_open(path, O_WRONLY | O_NONBLOCK, 0)
  if not wfd then
    uvx.fs_close(rfd)
    return nil, werr, wcode
  end
  local pipe = uvx.new_pipe(false)
  local ok, perr, pcode = pipe:open(rfd)
  if not ok then
    pipe:close()
    uvx.fs_close(rfd)
    uvx.fs_close(wfd)
    return nil, perr, pcode
  end
  return { pipe = pipe, wfd = wfd, path = path }
end

-- Says once per attachment that its output cannot be kept, and why.
local function report(self, a, text)
  if a.reported then return end
  a.reported = true
  self.on_error(a.key, text)
end

-- The writer of attachment `a`, opened again when it could not be (at most
-- every REOPEN_MS), or nil.
local function writer_of(self, a)
  if a.writer then return a.writer end
  local now = self.uv.now()
  if a.failed_at and now - a.failed_at < M.REOPEN_MS then return nil end
  local w, err = logs.writer(a.path, { max_bytes = a.max_bytes, clock = self.clock })
  if not w then
    a.failed_at = now
    report(self, a, "cannot keep its output in " .. a.path .. ": " .. tostring(err))
    return nil
  end
  a.writer, a.failed_at, a.reported = w, nil, nil
  return w
end

-- Writes one chunk read from `stream` of `a`; a failed write (a full disk)
-- drops the chunk but never stops the reading, or the instance would block.
local function keep(self, a, stream, data)
  local w = writer_of(self, a)
  if not w then return end
  local ok, err = w:write(stream, data)
  if not ok then report(self, a, "cannot write its output to " .. a.path .. ": " .. tostring(err)) end
end

local function start_reading(self, a, stream, s)
  s.pipe:read_start(function(err, data)
    if data then return keep(self, a, stream, data) end
    -- EOF cannot happen while the write end is held; an error ends the
    -- pipe, which is opened again on the next attach.
    if err then report(self, a, "cannot read its " .. stream .. ": " .. tostring(err)) end
    if not s.pipe:is_closing() then s.pipe:read_stop(); s.pipe:close() end
  end)
end

-- Reads what is left in stream `s` without waiting and writes it; then
-- closes both ends.
local function drain_and_close(self, a, stream, s)
  local pipe = s.pipe
  if not pipe:is_closing() then
    pipe:read_stop()
    local fd = pipe:fileno()
    local taken = 0
    while fd and taken < DRAIN_MAX_BYTES do
      local data = self.uv.fs_read(fd, 65536, -1)
      if not data or data == "" then break end -- EAGAIN: empty
      taken = taken + #data
      keep(self, a, stream, data)
    end
    pipe:close()
  end
  self.uv.fs_close(s.wfd)
end

local function same_fifos(x, y)
  return x.stdout == y.stdout and x.stderr == y.stderr
end

local function check_spec(key, spec)
  if type(key) ~= "string" or key == "" then error("log pump: a key must be a non-empty string", 3) end
  if type(spec) ~= "table" or type(spec.path) ~= "string" or type(spec.fifos) ~= "table"
    or type(spec.fifos.stdout) ~= "string" or type(spec.fifos.stderr) ~= "string" then
    error("log pump: attach(" .. key .. ") needs { fifos = { stdout, stderr }, path, max_bytes }", 3)
  end
end

--- Starts pumping the pipes of `spec.fifos` into the log at `spec.path`
-- (bounded by spec.max_bytes, default prisn.logs'). Attaching a key already
-- attached to the same pipes and log only updates max_bytes; to other ones,
-- detaches it first. Returns true, or nil, message, code when a pipe cannot
-- be opened (nothing is left open then).
function Pump:attach(key, spec)
  check_spec(key, spec)
  local a = self.attached[key]
  if a and same_fifos(a.fifos, spec.fifos) and a.path == spec.path then
    if spec.max_bytes and spec.max_bytes ~= a.max_bytes then
      a.max_bytes = spec.max_bytes
      if a.writer then a.writer.max_bytes, a.writer.half = spec.max_bytes, spec.max_bytes // 2 end
    end
    return true
  end
  if a then self:detach(key) end
  a = { key = key, fifos = { stdout = spec.fifos.stdout, stderr = spec.fifos.stderr }, path = spec.path,
    max_bytes = spec.max_bytes, streams = {} }
  for _, stream in ipairs(M.STREAMS) do
    local s, err, code = open_stream(self, a.fifos[stream])
    if not s then
      for opened, done in pairs(a.streams) do drain_and_close(self, a, opened, done) end
      if a.writer then a.writer:close() end
      return nil, "cannot read " .. a.fifos[stream] .. ": " .. tostring(err), code
    end
    a.streams[stream] = s
  end
  writer_of(self, a)
  for _, stream in ipairs(M.STREAMS) do start_reading(self, a, stream, a.streams[stream]) end
  self.attached[key] = a
  return true
end

--- Stops pumping `key`: what is left in its pipes is read and written
-- first, then its pipes and log are closed. Unknown keys are ignored.
function Pump:detach(key)
  local a = self.attached[key]
  if not a then return end
  self.attached[key] = nil
  for _, stream in ipairs(M.STREAMS) do drain_and_close(self, a, stream, a.streams[stream]) end
  if a.writer then a.writer:close(); a.writer = nil end
end

--- Makes the attachments those of `list` ({ [key] = spec }): new keys
-- attached, kept ones updated, the others detached. Returns the keys that
-- could not be attached, { [key] = message }.
function Pump:sync(list)
  for key in pairs(self.attached) do
    if not list[key] then self:detach(key) end
  end
  local failed = {}
  for key, spec in pairs(list) do
    local done, ok, err = pcall(self.attach, self, key, spec)
    if not done then failed[key] = tostring(ok) elseif not ok then failed[key] = err end
  end
  return failed
end

--- The attached keys, sorted.
function Pump:keys()
  local out = {}
  for key in pairs(self.attached) do out[#out + 1] = key end
  table.sort(out)
  return out
end

--- Detaches everything (a stop or a hand-over).
function Pump:close()
  for _, key in ipairs(self:keys()) do self:detach(key) end
end

--- Lets go of every attachment's write ends and reads each pipe until its
-- writers are gone too (EOF) or `ms` pass; then closes it. done() after.
function Pump:linger(ms, done)
  local list = {}
  for _, key in ipairs(self:keys()) do list[#list + 1] = self.attached[key] end
  self.attached = {}
  local open, timer = 0, nil
  local function close_stream(a, s)
    if s.pipe:is_closing() then return end
    s.pipe:read_stop()
    s.pipe:close()
    a.open = a.open - 1
    if a.open == 0 and a.writer then a.writer:close(); a.writer = nil end
    open = open - 1
    if open == 0 then
      if timer and not timer:is_closing() then timer:close() end
      if done then done() end
    end
  end
  for _, a in ipairs(list) do
    a.open = 0
    for _, stream in ipairs(M.STREAMS) do
      local s = a.streams[stream]
      self.uv.fs_close(s.wfd)
      if not s.pipe:is_closing() then
        a.open, open = a.open + 1, open + 1
        s.pipe:read_stop()
        s.pipe:read_start(function(_, data)
          if data then return keep(self, a, stream, data) end
          close_stream(a, s)
        end)
      end
    end
  end
  if open == 0 then
    if done then done() end
    return
  end
  timer = self.uv.new_timer()
  timer:start(ms, 0, function()
    for _, a in ipairs(list) do
      for _, stream in ipairs(M.STREAMS) do close_stream(a, a.streams[stream]) end
    end
  end)
end

--- A pump. opts: on_error(key, message) (called once per attachment and
-- trouble: a log that cannot be written, a pipe that broke), uv (luv, or a
-- fake), clock (ms since the epoch, for the records; prisn.clock's by default).
function M.pump(opts)
  opts = opts or {}
  return setmetatable({ attached = {}, uv = opts.uv or uv, clock = opts.clock,
    on_error = opts.on_error or function() end }, Pump)
end

-- The data plane's service --------------------------------------------------------

local Service = {}
Service.__index = Service

--- The service for data-plane `host` (its log).
function M.new(host)
  local self = setmetatable({ host = host }, Service)
  self.pump = M.pump({ on_error = function(key, text)
    if host.log then host.log:error("logs %s: %s", key, text) end
  end })
  return self
end

local function attachment(msg)
  local fifos = type(msg.fifos) == "table" and msg.fifos or {}
  return { fifos = { stdout = fifos.stdout, stderr = fifos.stderr }, path = msg.path,
    max_bytes = math.tointeger(msg.max_bytes) }
end

-- While an upgrade hands over (snapshot taken, the new process not serving
-- yet) this process reads nothing: requests change the list it would take
-- back if the upgrade failed (the new server sends the new process its own).

function Service:op_attach(msg)
  if type(msg.key) ~= "string" or msg.key == "" then return nil, "attach: key must be a string", "invalid" end
  if self.handing_over then
    self.handing_over[msg.key] = attachment(msg)
    return {}
  end
  local done, ok, err, code = pcall(self.pump.attach, self.pump, msg.key, attachment(msg))
  if not done then return nil, tostring(ok), "invalid" end
  if not ok then return nil, err, code end
  return {}
end

function Service:op_detach(msg)
  if type(msg.key) ~= "string" then return nil, "detach: key must be a string", "invalid" end
  if self.handing_over then
    self.handing_over[msg.key] = nil
    return {}
  end
  self.pump:detach(msg.key)
  return {}
end

function Service:op_sync(msg)
  local list = {} -- (JSON numbers arrive as floats: attachment() makes them integers)
  for key, spec in pairs(type(msg.attachments) == "table" and msg.attachments or {}) do
    if type(key) == "string" and type(spec) == "table" then list[key] = attachment(spec) end
  end
  if self.handing_over then
    self.handing_over = list
    return { failed = {} }
  end
  return { failed = self.pump:sync(list) }
end

function Service:stop_handover_timer()
  local t = self.handover_timer
  if t and not t:is_closing() then t:close() end
  self.handover_timer = nil
end

--- An upgrade: every pipe let go of (what was read is written), and the
-- list handed to the new process, which attaches them again (adopt). When
-- it never takes over (the upgrade failed) this one attaches them again.
function Service:snapshot()
  local list = self.handing_over or {} -- a second attempt: the first one's list
  for key, a in pairs(self.pump.attached) do
    list[key] = { fifos = a.fifos, path = a.path, max_bytes = a.max_bytes }
  end
  self.pump:close()
  self.handing_over = list
  self:stop_handover_timer()
  local timer = uv.new_timer()
  timer:start(M.HANDOVER_TIMEOUT_MS, 0, function()
    self:stop_handover_timer()
    local taken_back = self.handing_over
    if not taken_back or self.closed then return end
    self.handing_over = nil
    if self.host.log then self.host.log:warn("logs: the upgrade did not take over; reading the pipes again") end
    self.pump:sync(taken_back)
  end)
  timer:unref()
  self.handover_timer = timer
  local copy = {}
  for key, spec in pairs(list) do copy[key] = spec end
  return { attachments = copy }
end

function Service:adopt(snapshot)
  local list = {}
  for key, spec in pairs(type(snapshot.attachments) == "table" and snapshot.attachments or {}) do
    list[key] = attachment(spec)
  end
  local failed = self.pump:sync(list)
  for key, message in pairs(failed) do
    if self.host.log then self.host.log:error("logs %s: %s", key, message) end
  end
end

--- The new process reads the pipes now (it attached them before it said
-- it was ready): this one never reads them again.
function Service:stop_accepting(done)
  self.handing_over = nil
  self.handed_over = true
  self:stop_handover_timer()
  done()
end

--- A stop: the instances are stopped after this, so their last words are
-- read until they close their pipes (see the header); done() at once, the
-- reading goes on in the background.
function Service:close(done)
  self.closed = true
  self:stop_handover_timer()
  self.pump:linger(M.STOP_DRAIN_MS)
  if done then done() end
end

return M
