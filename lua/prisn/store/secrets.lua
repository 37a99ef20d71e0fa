-- prisn.store.secrets: secrets in the state database, ciphertext only.
--
-- A secret is a named set of KEY -> value pairs in a namespace. The pairs are
-- stored as one JSON object, encrypted with XChaCha20-Poly1305 under the
-- master key (a prisn.secrets.keyring) with a fresh random nonce on every
-- write, and bound to its row by the associated data
-- "prisn-secret\0<namespace>\0<name>": a ciphertext copied to another row
-- does not decrypt. The key NAMES are stored in the clear beside it (`keys`,
-- a sorted JSON array) so that listing never decrypts anything; values exist
-- in plain text only in memory, for the call that needs them.
--
-- Table secret_keyring holds one row: the id of the master key that every
-- secret is encrypted under. Writes check it, so a process holding another
-- key (a replaced or restored master.key) refuses to mix keys in one
-- database; rotation (prisn.secrets.keyring.rotate) changes it in the same
-- transaction as the re-encryption, which is how a restart after a crash
-- tells which key file is current.
--
-- Validation (prisn.secrets): names ^[a-z0-9][a-z0-9-]{0,62}$, keys
-- environment variable names, values strings up to 64 KiB; violations raise
-- "invalid" prisn.errors (422) naming the field, never the value.
local cjson = require("cjson")
local clock = require("prisn.clock")
local errors = require("prisn.error")
local json_value = require("prisn.output.value")
local rules = require("prisn.secrets")
local store = require("prisn.store")

local M = {}

local check = store.check

local now_ms = clock.now_ms

local function describe_secret(ns, name)
  return string.format("secret '%s' in namespace '%s'", name, ns)
end

local function decode_keys(text)
  local ok, list = pcall(cjson.decode, text or "[]")
  if not ok or type(list) ~= "table" then return {} end
  return list
end

local function encode_keys(keys)
  local parts = {}
  for i, key in ipairs(keys) do parts[i] = cjson.encode(key) end
  return "[" .. table.concat(parts, ",") .. "]"
end

-- A row without its ciphertext: what may be shown.
local function info_of(row)
  return { namespace = row.namespace, name = row.name, keys = decode_keys(row.keys),
    key_id = row.key_id, created_at = row.created_at, updated_at = row.updated_at }
end

local function fetch(db, ns, name)
  return check(db:first("SELECT * FROM secrets WHERE namespace = ? AND name = ?", ns, name))
end

-- The values sealed in `row`, decrypted with `kr`.
local function open_row(kr, row)
  local plaintext = kr:open(row.key_id, row.data, rules.associated_data(row.namespace, row.name),
    describe_secret(row.namespace, row.name))
  local ok, values = pcall(cjson.decode, plaintext)
  if not ok or type(values) ~= "table" then
    errors.raise("EDECRYPT", describe_secret(row.namespace, row.name) .. " decrypted to something "
      .. "that is not a JSON object", { hint = "set the secret again", http_status = 500 })
  end
  return values
end

-- Runs `sql` with `params` and the ciphertext bound as a BLOB to :data.
local function run_with_blob(db, sql, params, sealed)
  local stmt = check(db:prepare(sql))
  local ok, err = pcall(function()
    check(stmt:bind(params))
    check(stmt:bind_blob("data", sealed))
    check(stmt:step())
  end)
  stmt:finalize()
  if not ok then error(err, 0) end
end

--- The id of the master key the database's secrets are sealed under, or nil
-- when no secret was ever written.
function M.active_key_id(db)
  local row = check(db:first("SELECT key_id FROM secret_keyring WHERE id = 1"))
  return row and row.key_id
end

local function set_active_key_id(db, key_id)
  check(db:run("INSERT INTO secret_keyring (id, key_id, updated_at) VALUES (1, :key_id, :now) "
    .. "ON CONFLICT (id) DO UPDATE SET key_id = :key_id, updated_at = :now",
    { key_id = key_id, now = now_ms() }))
end

-- Inside a write transaction: makes sure `kr`'s key is the database's key.
local function claim_key(db, kr)
  local active = M.active_key_id(db)
  if active == kr.id then return end
  if active ~= nil then
    if M.count(db) > 0 then
      errors.raise("key_mismatch", string.format("the secrets in the state database are encrypted "
        .. "under master key %s, but this server holds key %s", active, kr.id),
        { hint = "restore the master.key that belongs to this state.db and restart the server; "
          .. "if the key was rotated by another process, restart this one", http_status = 500 })
    end
  end
  set_active_key_id(db, kr.id)
end

