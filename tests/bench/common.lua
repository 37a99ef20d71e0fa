-- What the benchmarks in tests/bench share: shell output, files, medians.
--
--   package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
--   local common = require("common")
local uv = require("luv")

local M = {}

--- The output of shell command `cmd` (stderr dropped), trailing space cut.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

--- Writes `text` to `path` (chmod `mode` when given).
function M.write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then uv.fs_chmod(path, mode) end
end

--- The content of `path`, or nil.
function M.read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- The median of a list of numbers (NaN for none).
function M.median(list)
  if #list == 0 then return 0 / 0 end
  local s = { table.unpack(list) }
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

return M
