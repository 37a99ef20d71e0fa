-- prisn.secrets: the rules every layer applies to secrets, in one place.
--
-- A secret is a named set of environment variables (KEY -> value) in a
-- namespace, encrypted at rest (prisn.store.secrets, under the master key of
-- prisn.secrets.keyring) and injected into workloads with `--secret NAME`.
-- This module holds what the store, the API and the CLI share: the name and
-- key rules, the size limit, the associated data that binds a ciphertext to
-- its row and masking. Keys are environment variable names; KEY=VALUE words
-- and env files are parsed by prisn.envfile, the one home of that format.
--
-- The one rule above all: a value is never part of a message. Errors name
-- the field ("data.PASSWORD", "line 3 of .env"), never what was in it, so
-- nothing a user typed as a secret can reach a log, an event or a terminal
-- by way of an error.
local envfile = require("prisn.envfile")
local errors = require("prisn.error")

local M = {}

M.NAME_MAX = 63
M.VALUE_MAX_BYTES = 64 * 1024
M.KEYS_MAX = 256
M.MASK = "****"

local NAME_PATTERN = "^[a-z0-9][a-z0-9%-]*$"

M.NAME_RULE = "1 to 63 lower-case letters, digits and '-', starting with a letter or digit"
M.KEY_RULE = envfile.KEY_RULE

local function invalid(field, message, hint)
  errors.raise("invalid", message, { field = field, http_status = 422, hint = hint })
end

--- True when `name` is a valid secret name: ^[a-z0-9][a-z0-9-]{0,62}$.
function M.valid_name(name)
  return type(name) == "string" and #name <= M.NAME_MAX and name:match(NAME_PATTERN) ~= nil
end

--- True when `key` is a valid environment variable name.
M.valid_key = envfile.valid_key

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

local shown_key = envfile.shown_key

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

return M