--- Creates or replaces secret `name` in namespace `ns` with `values`
-- (KEY -> value). `opts.merge`: keep the existing keys not in `values`
-- (values given win). Returns the secret's info { namespace, name, keys,
-- key_id, created_at, updated_at } and whether it was created. Raises
-- "invalid" (422) naming a bad field, "key_mismatch" when the database's
-- secrets are under another master key.
function M.set(db, kr, ns, name, values, opts)
  opts = opts or {}
  rules.check_namespace(ns)
  rules.check_name(name)
  rules.check_values(values)
  return store.transaction(db, function()
    claim_key(db, kr)
    local row = fetch(db, ns, name)
    local merged = {}
    if opts.merge and row then
      for key, value in pairs(open_row(kr, row)) do merged[key] = value end
    end
    for key, value in pairs(values) do merged[key] = value end
    rules.check_values(merged)
    local sealed, key_id = kr:seal(cjson.encode(merged), rules.associated_data(ns, name))
    local now = now_ms()
    local params = { namespace = ns, name = name, key_id = key_id,
      keys = encode_keys(rules.key_names(merged)), now = now }
    if row then
      run_with_blob(db, "UPDATE secrets SET key_id = :key_id, data = :data, keys = :keys, "
        .. "updated_at = :now WHERE namespace = :namespace AND name = :name", params, sealed)
    else
      run_with_blob(db, "INSERT INTO secrets (namespace, name, key_id, data, keys, created_at, "
        .. "updated_at) VALUES (:namespace, :name, :key_id, :data, :keys, :now, :now)", params, sealed)
    end
    return info_of(fetch(db, ns, name)), row == nil
  end)
end

--- The values of secret `name` (KEY -> value) and its info, or nil when
-- there is no such secret. Raises "key_unavailable" or "EDECRYPT" (500)
-- when it cannot be decrypted.
function M.get(db, kr, ns, name)
  if not rules.valid_name(name) then return nil end
  local row = fetch(db, ns, name)
  if not row then return nil end
  return open_row(kr, row), info_of(row)
end

--- The info of secret `name` ({ namespace, name, keys, key_id, created_at,
-- updated_at }) without decrypting it, or nil.
function M.describe(db, ns, name)
  if not rules.valid_name(name) then return nil end
  local row = check(db:first("SELECT namespace, name, key_id, keys, created_at, updated_at "
    .. "FROM secrets WHERE namespace = ? AND name = ?", ns, name))
  return row and info_of(row)
end

--- The secrets of namespace `ns` by name, as infos (nothing is decrypted).
function M.list(db, ns)
  local rows = check(db:rows("SELECT namespace, name, key_id, keys, created_at, updated_at "
    .. "FROM secrets WHERE namespace = ? ORDER BY name", ns))
  for i, row in ipairs(rows) do rows[i] = info_of(row) end
  return rows
end

--- Whether secret `name` exists in namespace `ns` (nothing is decrypted).
function M.exists(db, ns, name)
  return db:first("SELECT 1 AS x FROM secrets WHERE namespace = ? AND name = ?", ns, name) ~= nil
end

--- The number of secrets in every namespace.
function M.count(db)
  return check(db:first("SELECT count(*) AS n FROM secrets")).n
end

--- Deletes secret `name`; true when there was one.
function M.delete(db, ns, name)
  if not rules.valid_name(name) then return false end
  return check(db:run("DELETE FROM secrets WHERE namespace = ? AND name = ?", ns, name)) > 0
end

--- The environment for a workload given `--secret NAME...`: the variables
-- of the named secrets of namespace `ns`, merged in order (a later secret's
-- key wins). Raises "not_found" naming the first secret that does not exist.
function M.env_for(db, kr, ns, names)
  local env = {}
  for _, name in ipairs(names or {}) do
    rules.check_name(name)
    local values = M.get(db, kr, ns, name)
    if not values then
      local ns_flag = ns ~= "default" and (" -n " .. ns) or ""
      errors.raise("not_found", string.format("secret '%s' not found in namespace '%s'", name, ns),
        { hint = string.format("create it with 'prisn secret set %s KEY=VALUE%s', or list them with "
          .. "'prisn secret list%s'", name, ns_flag, ns_flag), http_status = 404 })
    end
    for key, value in pairs(values) do env[key] = value end
  end
  return env
end

--- Re-encrypts every secret from keyring `from` to keyring `to` and records
-- `to`'s key as the database's, in one transaction. Returns the number of
-- secrets. Raises (changing nothing) when one cannot be decrypted.
function M.reencrypt(db, from, to)
  return store.transaction(db, function()
    local rows = check(db:rows("SELECT * FROM secrets ORDER BY namespace, name"))
    for _, row in ipairs(rows) do
      local ad = rules.associated_data(row.namespace, row.name)
      local plaintext = from:open(row.key_id, row.data, ad, describe_secret(row.namespace, row.name))
      local sealed, key_id = to:seal(plaintext, ad)
      run_with_blob(db, "UPDATE secrets SET key_id = :key_id, data = :data "
        .. "WHERE namespace = :namespace AND name = :name",
        { key_id = key_id, namespace = row.namespace, name = row.name }, sealed)
    end
    set_active_key_id(db, to.id)
    return #rows
  end)
end

-- Public shape ----------------------------------------------------------------


--- The secret as the API and the CLI show it: namespace, name, keys (an
-- array), created_at and updated_at as ISO 8601 UTC. `data` (KEY -> value,
-- already masked or revealed by the caller) is added when given.
function M.to_public(info, data)
  local keys = {}
  for i, key in ipairs(info.keys) do keys[i] = key end
  local public = { namespace = info.namespace, name = info.name, keys = json_value.array(keys),
    created_at = clock.iso_time(info.created_at, json_value.null),
    updated_at = clock.iso_time(info.updated_at, json_value.null) }
  if data then public.data = data end
  return public
end

return M
