-- prisn.sandbox: running operator-written Lua (runner files, policies,
-- manifests, hooks) safely enough to survive its mistakes.
--
-- Operator code is text-only Lua loaded into a fresh environment that holds
-- only pure helpers: copies of string, table, math and utf8, a few of os,
-- and the safe base functions. It cannot require modules, open files, run
-- programs or reach prisn's globals. The allowed globals are declared here
-- once (ENVIRONMENTS), in two sets:
--   * "in_process" — runner files, policies, manifests: they run inside the
--     server or the CLI, so they get no metatable functions (getmetatable("")
--     is the real string table, which a file could rewrite under prisn; a
--     __gc would run later outside the budget) and of os only getenv;
--   * "child" — hooks (prisn.hooks.child): they run in a forked process that
--     holds nothing of the server's, so they may also build metatables and
--     read the clock (os.time, os.date, os.clock); the child adds json, http
--     and print itself.
--
-- Every call into operator code (loading the file, build_command, prepare)
-- runs in its own coroutine with an instruction-count hook: past the budget
-- the hook raises, and from then on raises at every instruction, so even a
-- pcall inside the file cannot swallow the error and loop on. The hook is set
-- on that coroutine only; prisn's own code never runs under it.
--
-- What this does not do: bound memory, or time spent inside one library call
-- (a huge string.rep, a pathological pattern). The server runs operator hooks
-- in a forked child for that; the CLI relies on the budget.
local M = {}

--- Instructions one call into operator code may execute.
M.BUDGET = 1000000

-- Base functions every operator file may use: pure, no access to files,
-- programs or other code.
local BASE = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawlen",
  "select", "tonumber", "tostring", "type", "xpcall",
}

-- What each set adds to BASE (see the module header for why they differ).
local ENVIRONMENTS = {
  in_process = { globals = {}, os = { "getenv" } },
  child = { globals = { "rawget", "rawset", "setmetatable", "getmetatable" },
    os = { "time", "date", "clock", "getenv" } },
}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- A fresh global table for one operator file: `kind` is "in_process"
-- (the default) or "child".
function M.environment(kind)
  local set = ENVIRONMENTS[kind or "in_process"]
  if not set then error("sandbox.environment: unknown kind " .. tostring(kind), 2) end
  local env = {
    string = copy(string), table = copy(table), math = copy(math), utf8 = copy(utf8),
    os = {},
    _VERSION = _VERSION,
  }
  for _, name in ipairs(BASE) do env[name] = _G[name] end
  for _, name in ipairs(set.globals) do env[name] = _G[name] end
  for _, name in ipairs(set.os) do env.os[name] = os[name] end
  return env
end

--- Calls fn(...) under the instruction budget. Returns true and fn's results,
-- or false and a message ("line 3: ran over its budget of 1000000
-- instructions (an endless loop?)" or the error fn raised).
function M.call(fn, budget, ...)
  budget = budget or M.BUDGET
  local co = coroutine.create(fn)
  local tripped
  debug.sethook(co, function()
    if not tripped then
      local info = debug.getinfo(2, "Sl")
      local where = ""
      if info and info.currentline and info.currentline > 0 then
        where = (info.source or ""):gsub("^@", "") .. ":" .. info.currentline .. ": "
      end
      tripped = string.format("%sran over its budget of %d instructions (an endless loop?)", where, budget)
      -- From now on fail at every instruction, so no pcall can resume the loop.
      debug.sethook(co, debug.gethook(co), "", 1)
    end
    error(tripped, 0)
  end, "", budget)
  local results = table.pack(coroutine.resume(co, ...))
  if coroutine.status(co) ~= "dead" then
    -- The sandbox has no coroutine library, so this only happens if a
    -- function handed to operator code yields; treat it as a failure.
    return false, "operator code yielded"
  end
  if not results[1] then
    return false, tripped or tostring(results[2])
  end
  return table.unpack(results, 1, results.n)
end

--- Loads operator runner source `text` (from `file`) and returns the value
-- it returns, or nil and a message that starts with the file (and line):
-- "/root/.prisn/runners/tcl.lua:3: unexpected symbol near '}'".
function M.load(text, file, budget)
  local chunk, err = load(text, "@" .. file, "t", M.environment())
  if not chunk then return nil, M.full_path(err, file) end
  local results = table.pack(M.call(chunk, budget))
  if not results[1] then return nil, M.full_path(results[2], file) end
  return results[2]
end

--- Lua shortens chunk names past 60 bytes ("...ners/tcl.lua:3: msg"); puts
-- the whole path back so the message names the file exactly. A message that
-- does not start with the file gets it as a prefix.
function M.full_path(message, file)
  message = tostring(message)
  if message:sub(1, #file) == file then return message end
  if message:sub(1, 3) == "..." then
    local tail, rest = message:match("^%.%.%.(.-)(:%d+:.*)$")
    if tail and file:sub(-#tail) == tail then return file .. rest end
  end
  return file .. ": " .. message
end

return M
