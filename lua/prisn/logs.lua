-- prisn.logs: a job's output, kept in a bounded log file.
--
-- The process running a job streams its output to the terminal and also hands
-- every chunk to a writer here, which appends it to
-- $PRISN_HOME/logs/<namespace>/jobs/<id>.log (directories 0700, files 0600:
-- output can hold secrets).
--
-- Format. A log is a sequence of records, each a header line and the bytes:
--
--   <kind> SP <time_ms> SP <length> LF <length bytes of data> LF
--
--   kind     "o" stdout, "e" stderr, "r" rotation marker, "x" the job's
--            outcome (JSON; see Writer:write_outcome), "s" a server job's
--            start (JSON; see Writer:write_start); readers skip x and s
--   time_ms  when the chunk was read, milliseconds since the Unix epoch
--   length   decimal byte count of data
--
-- so stdout and stderr stay separate yet in the order they were read, data
-- may hold any bytes (newlines, NULs, invalid UTF-8), and a chunk is one
-- write() of one record: a reader never sees half a header followed by
-- another record. A record torn by a crash is the last one and is ignored.
--
-- Bound. When the file would grow past max_bytes/2 (default max_bytes 10 MiB)
-- it is renamed to <id>.log.1, replacing an older one, and a fresh file is
-- started with an "r" record ("rotation=<n> max_bytes=<m>"). The two files
-- together hold at most max_bytes and at least the last max_bytes/2 of
-- output. A reader reads .1 then the current file; when the older of the
-- two starts with an "r" record, something came before it that is gone, and
-- the reader says the log was truncated. A chunk larger than max_bytes/2 is
-- split into several records.
local uv = require("luv")
local clock = require("prisn.clock")
local fs = require("prisn.fs")

local M = {}

M.DEFAULT_MAX_BYTES = 10 * 1024 * 1024
M.MIN_MAX_BYTES = 1024
M.FILE_MODE = tonumber("600", 8)
M.DIR_MODE = tonumber("700", 8)

local KIND_OF = { stdout = "o", stderr = "e" }
local STREAM_OF = { o = "stdout", e = "stderr" }
-- Room for a header and the rotation marker when splitting a chunk.
local HEADER_ROOM = 128

local now_ms = clock.now_ms

local function check_name(what, name)
  if type(name) ~= "string" or not name:match("^[%w][%w._-]*$") then
    error(string.format("logs: bad %s %q", what, tostring(name)), 3)
  end
end

--- The log file of job `id` in namespace `ns` under `home`.
function M.job_path(home, ns, id)
  check_name("namespace", ns)
  check_name("job id", id)
  return string.format("%s/logs/%s/jobs/%s.log", home, ns, id)
end

local write_all = fs.write_all

