-- prisn.secrets.keyring: the master key that secrets are encrypted under.
--
-- The key is 32 random bytes in $PRISN_HOME/master.key, never in state.db,
-- so a copy of the database alone reveals nothing. The file is created on
-- first use (load with create = true), mode 0600, and must stay 0600: a key
-- file that group or others may read is refused, as ssh refuses such a key.
-- Its format is two lines of text, so it can be backed up and checked by eye:
--
--   prisn master key v1
--   <the 32-byte key in unpadded base64url: 43 characters>
--
-- A key is known by its id: the first 8 hex digits of BLAKE2b-256 of the key
-- (prisn.core.crypto.hash). Every ciphertext is stored with the id of the key
-- that sealed it, and state.db records the id of the key all of them are
-- under (table secret_keyring, see prisn.store.secrets), so a mismatched
-- master.key is named as such instead of failing as "damaged data".
--
-- Rotation (rotate) and why a crash at any point loses nothing:
--
--   1. A new key is written to master.key.new (temporary file, fsync,
--      rename, fsync of the directory): it is on disk before any row uses it.
--   2. One transaction re-encrypts every secret under the new key and sets
--      secret_keyring to the new id, with PRAGMA synchronous=FULL so the
--      commit is durable (WAL fsync) before step 3 — with prisn's usual
--      NORMAL a power cut could undo a commit whose key was already gone.
--   3. master.key.new is renamed over master.key (atomic), directory fsynced.
--
--   master.key is replaced only after the commit, so until then the old key
--   is where it always was; after the commit the new key is in
--   master.key.new or master.key. The database says which is in use: on
--   load, a master.key.new is settled against secret_keyring — the new id
--   means the commit happened (finish step 3), anything else means it did
--   not (delete master.key.new, which sealed nothing that survived). With
--   neither key matching the database both files are left alone for the
--   operator. The old key is deleted by step 3: rotation exists to retire it.
--
-- Keys live in Lua strings, which cannot be wiped; they are kept out of the
-- keyring table itself (in a weak side table), so logging or serializing a
-- keyring can never print a key.
local uv = require("luv")
local crypto = require("prisn.core.crypto")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local store = require("prisn.store")
local secrets = require("prisn.store.secrets")

local M = {}

M.FILE = "master.key"
M.PENDING_SUFFIX = ".new"
M.HEADER = "prisn master key v1"
M.MODE = tonumber("600", 8)
M.KEY_BYTES = 32

local RESTORE_HINT = "restore the master.key that belongs to this state.db from your backup "
  .. "(see docs/SERVER.md); without it these secrets cannot be read and must be set again"

-- keyring -> { [key_id] = key }: the keys, out of sight of anything that walks
-- the keyring table.
local KEYS = setmetatable({}, { __mode = "k" })

--- The path of the master key file in `home`.
function M.path(home)
  return home .. "/" .. M.FILE
end

--- A key's id: the first 8 hex digits of its BLAKE2b-256 digest.
function M.key_id(key)
  return crypto.to_hex(crypto.hash(key)):sub(1, 8)
end

