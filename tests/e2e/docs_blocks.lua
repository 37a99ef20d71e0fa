-- Runs the shell blocks of a Markdown page against the real binary, so the
-- commands a page shows cannot rot. Used by docs_guides_spec.lua and
-- examples_spec.lua.
--
-- A page marks what a fenced block is by its info string:
--
--   ```console      "$ COMMAND" lines, each followed by the output it prints
--                   (stdout and stderr together). A line "..." (indented or
--                   not) stands for any number of lines, "..." inside a line
--                   for any text, and
--                   a run of blanks matches any run (aligned columns). A
--                   command must print what is shown, and exit 0 unless a
--                   line it shows starts with "Error:" (a failure that is
--                   the point; a job's own failure is shown with
--                   `|| echo "exit $?"`). A command ending in "\" goes on
--                   on the next line.
--   ```sh           a script run with `bash -e`; it must exit 0. A variable it
--                   assigns at the start of a line (`ID=$(curl ...)`) is kept
--                   for every block after it: that is how a page hands an id
--                   one command printed to the commands that name it.
--   ```console skip: REASON   (or ```sh skip: REASON) not run; the spec prints
--                   each such block with its reason, so none is skipped silently.
--
--   ```lua file: NAME  (any language) the block is written to NAME in the
--                   page's folder, for the blocks after it: the file a page
--                   shows is the file its commands use.
--
-- Blocks of other languages (lua, python, text, ...) are not commands. A
-- fence without an info string is an error: every block says what it is.
--
-- The blocks of one page run in order, in one folder, with one environment
-- (PATH starts with a folder holding `prisn`, the binary under test; a
-- temporary PRISN_HOME). Each command runs in a bash of its own, so a `cd`
-- or a variable set in a console command lasts for that command (a page
-- joins them with && when it needs both); only the variables of ```sh
-- blocks, as above, outlive their block. Ports a page shows for its services (8000, 8080, 8081) are
-- swapped for free ones in the commands and in the output, so parallel tests
-- never collide; so are the system folders a page writes to (/backup/prisn,
-- /usr/local/bin), for temporary ones (run_page's `swaps`).
local h = require("e2e.helper")
local uv = require("luv")

local M = {}

-- The service ports a page may show; each is replaced by a free port.
M.PAGE_PORTS = { "8000", "8080", "8081" }

local COMMAND_TIMEOUT_MS = 120000

--- The fenced blocks of `text`: { kind, skip, body, line } in order. Raises
--- on a fence without an info string.
function M.parse(text, name)
  local list, current = {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    -- A fence may be indented, inside a list item; its lines lose that indent.
    local indent, fence, info = line:match("^( *)(```+)%s*(.-)%s*$")
    if fence and not current then
      assert(info ~= "", string.format("%s:%d: a fenced block without a language", name or "?", n))
      local kind, rest = info:match("^(%S+)%s*(.*)$")
      current = { kind = kind, skip = rest:match("^skip:%s*(.+)$"), file = rest:match("^file:%s*(%S+)$"),
        body = {}, line = n, indent = #indent }
    elseif fence and current then
      current.body = table.concat(current.body, "\n")
      list[#list + 1] = current
      current = nil
    elseif current then
      current.body[#current.body + 1] = line:sub(1, current.indent):match("^ *$") and line:sub(current.indent + 1)
        or line
    end
  end
  assert(not current, (name or "?") .. ": a fenced block is not closed")
  return list
end

--- The indented code blocks of `text` (Markdown's other kind, which says
--- nothing of what it holds, so no runner could tell a command from output):
--- the line numbers where one starts. A line indented 4 more than the text
--- around it (6 inside a list item), after a blank line, outside a fence.
function M.indented_blocks(text)
  local found, n = {}, 0
  local in_fence, blank_before, in_list = false, true, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^ *```") then
      in_fence = not in_fence
    elseif not in_fence then
      local spaces = #line:match("^( *)")
      if line:match("^%s*$") then
        blank_before = true
      else
        if blank_before and spaces >= (in_list and 6 or 4) then found[#found + 1] = n end
        if spaces == 0 then in_list = line:match("^[-*] ") or line:match("^%d+%. ") end
        blank_before = false
      end
    end
  end
  return found
end

--- The commands of a console block: { { command, expected = {lines} } }.
function M.commands(body)
  local out, pending = {}, nil
  for line in (body .. "\n"):gmatch("([^\n]*)\n") do
    if pending then
      pending.command = pending.command .. "\n" .. line
      if not line:match("\\$") then pending = nil end
    else
      local command = line:match("^%$ (.*)$")
      if command then
        local entry = { command = command, expected = {} }
        out[#out + 1] = entry
        if command:match("\\$") then pending = entry end
      elseif #out > 0 then
        local e = out[#out].expected
        e[#e + 1] = line
      end
    end
  end
  for _, entry in ipairs(out) do
    while #entry.expected > 0 and entry.expected[#entry.expected] == "" do
      entry.expected[#entry.expected] = nil
    end
  end
  return out
end

-- An expected line as an anchored Lua pattern ("..." is any text).
local function line_pattern(line)
  local parts, from = {}, 1
  local function literal(piece) return (piece:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end
  while true do
    local at, to = line:find("...", from, true)
    if not at then break end
    parts[#parts + 1] = literal(line:sub(from, at - 1))
    from = to + 1
  end
  parts[#parts + 1] = literal(line:sub(from)) -- a line ending in "." keeps it
  return "^" .. table.concat(parts, ".-") .. "$"
end

-- Aligned columns widen with their values: runs of blanks compare as one.
local function squeeze(s) return (s:gsub("%s+$", ""):gsub("%s+", " ")) end

-- Whether `actual` lines (from i) match `expected` lines (from j).
local function match_lines(expected, actual, j, i)
  j, i = j or 1, i or 1
  if j > #expected then return i > #actual end
  if expected[j]:match("^%s*%.%.%.$") then
    for k = i, #actual + 1 do
      if match_lines(expected, actual, j + 1, k) then return true end
    end
    return false
  end
  if i > #actual then return false end
  if not squeeze(actual[i]):match(line_pattern(squeeze(expected[j]))) then return false end
  return match_lines(expected, actual, j + 1, i + 1)
end

--- Whether the text `output` is what `expected` (a list of lines) shows.
function M.output_matches(expected, output)
  local actual = {}
  for line in output:gmatch("([^\n]*)\n") do actual[#actual + 1] = line end
  local tail = output:match("[^\n]+$")
  if tail then actual[#actual + 1] = tail end
  while #actual > 0 and actual[#actual] == "" do actual[#actual] = nil end
  return match_lines(expected, actual)
end

--- A TCP port nobody listens on now.
function M.free_port()
  local tcp = uv.new_tcp()
  assert(tcp:bind("127.0.0.1", 0))
  local port = tcp:getsockname().port
  tcp:close()
  uv.run("nowait")
  return tostring(port)
end

-- `text` with the page's ports swapped for the run's.
local function swap_ports(text, ports)
  for shown, real in pairs(ports) do
    if shown:match("^%d+$") then
      text = text:gsub("%f[%d]" .. shown .. "%f[%D]", real)
    else -- a folder: swapped where a path starts with it
      text = text:gsub("%f[%w_./-]" .. shown:gsub("%p", "%%%0") .. "%f[^%w_.-]", (real:gsub("%%", "%%%%")))
    end
  end
  return text
end

--- An environment for a page: a temporary PRISN_HOME and `prisn` first on
--- PATH; `extra` as for h.env.
function M.env(extra)
  local bin = h.tempdir("prisn-docs-bin")
  assert(uv.fs_symlink(h.bin, bin .. "/prisn"))
  assert(uv.fs_chmod(bin, tonumber("755", 8))) -- a page may run prisn as another user
  local env = h.env(extra)
  env.PATH = bin .. ":" .. env.PATH
  env.NO_COLOR = "1"
  -- A spec a page runs (DEVELOPING.md runs one) knows a sanitizer build.
  env.PRISN_SANITIZE = os.getenv("PRISN_SANITIZE")
  return env
end

-- The variables an sh block assigns at the start of a line: what it keeps.
local function assigned(body)
  local names = {}
  for name in ("\n" .. body):gmatch("\n%s*([%a_][%w_]*)=") do names[#names + 1] = name end
  return names
end

-- Runs `script` in bash. `vars` is the page's file of kept variables: read
-- first; `keep` (names) are written to it after the script, as `declare -p`
-- prints them (a name the script did not set is left out).
local function shell(script, env, cwd, vars, keep)
  local prelude = string.format("exec 2>&1\n[ ! -f '%s' ] || . '%s'\n", vars, vars)
  if keep and #keep > 0 then
    script = string.format("%s\n{ declare -p %s 2>/dev/null || true; } >> '%s'", script, table.concat(keep, " "), vars)
  end
  return h.run("/bin/bash", { "-e", "-c", prelude .. script },
    { env = env, cwd = cwd, timeout_ms = COMMAND_TIMEOUT_MS })
end

-- Whether an expected output shows prisn's error (then the command fails).
local function shows_error(expected)
  for _, line in ipairs(expected) do
    if line:match("^Error:") then return true end
  end
  return false
end

local function run_console(block, where, env, cwd, ports, problems, vars)
  for _, entry in ipairs(M.commands(block.body)) do
    local command = swap_ports(entry.command, ports)
    local expected = {}
    for i, line in ipairs(entry.expected) do expected[i] = swap_ports(line, ports) end
    local r = shell(command, env, cwd, vars)
    local bad
    if r.timed_out then
      bad = "timed out"
    elseif r.code ~= 0 and not shows_error(expected) then
      bad = "exit " .. tostring(r.code)
    elseif #expected > 0 and not M.output_matches(expected, r.stdout) then
      bad = "printed something else"
    end
    if bad then
      problems[#problems + 1] = string.format("%s: $ %s\n  %s; it printed:\n%s\n  the page shows:\n%s",
        where, command, bad, r.stdout, table.concat(expected, "\n"))
    end
  end
end

--- Runs the blocks of the page at `path` (shown as `name`) in `cwd` with
--- `env`. Returns the problems (strings; none when every block did what
--- the page says) and the skipped blocks ("name:line: reason").
--- `swaps` maps more of what the page shows to what this run has: absolute
--- folders the page writes to (`/backup/prisn`) to temporary ones, the
--- server's port (`7433`) to the one it got; swapped like the ports.
function M.run_page(path, name, env, cwd, swaps)
  local problems, skipped = {}, {}
  local ports = {}
  for shown, real in pairs(swaps or {}) do ports[shown] = real end
  for _, shown in ipairs(M.PAGE_PORTS) do ports[shown] = M.free_port() end
  local vars = h.tempdir("prisn-docs-vars") .. "/vars"
  for _, block in ipairs(M.parse(assert(h.read(path), "cannot read " .. path), name)) do
    local where = name .. ":" .. block.line
    if block.file then
      h.write(cwd .. "/" .. block.file, swap_ports(block.body, ports) .. "\n")
    elseif block.kind ~= "console" and block.kind ~= "sh" then -- luacheck: ignore 542
      -- not a command: Lua, Python, text, ...
    elseif block.skip then
      skipped[#skipped + 1] = where .. ": " .. block.skip
    elseif block.kind == "sh" then
      local r = shell(swap_ports(block.body, ports), env, cwd, vars, assigned(block.body))
      if r.code ~= 0 then
        problems[#problems + 1] = string.format("%s: the sh block exits %s:\n%s", where, tostring(r.code), r.stdout)
      end
    else
      run_console(block, where, env, cwd, ports, problems, vars)
    end
  end
  for _, s in ipairs(skipped) do io.stdout:write("not run (", s, ")\n") end
  return problems, skipped
end

--- Copies folder `from` to a new temporary folder and returns its path.
function M.copy(from)
  local to = h.tempdir("prisn-docs-page")
  local r = h.run("/bin/cp", { "-a", from .. "/.", to }, { env = { PATH = "/usr/bin:/bin" } })
  assert(r.code == 0, r.stderr)
  -- Readable by all, as a checkout is: a page may hand the folder to a job
  -- that runs as another user.
  assert(uv.fs_chmod(to, tonumber("755", 8)))
  return to
end

return M
