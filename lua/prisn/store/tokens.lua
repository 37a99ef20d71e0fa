-- prisn.store.tokens: API tokens, stored only as keyed hashes.
--
-- A token is "prisn_<id>_<secret>": the id (a prisn.ids id) finds the record,
-- the secret (32 random bytes, base64url) proves possession. The database
-- keeps BLAKE2b(secret, key = token.key), never the secret; the key lives in
-- $PRISN_HOME/token.key (0600), so a copy of state.db alone cannot confirm a
-- guessed token. Comparison is constant-time. The whole token is shown once,
-- when it is created.
--
-- Roles: view < edit < admin. Namespaces: a list; "*" (view or admin) means all.
local cjson = require("cjson")
local crypto = require("prisn.core.crypto")
local errors = require("prisn.error")
local ids = require("prisn.ids")
local json_value = require("prisn.output.value")
local store = require("prisn.store")
local fs = require("prisn.fs")
local clock = require("prisn.clock")

local M = {}

local check = store.check

M.ROLES = { view = 1, edit = 2, admin = 3 }
M.KEY_FILE = "token.key"
M.PREFIX = "prisn_"
-- last_used_at is written at most this often per token (ms), so a busy client
-- does not turn every read into a write.
M.LAST_USED_EVERY_MS = 60 * 1000


--- The hashing key, created (32 random bytes, 0600) on first use.
function M.load_key(home)
  local path = home .. "/" .. M.KEY_FILE
  local text = fs.read_file(path)
  if text then
    local key = crypto.from_base64url((text:gsub("%s+$", "")))
    if key and #key == 32 then return key end
    errors.raise("EINVAL", path .. " is damaged",
      { hint = "restore it from a backup; without it every token must be created anew" })
  end
  local key = crypto.random_bytes(32)
  local ok, err, code = fs.write_atomic(path, crypto.to_base64url(key) .. "\n", tonumber("600", 8))
  if not ok then errors.raise(code or "EIO", "cannot write " .. path .. ": " .. tostring(err)) end
  return key
end

local now_ms = clock.now_ms

local function decode_row(row)
  if not row then return nil end
  row.namespaces = cjson.decode(row.namespaces)
  return row
end

local NAME_PATTERN = "^[%w][%w._-]*$"
local NAMESPACE_PATTERN = "^[a-z0-9][a-z0-9-]*$"

--- Checks a namespace name; returns it or raises a 422 prisn.error.
function M.check_namespace(ns)
  if type(ns) ~= "string" or #ns > 63 or not (ns == "*" or ns:match(NAMESPACE_PATTERN)) then
    errors.raise("invalid", string.format("'%s' is not a namespace name", tostring(ns)),
      { hint = "lower-case letters, digits and '-', up to 63 characters", http_status = 422 })
  end
  return ns
end

--- Creates a token. fields: name, role, namespaces (list), expires_at (ms or
-- nil), created_by. Returns the record and the token string (shown once).
function M.create(db, key, fields)
  local role = fields.role
  if not M.ROLES[role] then
    errors.raise("invalid", string.format("'%s' is not a role", tostring(role)),
      { hint = "choose one of: view, edit, admin", http_status = 422 })
  end
  local name = fields.name
  if type(name) ~= "string" or #name > 64 or not name:match(NAME_PATTERN) then
    errors.raise("invalid", string.format("'%s' is not a token name", tostring(name)),
      { hint = "letters, digits, '.', '_' and '-', up to 64 characters", http_status = 422 })
  end
  local namespaces = fields.namespaces or {}
  if #namespaces == 0 then
    errors.raise("invalid", "a token needs at least one namespace",
      { hint = "add --namespace NS (or --namespace '*' for an admin token)", http_status = 422 })
  end
  for _, ns in ipairs(namespaces) do
    M.check_namespace(ns)
    -- A cluster-wide reader (a metrics scraper, a dashboard) is a view
    -- token of '*'; an edit token always names its namespaces.
    if ns == "*" and role == "edit" then
      errors.raise("invalid", "an edit token cannot hold every namespace ('*')",
        { hint = "name the namespaces this token may use, or make an admin token", http_status = 422 })
    end
  end
  local id = ids.new()
  local secret = crypto.random_bytes(32)
  check(db:run("INSERT INTO tokens (id, name, role, namespaces, hash, created_at, created_by, expires_at) "
    .. "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", id, name, role, cjson.encode(namespaces),
    crypto.hash(secret, key), now_ms(), fields.created_by, fields.expires_at))
  return M.get(db, id), M.PREFIX .. id .. "_" .. crypto.to_base64url(secret)
end

function M.get(db, id)
  return decode_row(check(db:first("SELECT * FROM tokens WHERE id = ?", id)))
end

--- Every token, newest first (hashes left out).
function M.list(db)
  local rows = check(db:rows("SELECT id, name, role, namespaces, created_at, created_by, expires_at, "
    .. "revoked_at, last_used_at FROM tokens ORDER BY id DESC"))
  for _, row in ipairs(rows) do decode_row(row) end
  return rows
end

--- Revokes a token. Returns the record; raises not_found.
function M.revoke(db, id)
  local n = check(db:run("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", now_ms(), id))
  local token = M.get(db, id)
  if not token then
    errors.raise("not_found", string.format("token '%s' not found", id),
      { hint = "'prisn token list' shows the token ids", http_status = 404 })
  end
  if n == 0 then
    errors.raise("conflict", string.format("token '%s' is already revoked", id), { http_status = 409 })
  end
  return token
end

--- The token record for a presented token string, or nil and why ("malformed",
-- "unknown", "revoked", "expired"). Constant-time on the secret.
function M.verify(db, key, presented, now)
  local id, secret_text = tostring(presented):match("^prisn_(%w+)_([%w_-]+)$")
  if not id then return nil, "malformed" end
  local secret = crypto.from_base64url(secret_text)
  local token = M.get(db, id)
  if not token or not secret then return nil, "unknown" end
  if not crypto.equal(crypto.hash(secret, key), token.hash) then return nil, "unknown" end
  now = now or now_ms()
  if token.revoked_at then return nil, "revoked" end
  if token.expires_at and token.expires_at <= now then return nil, "expired" end
  if not token.last_used_at or now - token.last_used_at >= M.LAST_USED_EVERY_MS then
    db:run("UPDATE tokens SET last_used_at = ? WHERE id = ?", now, id)
    token.last_used_at = now
  end
  return token
end

--- Whether any usable admin token exists.
function M.has_admin(db)
  local row = check(db:first("SELECT count(*) AS n FROM tokens WHERE role = 'admin' AND revoked_at IS NULL"))
  return row.n > 0
end

--- A token as the API shows it: never the hash.
function M.to_public(token)
  return {
    id = token.id,
    name = token.name,
    role = token.role,
    namespaces = json_value.array(token.namespaces),
    created_at = clock.iso_time(token.created_at, json_value.null),
    created_by = token.created_by or json_value.null,
    expires_at = clock.iso_time(token.expires_at, json_value.null),
    revoked_at = clock.iso_time(token.revoked_at, json_value.null),
    last_used_at = clock.iso_time(token.last_used_at, json_value.null),
  }
end

return M
