-- What each library adds to a binary, from the GNU ld map of its link
-- (contrib/release.sh links with -Wl,-Map and prints this for each target):
--
--   prisn lua contrib/link_sizes.lua prisn.map
--
-- Sums the input sections that end up in the file (code, read-only data,
-- data, unwind tables; not .bss nor debug info) per archive, so the figures
-- add up to about the stripped size.
local M = {}

local KEPT = { "%.text", "%.rodata", "%.data", "%.init_array", "%.fini_array", "%.tdata",
  "%.gcc_except_table", "%.eh_frame" }

local function kept(section)
  for _, prefix in ipairs(KEPT) do
    if section:match("^" .. prefix) then return true end
  end
  return false
end

local LIBC = { "^lib[cm]%.a$", "^S?crt", "^libm%-", "^lib[cm]_nonshared%.a$", "^libpthread%.a$", "^libdl%.a$",
  "^librt%.a$", "^libgcc" }

--- The name a file of the map is reported under.
function M.owner(file)
  local archive = file:match("^(.-)%(") or file
  if archive:match("libprisn_core%.a$") or archive:match("CMakeFiles/") then
    return "prisn (core/ and the embedded Lua)"
  end
  local base = archive:match("([^/]+)$")
  for _, pattern in ipairs(LIBC) do
    if base:match(pattern) then return "libc (static glibc, libgcc)" end
  end
  return base
end

--- { [owner] = bytes } from the text of a map file.
function M.sizes(map)
  local totals = {}
  local in_map, pending = false, nil
  for line in map:gmatch("[^\n]*") do
    if line:match("^Linker script and memory map") then
      in_map = true
    elseif in_map then
      local section, rest = line:match("^ (%.[%w%._%-]+)%s*(.*)$")
      if section and rest == "" then
        pending = section -- a long name: address, size and file follow on the next line
      else
        if not section and pending then section, rest = pending, line end
        pending = nil
        local size, file = (rest or ""):match("^%s*0x%x+%s+0x(%x+)%s+(%S+)")
        if section and size and kept(section) and (file:match("%.a%(") or file:match("%.o$")) then
          local owner = M.owner(file)
          totals[owner] = (totals[owner] or 0) + tonumber(size, 16)
        end
      end
    end
  end
  return totals
end

local function main(path)
  if not path then
    io.stderr:write("usage: prisn lua contrib/link_sizes.lua MAP_FILE\n")
    os.exit(2)
  end
  local f = assert(io.open(path))
  local totals = M.sizes(f:read("a"))
  f:close()
  local names = {}
  for name in pairs(totals) do names[#names + 1] = name end
  table.sort(names, function(a, b) return totals[a] > totals[b] end)
  for _, name in ipairs(names) do
    print(string.format("  %9d  %s", totals[name], name))
  end
end

if arg and arg[0] and arg[0]:match("link_sizes%.lua$") then main(arg[1]) end

return M
