-- Merges the Lua line counts that prisn writes under PRISN_LUA_COVERAGE and
-- reports line coverage per folder (used by contrib/coverage.sh):
--
--   prisn lua contrib/coverage.lua COUNTS_DIR SOURCE_DIR REPORT_FILE
--
-- Prints one line per folder (each folder counts its subfolders too) and
-- writes REPORT_FILE: every file with its covered/total lines and the ranges
-- of lines never run. Which lines can run comes from `luac5.4 -l -p` (the
-- lines that hold an instruction), less lines that hold only `end`: Lua runs
-- an `end` only when a function falls off it, so a function left by `return`
-- would show its `end` as missed.
local uv = require("luv")

local M = {}

--- Adds the counts of one file written by core/coverage.c into `hits`
-- ({ [path] = { [line] = count } }).
function M.read_counts(text, hits)
  local current
  for line in text:gmatch("[^\n]+") do
    local path = line:match("^file (.+)$")
    if path then
      hits[path] = hits[path] or {}
      current = hits[path]
    else
      local n, count = line:match("^(%d+) (%d+)$")
      if n and current then
        n = tonumber(n)
        current[n] = (current[n] or 0) + tonumber(count)
      end
    end
  end
  return hits
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function merge_dir(dir)
  local hits = {}
  local scan = assert(uv.fs_scandir(dir))
  while true do
    local name = uv.fs_scandir_next(scan)
    if not name then break end
    if name:match("%.cov$") then M.read_counts(read_file(dir .. "/" .. name), hits) end
  end
  return hits
end

--- The set of lines of `path` that can run, from luac's listing of the file
-- and the file's text.
function M.runnable_lines(listing, source)
  local texts = {}
  for text in (source .. "\n"):gmatch("([^\n]*)\n") do texts[#texts + 1] = text end
  local lines = {}
  for n in listing:gmatch("\n%s*%d+%s+%[(%d+)%]") do
    n = tonumber(n)
    local text = texts[n] or ""
    if n > 0 and not text:match("^%s*end[%s%),;]*$") and not text:match("^%s*%-%-") then lines[n] = true end
  end
  return lines
end

local function listing_of(path)
  local pipe = assert(io.popen("luac5.4 -l -p " .. path .. " 2>&1"))
  local text = pipe:read("a")
  pipe:close()
  return "\n" .. text
end

local function sources(source_dir)
  local pipe = assert(io.popen("cd " .. source_dir .. " && find lua runners policies -name '*.lua' | sort"))
  local list = {}
  for path in pipe:lines() do list[#list + 1] = path end
  pipe:close()
  return list
end

--- Ranges of the runnable lines not run: "3-5, 9".
function M.missed_ranges(runnable, hit)
  local missed = {}
  for n in pairs(runnable) do
    if not (hit and hit[n]) then missed[#missed + 1] = n end
  end
  table.sort(missed)
  local ranges, first, last = {}, nil, nil
  local function flush()
    if first then ranges[#ranges + 1] = first == last and tostring(first) or (first .. "-" .. last) end
  end
  for _, n in ipairs(missed) do
    if last and n == last + 1 then last = n else flush(); first, last = n, n end
  end
  flush()
  return table.concat(ranges, ", ")
end

--- The folders a file counts in: lua/prisn/store/x.lua -> lua, lua/prisn,
-- lua/prisn/store (its own and each parent).
function M.folders(path)
  local list, at = {}, 0
  while true do
    local slash = path:find("/", at + 1, true)
    if not slash then break end
    list[#list + 1] = path:sub(1, slash - 1)
    at = slash
  end
  return list
end

local function percent(hit, total)
  if total == 0 then return 100 end
  return hit * 100 / total
end

--- Per-file and per-folder figures: { files = { {path, hit, total, missed} },
-- folders = { [folder] = {hit, total} } }.
function M.measure(source_dir, hits)
  local result = { files = {}, folders = {} }
  for _, path in ipairs(sources(source_dir)) do
    local full = source_dir .. "/" .. path
    local runnable = M.runnable_lines(listing_of(full), read_file(full))
    local hit, total = 0, 0
    for n in pairs(runnable) do
      total = total + 1
      if hits[path] and hits[path][n] then hit = hit + 1 end
    end
    result.files[#result.files + 1] = { path = path, hit = hit, total = total,
      missed = M.missed_ranges(runnable, hits[path]) }
    for _, folder in ipairs(M.folders(path)) do
      local f = result.folders[folder] or { hit = 0, total = 0 }
      f.hit, f.total = f.hit + hit, f.total + total
      result.folders[folder] = f
    end
  end
  return result
end

local function write_report(result, path)
  local out = assert(io.open(path, "w"))
  out:write("# Lua line coverage per file: covered/runnable, then the lines never run\n")
  for _, f in ipairs(result.files) do
    out:write(string.format("%-52s %5d/%-5d %5.1f%%  %s\n", f.path, f.hit, f.total,
      percent(f.hit, f.total), f.missed))
  end
  out:close()
end

local function main(counts_dir, source_dir, report)
  if not (counts_dir and source_dir and report) then
    io.stderr:write("usage: prisn lua contrib/coverage.lua COUNTS_DIR SOURCE_DIR REPORT_FILE\n")
    os.exit(2)
  end
  local result = M.measure(source_dir, merge_dir(counts_dir))
  local names = {}
  for folder in pairs(result.folders) do names[#names + 1] = folder end
  table.sort(names)
  for _, folder in ipairs(names) do
    local f = result.folders[folder]
    print(string.format("  %-36s %6d/%-6d %5.1f%%", folder .. "/", f.hit, f.total, percent(f.hit, f.total)))
  end
  write_report(result, report)
end

if arg and arg[0] and arg[0]:match("coverage%.lua$") then
  main(arg[1], arg[2], arg[3])
end

return M