--- The master key file's content for `key`.
function M.encode(key)
  assert(type(key) == "string" and #key == M.KEY_BYTES, "keyring.encode: key must be 32 bytes")
  return M.HEADER .. "\n" .. crypto.to_base64url(key) .. "\n"
end

--- The key in master key file content `text`, or nil and a message.
function M.decode(text)
  local b64 = text:match("^" .. M.HEADER .. "\n([%w_%-]+)\n?$")
  if not b64 then return nil, "it does not start with '" .. M.HEADER .. "' followed by the key" end
  local key = crypto.from_base64url(b64)
  if not key or #key ~= M.KEY_BYTES then return nil, "the key is not 32 bytes of base64url" end
  return key
end

-- Files ----------------------------------------------------------------------

-- Makes a rename or link in `dir` durable: fsync of the directory.
local function fsync_dir(dir)
  local fd = uv.fs_open(dir, "r", 0)
  if not fd then return end
  uv.fs_fsync(fd)
  uv.fs_close(fd)
end

local function fail_file(path, code, problem, hint)
  errors.raise(code, string.format("master key %s: %s", path, problem), { hint = hint })
end

-- The key in `path`, or nil when there is no such file. Raises when it is
-- unreadable, open to others or malformed.
local function read_key(path)
  local st, err, code = uv.fs_stat(path)
  if not st then
    if code == "ENOENT" then return nil end
    fail_file(path, code or "EIO", err or "cannot stat", "check that you own PRISN_HOME")
  end
  if st.type ~= "file" then fail_file(path, "EINVAL", "not a regular file", RESTORE_HINT) end
  if st.mode & tonumber("077", 8) ~= 0 then
    fail_file(path, "insecure_key_file", string.format("mode %o lets other users read it",
      st.mode & tonumber("777", 8)), "chmod 600 " .. path .. " (and consider rotating the key: "
      .. "prisn secret rotate-key)")
  end
  local text, rerr, rcode = fs.read_file(path)
  if not text then fail_file(path, rcode or "EIO", rerr or "cannot read", "check that you own PRISN_HOME") end
  local key, problem = M.decode(text)
  if not key then fail_file(path, "invalid_key_file", problem, RESTORE_HINT) end
  return key
end

-- Creates `path` holding `key` unless it exists: written to a temporary file,
-- then hard-linked into place, which fails when another process got there
-- first. Returns the key the file holds (ours, or the other process's).
local function create_key_file(home, path, key)
  local tmp = string.format("%s.%d.tmp", path, uv.os_getpid())
  local ok, err, code = fs.write_atomic(tmp, M.encode(key), M.MODE)
  if ok then ok, err, code = uv.fs_link(tmp, path) end
  uv.fs_unlink(tmp)
  if not ok then
    if code == "EEXIST" then return read_key(path) end
    fail_file(path, code or "EIO", "cannot create it: " .. tostring(err),
      "check that PRISN_HOME exists and that you may write to it ('prisn doctor' checks it)")
  end
  fsync_dir(home)
  return key
end

-- Writes `path` (replacing it) holding `key`, durably.
local function replace_key_file(home, path, key)
  local ok, err, code = fs.write_atomic(path, M.encode(key), M.MODE)
  if not ok then
    fail_file(path, code or "EIO", "cannot write it: " .. tostring(err),
      "check that you may write to PRISN_HOME and that the disk is not full")
  end
  fsync_dir(home)
end

-- The keyring ----------------------------------------------------------------

local Keyring = {}
Keyring.__index = Keyring
Keyring.__name = "prisn.keyring"

function Keyring:__tostring()
  return "prisn.keyring (master key " .. self.id .. ")"
end

--- A keyring holding `key` as its current key (home: where its files are;
-- load is the usual way to get one, this is for rotation and specs).
function M.new(key, home)
  assert(type(key) == "string" and #key == M.KEY_BYTES, "keyring.new: key must be 32 bytes")
  local kr = setmetatable({ home = home, path = home and M.path(home), id = M.key_id(key) }, Keyring)
  KEYS[kr] = { [kr.id] = key }
  return kr
end

--- True when the keyring holds the key with id `key_id`.
function Keyring:has(key_id)
  return KEYS[self][key_id] ~= nil
end

--- Encrypts `plaintext` under the current key, bound to `ad`. Returns the
-- sealed bytes and the id of the key that sealed them.
function Keyring:seal(plaintext, ad)
  return crypto.aead_encrypt(KEYS[self][self.id], plaintext, ad), self.id
end

--- Decrypts what seal made under key `key_id` with the same `ad`. `what`
-- names the data for messages ("secret 'db' in namespace 'default'").
-- Raises "key_unavailable" when that key is not held and "EDECRYPT" when the
-- data is damaged or belongs to another row; both with http_status 500.
function Keyring:open(key_id, sealed, ad, what)
  local key = KEYS[self][key_id]
  if not key then
    errors.raise("key_unavailable", string.format("%s is encrypted under master key %s, but %s holds key %s",
      what, tostring(key_id), self.path or "the keyring", self.id), { hint = RESTORE_HINT, http_status = 500 })
  end
  local plaintext = crypto.aead_decrypt(key, sealed, ad)
  if not plaintext then
    errors.raise("EDECRYPT", string.format("%s cannot be decrypted: its stored data is damaged "
      .. "or was copied from another secret", what),
      { hint = "set the secret again, or restore state.db from a backup", http_status = 500 })
  end
  return plaintext
end

-- Makes `kr` hold only `key`, as its current key.
local function switch(kr, key)
  kr.id = M.key_id(key)
  KEYS[kr] = { [kr.id] = key }
end

-- Loading and recovery -------------------------------------------------------

local function active_key_id(home, db)
  if db then return secrets.active_key_id(db) end
  local own = store.open(home)
  local ok, id = pcall(secrets.active_key_id, own)
  own:close()
  if not ok then error(id, 0) end
  return id
end

-- Settles a master.key.new left by an interrupted rotation (see the header)
-- and returns the key master.key holds afterwards (nil when none).
local function settle(home, key, pending, db)
  local path = M.path(home)
  local pending_path = path .. M.PENDING_SUFFIX
  local active = active_key_id(home, db)
  local pending_id = M.key_id(pending)
  if active == pending_id or (key == nil and active == nil) then
    -- The rotation committed (or nothing uses any key): finish it.
    local ok = uv.fs_rename(pending_path, path)
    if not ok then replace_key_file(home, path, pending) end
    fsync_dir(home)
    return pending
  end
  if key and (active == nil or active == M.key_id(key)) then
    -- It did not commit: the new key sealed nothing that survived.
    uv.fs_unlink(pending_path)
    fsync_dir(home)
  end
  return key
end

-- Removes temporary key files (master.key*.<pid>.tmp) whose writer is gone:
-- a process killed while writing one leaves it behind.
local function remove_stale_temporaries(home)
  for _, entry in ipairs(fs.list_dir(home)) do
    local pid = entry.name:match("^" .. M.FILE:gsub("%.", "%%.") .. "[%w.]*%.(%d+)%.tmp$")
    if pid then
      local _, _, code = uv.kill(tonumber(pid), 0)
      if code == "ESRCH" then uv.fs_unlink(home .. "/" .. entry.name) end
    end
  end
end

--- The keyring of `home` (PRISN_HOME). `opts`:
--   create  true: create master.key (random, 0600) when there is none;
--           otherwise a missing master.key gives nil
--   db      the open state database, to settle an interrupted rotation
--           (default: opened for that moment, only when one is pending)
-- Temporary key files left by a killed process are removed.
-- Raises a prisn.error when the file is unreadable, readable by others or
-- malformed. The keyring has `id` (the current key's id), `home`, `path`.
function M.load(home, opts)
  assert(type(home) == "string", "keyring.load: home must be a path")
  opts = opts or {}
  local path = M.path(home)
  remove_stale_temporaries(home)
  local key = read_key(path)
  local pending = read_key(path .. M.PENDING_SUFFIX)
  if pending then key = settle(home, key, pending, opts.db) end
  if not key then
    if not opts.create then return nil end
    key = create_key_file(home, path, crypto.aead_keygen())
  end
  return M.new(key, home)
end

-- Rotation --------------------------------------------------------------------

--- Re-encrypts every secret under a new master key and retires the old one,
-- crash-safely (see the header). `kr` is switched to the new key in place,
-- so a server holding it goes on without reloading. Returns
-- { old_key_id, key_id, secrets = number re-encrypted }. Raises a prisn.error
-- when a secret cannot be decrypted (nothing is changed then) or a file
-- cannot be written.
function M.rotate(kr, db)
  assert(getmetatable(kr) == Keyring and kr.home, "keyring.rotate: needs a keyring from keyring.load")
  assert(not db:in_transaction(), "keyring.rotate: must not run inside a transaction")
  local home, path = kr.home, kr.path
  local pending_path = path .. M.PENDING_SUFFIX
  -- A leftover of an earlier, interrupted rotation is settled first.
  local leftover = read_key(pending_path)
  if leftover then
    local key = settle(home, KEYS[kr][kr.id], leftover, db)
    if key then switch(kr, key) end
  end
  local old_id = kr.id
  local new_key
  repeat new_key = crypto.aead_keygen() until M.key_id(new_key) ~= old_id
  local target = M.new(new_key, home)

  -- 1. The new key on disk before anything is sealed under it.
  replace_key_file(home, pending_path, new_key)
  -- 2. Everything re-encrypted, in one durable transaction.
  local ok, result = pcall(store.durably, db, secrets.reencrypt, db, kr, target)
  if not ok then
    -- Only a transaction known not to have committed lets the new key go;
    -- when the database cannot even be asked, master.key.new stays for the
    -- next load to settle.
    local asked, active = pcall(secrets.active_key_id, db)
    if not asked then error(result, 0) end
    if active ~= target.id then
      uv.fs_unlink(pending_path)
      fsync_dir(home)
      error(result, 0)
    end
    -- The commit reported an error although it took effect.
    result = secrets.count(db)
  end
  -- Committed: the new key is the one in use, whatever happens next.
  switch(kr, new_key)
  -- 3. master.key replaced. Should the rename fail (another process settled
  -- master.key.new meanwhile), write the key from memory instead.
  if not uv.fs_rename(pending_path, path) then replace_key_file(home, path, new_key) end
  fsync_dir(home)
  return { old_key_id = old_id, key_id = kr.id, secrets = result }
end

return M
