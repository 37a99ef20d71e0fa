-- prisn.envfile: environment variables as users write them — env files
-- (`--env-file`, `prisn secret set --from-env-file`) and KEY=VALUE words
-- (`-e`, `prisn secret set KEY=VALUE`, `--from-file KEY=PATH`). One parser,
-- so the same file means the same thing wherever it is given.
--
-- The env file format (docs/RUN.md, "Env files", says it for users):
--   * one KEY=VALUE per line; a line ends at \n, a \r before it is dropped;
--     a UTF-8 byte order mark at the start of the file is ignored
--   * blank lines, and lines whose first non-blank character is #, are
--     skipped
--   * an `export ` before the key is ignored; blanks around = are allowed
--   * KEY: letters, digits and _, not starting with a digit
--   * an unquoted value is the rest of the line without the blanks around
--     it; a # preceded by a blank starts a comment (`A=b # note` is "b",
--     `URL=http://h/#frag` keeps its #)
--   * '...' is taken literally; "..." knows the escapes \n \r \t \" \\ \$
--     and no other; either must close on its line, and only blanks or a
--     # comment may follow
--   * `KEY=` and `KEY=""` are the empty string
--   * no variable expansion ($HOME stays as written), no multi-line values
--   * a key given twice is an error, as is a NUL byte
--
-- The one rule above all: a value is never part of a message. Errors name
-- the file, the line number and the key when there is one ("line 3 of
-- .env: the value of PASSWORD has no closing quote"), never what the line
-- holds, so a secret typed in the wrong place cannot reach a terminal or a
-- log by way of an error.
local errors = require("prisn.error")

local M = {}

M.KEY_RULE = "letters, digits and '_', not starting with a digit"
M.HINT = "write one KEY=VALUE per line; quote a value with '...' or \"...\" (docs/RUN.md, Env files)"

local KEY_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"

--- True when `key` is a valid environment variable name.
function M.valid_key(key)
  return type(key) == "string" and key:match(KEY_PATTERN) ~= nil
end

--- A key as it may appear in a message: up to the first '=' (what follows
-- could be a value typed in the wrong place), printable, short.
function M.shown_key(key)
  local head = tostring(key):match("^[^=]*"):gsub("[%c\128-\255]", "?")
  if #head > 64 then head = head:sub(1, 64) .. "..." end
  return head
end

--- Splits a KEY=VALUE word (the value may be empty or hold '='). Returns
-- key, value; raises a usage error naming `what` ("-e #2", "argument 1")
-- when there is no '=' or the key is not a variable name -- without the
-- word, which may be a value typed in the wrong place.
function M.assignment(word, what)
  local key, value = word:match("^([^=]*)=(.*)$")
  if not key then
    errors.usage(string.format("%s is not KEY=VALUE", what),
      "write each variable as KEY=VALUE, e.g. API_URL=http://localhost")
  end
  if not M.valid_key(key) then
    errors.usage(string.format("%s: invalid key %q: use %s", what, M.shown_key(key), M.KEY_RULE),
      "keys become environment variable names, like DATABASE_URL")
  end
  return key, value
end

local ESCAPES = { n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["$"] = "$" }

-- The value in `raw` (all that follows KEY=). Returns the value, or nil
-- and the problem (a phrase about "the value of KEY").
local function value_of(raw)
  local rest = raw:gsub("^%s+", "")
  local quote = rest:sub(1, 1)
  if quote ~= "'" and quote ~= '"' then
    -- Unquoted: up to a comment (# after a blank), blanks around removed.
    local cut = raw:find("%s#")
    if cut then raw = raw:sub(1, cut) end
    return (raw:gsub("^%s+", ""):gsub("%s+$", ""))
  end
  local out, i = {}, 2
  while true do
    local c = rest:sub(i, i)
    if c == "" then return nil, "has no closing " .. quote end
    if c == quote then break end
    if c == "\\" and quote == '"' then
      local escaped = ESCAPES[rest:sub(i + 1, i + 1)]
      if not escaped then return nil, "has an unknown escape (known: \\n \\r \\t \\\" \\\\ \\$)" end
      out[#out + 1] = escaped
      i = i + 2
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  local after = rest:sub(i + 1)
  if not (after:match("^%s*$") or after:match("^%s+#")) then
    return nil, "is followed by text after its closing quote"
  end
  return table.concat(out)
end

--- Parses the text of an env file (`path` names it in messages). Returns a
-- list of { key, value, line = number } in file order; raises a usage
-- error naming the file, the line and the key (never the value) for
-- anything the format does not allow.
function M.parse(text, path)
  local entries, first_line = {}, {}
  local n = 0
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local function bad(problem)
      errors.usage(string.format("line %d of %s: %s", n, path, problem), M.HINT)
    end
    line = line:gsub("\r$", "")
    local stripped = line:match("^%s*(.-)%s*$")
    if stripped ~= "" and stripped:sub(1, 1) ~= "#" then
      local body = stripped:gsub("^export%s+", "")
      local key, rest = body:match("^([^=]-)%s*=(.*)$")
      if not key then bad("not KEY=VALUE") end
      if not M.valid_key(key) then bad(string.format("invalid key %q: use %s", M.shown_key(key), M.KEY_RULE)) end
      local value, problem = value_of(rest)
      if not value then bad("the value of " .. key .. " " .. problem) end
      if value:find("\0", 1, true) then bad("the value of " .. key .. " holds a NUL byte") end
      if first_line[key] then bad(string.format("%s is set again (first on line %d)", key, first_line[key])) end
      first_line[key] = n
      entries[#entries + 1] = { key, value, line = n }
    end
  end
  return entries
end

--- Reads and parses the env file at `path`; `flag` ("--env-file") names
-- where it was given in the message when it cannot be read.
function M.read(path, flag)
  local f, err = io.open(path, "rb")
  if not f then
    errors.raise("ENOENT", string.format("%s: cannot read %s: %s", flag, path, tostring(err):gsub("^.-: ", "")),
      { hint = "check the path given to " .. flag })
  end
  local text = f:read("a")
  f:close()
  return M.parse(text, path)
end

--- The environment of `--env-file FILE` (a path, or nil) and `-e KEY=VALUE`
-- words (a list, or nil): env (KEY -> value) and keys (the names, each
-- once, in the order given). A -e word overrides the file's value.
function M.collect(file, words)
  local env, keys = {}, {}
  local function set(key, value)
    if env[key] == nil then keys[#keys + 1] = key end
    env[key] = value
  end
  if file then
    for _, entry in ipairs(M.read(file, "--env-file")) do set(entry[1], entry[2]) end
  end
  for i, word in ipairs(words or {}) do set(M.assignment(word, "-e #" .. i)) end
  return env, keys
end

--- A process environment given as a "K=V" list (what prisn.core.proc and
-- the runners take) as a table; entries without "=" are skipped.
function M.list_to_table(list)
  local env = {}
  for _, kv in ipairs(list or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if k then env[k] = v end
  end
  return env
end

return M
