-- prisn.secrets: the rules every layer applies to secrets, in one place.
--
-- A secret is a named set of environment variables (KEY -> value) in a
-- namespace, encrypted at rest (prisn.store.secrets, under the master key of
-- prisn.secrets.keyring) and injected into workloads with `--secret NAME`.
-- This module holds what the store, the API and the CLI share: the name and
-- key rules, the size limit, the associated data that binds a ciphertext to
-- its row, masking, and the parsers for `KEY=VALUE` words and env files.
--
-- The one rule above all: a value is never part of a message. Errors name
-- the field ("data.PASSWORD", "line 3 of .env"), never what was in it, so
-- nothing a user typed as a secret can reach a log, an event or a terminal
-- by way of an error.
local errors = require("prisn.error")

local M = {}

M.NAME_MAX = 63
M.VALUE_MAX_BYTES = 64 * 1024
M.KEYS_MAX = 256
M.MASK = "****"

local NAME_PATTERN = "^[a-z0-9][a-z0-9%-]*$"
local KEY_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"

M.NAME_RULE = "1 to 63 lower-case letters, digits and '-', starting with a letter or digit"
M.KEY_RULE = "letters, digits and '_', not starting with a digit"

local function invalid(field, message, hint)
  errors.raise("invalid", message, { field = field, http_status = 422, hint = hint })
end

--- True when `name` is a valid secret name: ^[a-z0-9][a-z0-9-]{0,62}$.
function M.valid_name(name)
  return type(name) == "string" and #name <= M.NAME_MAX and name:match(NAME_PATTERN) ~= nil
end

--- True when `key` is a valid environment variable name.
function M.valid_key(key)
  return type(key) == "string" and key:match(KEY_PATTERN) ~= nil
end

--- Raises an "invalid" prisn.error (422, field "name") unless `name` is a
-- valid secret name; returns it.
function M.check_name(name)
  if not M.valid_name(name) then
    invalid("name", string.format("invalid secret name %s: use %s",
      type(name) == "string" and string.format("%q", name:sub(1, 80)) or "(" .. type(name) .. ")",
      M.NAME_RULE), "for example: db, api-keys, stripe-prod")
  end
  return name
end

--- Raises an "invalid" prisn.error (422, field "namespace") unless `ns` is
-- a non-empty string without NUL bytes (the router decides the rest);
-- returns it.
function M.check_namespace(ns)
  if type(ns) ~= "string" or ns == "" or ns:find("\0", 1, true) then
    invalid("namespace", "invalid namespace: it must be a non-empty name")
  end
  return ns
end

-- A key as it may appear in a message: up to the first '=' (what follows
-- could be a value typed in the wrong place), printable, short.
local function shown_key(key)
  local head = tostring(key):match("^[^=]*"):gsub("[%c\128-\255]", "?")
  if #head > 64 then head = head:sub(1, 64) .. "..." end
  return head
end

