-- prisn.server.log: the server's own log, $PRISN_HOME/server.log.
--
-- One line per entry: "<ISO time> <LEVEL> <message>". Rotated by size: past
-- max_bytes the file becomes server.log.1 (replacing the previous one). In
-- the foreground every line also goes to stderr. Never pass secrets or tokens
-- to it: callers log names and ids only.
--
-- A line that cannot be written (a full disk) is dropped, never waited for
-- and never raised: the server goes on. The next line that can be written
-- is preceded by one saying how many were lost, and a line cut short is
-- ended first, so the file stays one entry per line.
local uv = require("luv")
local clock = require("prisn.clock")

local M = {}

M.MAX_BYTES = 10 * 1024 * 1024

local Log = {}
Log.__index = Log

local function timestamp()
  return clock.iso_time(clock.now_ms())
end

function Log:open()
  self.fd = uv.fs_open(self.path, "a", tonumber("600", 8))
  local st = self.fd and uv.fs_fstat(self.fd)
  self.size = st and st.size or 0
end

function Log:rotate()
  if self.fd then uv.fs_close(self.fd) end
  uv.fs_rename(self.path, self.path .. ".1")
  self:open()
end

-- Appends `text`; returns true, or false when not all of it was written
-- (and notes whether a line was cut short).
function Log:append(text)
  local done = 0
  while done < #text do
    local n = uv.fs_write(self.fd, done == 0 and text or text:sub(done + 1), -1)
    if not n or n == 0 then
      self.cut = self.cut or done > 0
      return false
    end
    done = done + n
    self.size = self.size + n
  end
  return true
end

function Log:write(level, fmt, ...)
  local ok, message = pcall(string.format, fmt, ...)
  if not ok then message = fmt end
  local line = string.format("%s %s %s\n", timestamp(), level, message)
  if self.stderr then pcall(io.stderr.write, io.stderr, line) end
  if not self.fd then return end
  if self.size + #line > self.max_bytes then self:rotate() end
  if not self.fd then return end
  if self.lost > 0 then
    local note = string.format("%s%s WARN server.log: %d line(s) could not be written (disk full?)\n",
      self.cut and "\n" or "", timestamp(), self.lost)
    if not self:append(note) then
      self.lost = self.lost + 1
      return
    end
    self.lost, self.cut = 0, false
  end
  if not self:append(line) then self.lost = self.lost + 1 end
end

function Log:info(fmt, ...) self:write("INFO", fmt, ...) end
function Log:warn(fmt, ...) self:write("WARN", fmt, ...) end
function Log:error(fmt, ...) self:write("ERROR", fmt, ...) end

function Log:close()
  if self.fd then uv.fs_close(self.fd) end
  self.fd = nil
end

--- Opens the log at `path` (nil: stderr only). opts: stderr (bool), max_bytes.
function M.open(path, opts)
  opts = opts or {}
  local log = setmetatable({ path = path, stderr = opts.stderr, max_bytes = opts.max_bytes or M.MAX_BYTES,
    lost = 0, cut = false }, Log)
  if path then log:open() end
  return log
end

return M