local function record(kind, time_ms, data)
  return string.format("%s %d %d\n", kind, time_ms, #data) .. data .. "\n"
end

local function parse_marker(data)
  return tonumber(data:match("rotation=(%d+)")), tonumber(data:match("max_bytes=(%d+)"))
end

-- Reads the whole file at `path`: its text, or nil, message, code.
local function read_file(path)
  local fd, err, code = uv.fs_open(path, "r", 0)
  if not fd then return nil, err, code end
  local chunks = {}
  while true do
    local data, rerr, rcode = uv.fs_read(fd, 1024 * 1024, -1)
    if not data then uv.fs_close(fd) return nil, rerr, rcode end
    if data == "" then break end
    chunks[#chunks + 1] = data
  end
  uv.fs_close(fd)
  return table.concat(chunks)
end

local Writer = {}
Writer.__index = Writer

-- Opens the current file and learns its size and rotation count.
function Writer:open_file()
  local fd, err, code = uv.fs_open(self.path, "a+", M.FILE_MODE)
  if not fd then return nil, err, code end
  self.fd = fd
  local st = uv.fs_fstat(fd)
  self.size = st and st.size or 0
  self.data_bytes = self.size
  if self.size > 0 then
    local head = uv.fs_read(fd, 96, 0) or ""
    local kind, len, rest = head:match("^(%a) %d+ (%d+)\n(.*)$")
    if kind == "r" and #rest >= tonumber(len) then
      self.rotations = parse_marker(rest:sub(1, tonumber(len))) or 0
      self.data_bytes = self.size - (#head - #rest + tonumber(len) + 1)
    end
  end
  return true
end

function Writer:rotate()
  uv.fs_close(self.fd)
  self.fd = nil
  local ok, err, code = uv.fs_rename(self.path, self.path .. ".1")
  if not ok then return nil, err, code end
  self.rotations = self.rotations + 1
  ok, err, code = self:open_file()
  if not ok then return nil, err, code end
  local marker = record("r", self.clock(),
    string.format("rotation=%d max_bytes=%d", self.rotations, self.max_bytes))
  ok, err, code = write_all(self.fd, marker)
  if not ok then return nil, err, code end
  self.size, self.data_bytes = #marker, 0
  return true
end

--- Appends `data` from `stream` ("stdout" or "stderr") to the log, rotating
-- when the file would pass max_bytes/2. Returns true, or nil, message, code
-- (e.g. ENOSPC): the caller goes on streaming output and may report it once.
function Writer:write(stream, data)
  local kind = KIND_OF[stream]
  if not kind then error("logs: stream must be stdout or stderr, got " .. tostring(stream), 2) end
  if not self.fd then return nil, "log " .. self.path .. " is closed", "EBADF" end
  local time_ms = self.clock()
  local piece = self.half - HEADER_ROOM
  for first = 1, #data, piece do
    local rec = record(kind, time_ms, data:sub(first, first + piece - 1))
    if self.data_bytes > 0 and self.size + #rec > self.half then
      local ok, err, code = self:rotate()
      if not ok then return nil, err, code end
    end
    local ok, err, code = write_all(self.fd, rec)
    if not ok then return nil, err, code end
    self.size = self.size + #rec
    self.data_bytes = self.data_bytes + #rec
  end
  return true
end

-- Appends a record of `kind` that is not output (no rotation).
local function write_meta(self, kind, text)
  if not self.fd then return nil, "log " .. self.path .. " is closed", "EBADF" end
  local rec = record(kind, self.clock(), text)
  local ok, err, code = write_all(self.fd, rec)
  if not ok then return nil, err, code end
  self.size = self.size + #rec
  return true
end

--- Appends the job's outcome (`text`, JSON) as the log's last record. A
-- runner writes it before telling the server; a server that died before it
-- recorded what it was told finds the outcome here when it starts again
-- (M.outcome). Never rotates: the record belongs with the output before it.
function Writer:write_outcome(text)
  return write_meta(self, "x", text)
end

--- Appends the start of a server job (`text`, JSON) as the log's first
-- record: a job runner writes it just before the workload starts, so the log
-- proves the job started even when the report of its start was lost with
-- the server (M.started).
function Writer:write_start(text)
  return write_meta(self, "s", text)
end

--- Closes the log file; idempotent.
function Writer:close()
  if self.fd then uv.fs_close(self.fd) end
  self.fd = nil
  return true
end

--- Opens (appending) the log at `path`, creating it and its directories.
-- `opts`: max_bytes (default 10 MiB, at least 1 KiB), clock (() -> ms, for
-- specs). Returns a writer, or nil, message, code.
function M.writer(path, opts)
  opts = opts or {}
  local max_bytes = opts.max_bytes or M.DEFAULT_MAX_BYTES
  if math.type(max_bytes) ~= "integer" or max_bytes < M.MIN_MAX_BYTES then
    error("logs.writer: max_bytes must be an integer of at least " .. M.MIN_MAX_BYTES, 2)
  end
  -- Every directory it creates 0700, whatever the umask.
  local ok, err, code = fs.mkdir_p(path:match("^(.+)/[^/]+$") or ".", M.DIR_MODE, true)
  if not ok then return nil, err, code end
  local w = setmetatable({ path = path, max_bytes = max_bytes, half = max_bytes // 2,
    clock = opts.clock or now_ms, rotations = 0 }, Writer)
  ok, err, code = w:open_file()
  if not ok then return nil, err, code end
  return w
end

-- Parses the records of one file's `text` into `out`. Returns the rotation
-- marker's fields when the file starts with one.
local function parse(text, out)
  local pos, rotation, max_bytes = 1, nil, nil
  while pos <= #text do
    local kind, time_ms, len, body = text:match("^(%a) (%d+) (%d+)\n()", pos)
    if not kind then break end
    len = tonumber(len)
    if body + len > #text then break end -- torn by a crash: the last record
    local data = text:sub(body, body + len - 1)
    if kind == "r" then
      if pos == 1 then rotation, max_bytes = parse_marker(data) end
    elseif STREAM_OF[kind] then
      out[#out + 1] = { stream = STREAM_OF[kind], data = data, time_ms = tonumber(time_ms) }
    end
    pos = body + len + 1
  end
  return rotation, max_bytes
end

--- Reads the log at `path` (with its .1 before it). Returns records, a list
-- of { stream = "stdout"|"stderr", data = bytes, time_ms }, in order;
-- `truncated`, true when older output was dropped by rotation; and the
-- writer's max_bytes when the log says (nil before any rotation). Returns
-- nil, message, code ("ENOENT" when neither file exists).
function M.read(path)
  local records, truncated, max_bytes = {}, false, nil
  local found = false
  for _, p in ipairs({ path .. ".1", path }) do
    local text, err, code = read_file(p)
    if text then
      local rotation, max = parse(text, records)
      if not found and rotation then truncated = true end
      max_bytes = max or max_bytes
      found = true
    elseif code ~= "ENOENT" then
      return nil, err, code
    end
  end
  if not found then return nil, "ENOENT: no such file or directory: " .. path, "ENOENT" end
  return records, truncated, max_bytes
end

-- The data of the last record of `kind` in the file at `path`, or nil;
-- with `last_only`, only when that record is the file's last. The file is
-- parsed from its start, record by record: a workload cannot forge a record
-- by printing one.
local function last_record(path, kind, last_only)
  local text = read_file(path)
  if not text then return nil end
  local pos, found = 1, nil
  while pos <= #text do
    local k, len, body = text:match("^(%a) %d+ (%d+)\n()", pos)
    if not k then break end
    len = tonumber(len)
    if body + len > #text then break end
    if k == kind then
      found = text:sub(body, body + len - 1)
    elseif last_only then
      found = nil
    end
    pos = body + len + 1
  end
  return found
end

--- The outcome recorded at the end of the log at `path` (Writer:write_outcome),
-- as its text, or nil.
function M.outcome(path)
  return last_record(path, "x", true)
end

--- The last start record of the log at `path` (Writer:write_start), as its
-- text, or nil (none, or rotated away).
function M.start_record(path)
  return last_record(path, "s", false)
end

--- Whether the log at `path` (or its .1) exists: a server job's runner
-- makes it just before the job's workload starts, so a job with a log has
-- started, once (see Writer:write_start).
function M.started(path)
  return uv.fs_stat(path) ~= nil or uv.fs_stat(path .. ".1") ~= nil
end

--- Splits records into lines: a list of { stream, data, time_ms } where data
-- is one line with its "\n" (the last line of a stream may lack it). Each
-- stream is split on its own, so a line interrupted by the other stream
-- stays whole; a line is stamped with the time its first byte was read and
-- placed where it ended.
function M.lines(records)
  local out, partial = {}, {}
  local function finish(p)
    p.data = table.concat(p.parts)
    p.parts = nil
    out[#out + 1] = p
  end
  for _, r in ipairs(records) do
    local pos = 1
    while pos <= #r.data do
      local nl = r.data:find("\n", pos, true)
      local p = partial[r.stream]
      if not p then
        p = { stream = r.stream, time_ms = r.time_ms, parts = {} }
        partial[r.stream] = p
      end
      p.parts[#p.parts + 1] = r.data:sub(pos, nl or #r.data)
      if nl then
        finish(p)
        partial[r.stream] = nil
      end
      pos = (nl or #r.data) + 1
    end
  end
  -- Unfinished last lines, stdout's first when they started together.
  local rest = {}
  for _, p in pairs(partial) do rest[#rest + 1] = p end
  table.sort(rest, function(a, b)
    if a.time_ms ~= b.time_ms then return a.time_ms < b.time_ms end
    return a.stream > b.stream
  end)
  for _, p in ipairs(rest) do finish(p) end
  return out
end

--- A follower of the log at `path` (for `prisn logs -f`): each t:poll()
-- returns the records written since the last poll, in order, following the
-- writer across a rotation (the file it was reading becomes <path>.1).
function M.tailer(path)
  local t = { path = path, offset = 0, ino = nil, pending = "" }
  -- Reads `file` from `offset` and returns the complete records, keeping a
  -- partly written one for the next poll.
  local function read_from(file, offset, out)
    local fd = uv.fs_open(file, "r", 0)
    if not fd then return offset end
    while true do
      local chunk = uv.fs_read(fd, 65536, offset)
      if not chunk or chunk == "" then break end
      offset = offset + #chunk
      t.pending = t.pending .. chunk
    end
    uv.fs_close(fd)
    local pos = 1
    while true do
      local kind, time_ms, len, body = t.pending:match("^(%a) (%d+) (%d+)\n()", pos)
      if not kind then break end
      len = tonumber(len)
      if body + len > #t.pending then break end
      if STREAM_OF[kind] then
        out[#out + 1] = { stream = STREAM_OF[kind], data = t.pending:sub(body, body + len - 1),
          time_ms = tonumber(time_ms) }
      end
      pos = body + len + 1
    end
    t.pending = t.pending:sub(pos)
    return offset
  end
  function t.poll()
    local out = {}
    local st = uv.fs_stat(t.path)
    if not st then return out end
    if t.ino and st.ino ~= t.ino then
      read_from(t.path .. ".1", t.offset, out)
      t.offset, t.pending = 0, ""
    end
    t.ino = st.ino
    t.offset = read_from(t.path, t.offset, out)
    return out
  end
  return t
end

return M