--- Checks a table of KEY -> value for a write: at least one key, at most
-- KEYS_MAX, keys environment variable names, values strings of at most
-- VALUE_MAX_BYTES without NUL bytes (environment variables cannot hold
-- one). `field` names the table in messages (default "data"). Raises an
-- "invalid" prisn.error naming the bad field; never shows a value.
function M.check_values(values, field)
  field = field or "data"
  if type(values) ~= "table" or rawlen(values) > 0 then
    invalid(field, string.format("%s must be an object of KEY: value pairs", field))
  end
  local count = 0
  for key, value in pairs(values) do
    count = count + 1
    if not M.valid_key(key) then
      invalid(field .. "." .. shown_key(key), string.format("invalid key %q in %s: use %s",
        shown_key(key), field, M.KEY_RULE), "keys become environment variable names, like DATABASE_URL")
    end
    local where = field .. "." .. key
    if type(value) ~= "string" then
      invalid(where, string.format("the value of %s must be a string, not %s", where,
        type(value) == "userdata" and "null" or type(value)))
    end
    if #value > M.VALUE_MAX_BYTES then
      invalid(where, string.format("the value of %s is %d bytes; the limit is %d (64 KiB)",
        where, #value, M.VALUE_MAX_BYTES))
    end
    if value:find("\0", 1, true) then
      invalid(where, string.format("the value of %s contains a NUL byte, which an environment "
        .. "variable cannot hold", where))
    end
  end
  if count == 0 then
    invalid(field, string.format("%s needs at least one KEY: value pair", field))
  end
  if count > M.KEYS_MAX then
    invalid(field, string.format("%s has %d keys; the limit is %d", field, count, M.KEYS_MAX))
  end
  return values
end

--- The sorted key names of `values`.
function M.key_names(values)
  local keys = {}
  for key in pairs(values) do keys[#keys + 1] = key end
  table.sort(keys)
  return keys
end

--- The associated data that binds a ciphertext to its row:
-- "prisn-secret\0" .. ns .. "\0" .. name. A ciphertext copied to another
-- row (another namespace or name) then fails to decrypt.
function M.associated_data(ns, name)
  return "prisn-secret\0" .. ns .. "\0" .. name
end

--- KEY -> "****" for every key in `keys` (a list of names).
function M.masked(keys)
  local out = {}
  for _, key in ipairs(keys) do out[key] = M.MASK end
  return out
end

-- Parsing what users type -----------------------------------------------------

--- Splits "KEY=VALUE" (the value may be empty or hold '='). Returns key,
-- value; raises a usage error naming `what` (e.g. "argument 2") when there
-- is no '=' or the key is not a variable name — without echoing the word,
-- which may be a value typed in the wrong place.
function M.parse_assignment(word, what)
  local key, value = word:match("^([^=]*)=(.*)$")
  if not key then
    errors.usage(string.format("%s is not KEY=VALUE", what),
      "write each variable as KEY=VALUE, e.g. DB_PASSWORD=..., or use --from-file KEY=PATH")
  end
  if not M.valid_key(key) then
    errors.usage(string.format("%s: invalid key %q: use %s", what, shown_key(key), M.KEY_RULE),
      "keys become environment variable names, like DATABASE_URL")
  end
  return key, value
end

local ESCAPES = { n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["$"] = "$" }

-- The value of a double-quoted env-file value (without its quotes), or nil.
local function unescape_double(body)
  local ok = true
  local value = body:gsub("\\(.)", function(c)
    if not ESCAPES[c] then ok = false end
    return ESCAPES[c]
  end)
  if not ok then return nil end
  return value
end

--- Parses an env file: one KEY=VALUE per line; blank lines and lines
-- starting with '#' are skipped; "export KEY=VALUE" is accepted. A value is
-- taken as written up to the end of the line (trailing spaces dropped), or
-- quoted: '...' literally, "..." with \n \r \t \" \\ \$ escapes. No
-- variable expansion, no multi-line values. Returns a list of { key, value }
-- in file order; raises a usage error naming `path` and the line number
-- (never the line's content) for a malformed line.
function M.parse_env_file(text, path)
  local entries = {}
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local stripped = line:match("^%s*(.-)%s*$")
    if stripped ~= "" and not stripped:match("^#") then
      local function bad(problem)
        errors.usage(string.format("line %d of %s: %s", n, path, problem),
          "write one KEY=VALUE per line; quote a value with '...' or \"...\"")
      end
      local body = stripped:gsub("^export%s+", "")
      local key, rest = body:match("^([^=]-)%s*=%s*(.*)$")
      if not key then bad("not KEY=VALUE") end
      if not M.valid_key(key) then
        bad(string.format("invalid key %q: use %s", shown_key(key), M.KEY_RULE))
      end
      local value
      local quote = rest:sub(1, 1)
      if quote == "'" or quote == '"' then
        local inner, after = rest:match("^" .. quote .. "(.-)" .. quote .. "%s*(.*)$")
        if quote == '"' then
          -- The closing quote is the first one not escaped.
          inner, after = nil, nil
          local i = 2
          while i <= #rest do
            local c = rest:sub(i, i)
            if c == "\\" then
              i = i + 2
            elseif c == '"' then
              inner, after = rest:sub(2, i - 1), rest:sub(i + 1):match("^%s*(.*)$")
              break
            else
              i = i + 1
            end
          end
          if inner then inner = unescape_double(inner) end
          if not inner and after then bad("unknown escape in a double-quoted value") end
        end
        if not inner then bad("unterminated quoted value") end
        if after ~= "" and not after:match("^#") then bad("unexpected text after the quoted value") end
        value = inner
      else
        value = rest
      end
      entries[#entries + 1] = { key, value }
    end
  end
  return entries
end

return M
