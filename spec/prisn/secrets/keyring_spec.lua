-- prisn.secrets.keyring: the master key file (created 0600, strict format,
-- refused when others may read it), key ids, sealing, rotation, and the
-- crash-safety of rotation: every point where a crash can interrupt it,
-- simulated, and a real kill -9 of a process rotating in a loop.
local uv = require("luv")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")
local keyring = require("prisn.secrets.keyring")
local store = require("prisn.store")
local secrets = require("prisn.store.secrets")
local raised = require("support").raised
local schema = require("prisn.store.migrations")

-- The shipped migrations, plus the secrets table when it is not in them yet.
local function migrations()
  local list = { table.unpack((require("prisn.store.migrations"))) }
  for _, sql in ipairs(list) do
    if sql == schema.secrets then return list end
  end
  list[#list + 1] = schema.secrets
  return list
end

local function shipped()
  for _, sql in ipairs(require("prisn.store.migrations")) do
    if sql == schema.secrets then return true end
  end
  return false
end

local function mode_of(path)
  return uv.fs_stat(path).mode & tonumber("777", 8)
end

local function exists(path)
  return uv.fs_stat(path) ~= nil
end

describe("prisn.secrets.keyring", function()
  local home, db, key_path, pending_path

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    key_path = home .. "/master.key"
    pending_path = key_path .. ".new"
    db = store.open(home, { migrations = migrations() })
  end)

  after_each(function()
    db:close()
    fs.rm_rf(home)
  end)

  describe("load", function()
    it("creates master.key on first use: 0600, a version line and the key in base64url", function()
      assert.is_nil(keyring.load(home))
      assert.is_false(exists(key_path))
      local kr = keyring.load(home, { create = true })
      assert.equal(tonumber("600", 8), mode_of(key_path))
      local text = fs.read_file(key_path)
      local b64 = text:match("^prisn master key v1\n([%w_%-]+)\n$")
      assert.is_truthy(b64, text)
      assert.equal(43, #b64)
      local key = crypto.from_base64url(b64)
      assert.equal(32, #key)
      assert.equal(crypto.to_hex(crypto.hash(key)):sub(1, 8), kr.id)
      assert.matches("^%x%x%x%x%x%x%x%x$", kr.id)
      assert.equal(key_path, kr.path)
      -- Loading again gives the same key; nothing else was left behind.
      assert.equal(kr.id, keyring.load(home, { create = true }).id)
      assert.equal(kr.id, keyring.load(home).id)
      local names = {}
      for _, entry in ipairs(fs.list_dir(home)) do names[#names + 1] = entry.name end
      assert.same({ "master.key", "state.db", "state.db-shm", "state.db-wal" }, names)
    end)

    it("keeps the key out of the keyring table and its string form", function()
      local kr = keyring.load(home, { create = true })
      local key = crypto.from_base64url(fs.read_file(key_path):match("\n([%w_%-]+)"))
      for k, v in pairs(kr) do
        assert.are_not.equal(key, v, "field " .. tostring(k))
      end
      assert.equal("prisn.keyring (master key " .. kr.id .. ")", tostring(kr))
    end)

    it("refuses a key file that others may read", function()
      keyring.load(home, { create = true })
      uv.fs_chmod(key_path, tonumber("644", 8))
      local err = raised(keyring.load, home)
      assert.equal("insecure_key_file", err.code)
      assert.equal("master key " .. key_path .. ": mode 644 lets other users read it", err.message)
      assert.matches("chmod 600", err.hint, 1, true)
    end)

    it("refuses a malformed key file, naming it", function()
      for _, text in ipairs({ "", "prisn master key v2\nAAAA\n", "prisn master key v1\nnot base64!\n",
        "prisn master key v1\n" .. crypto.to_base64url(("k"):rep(31)) .. "\n",
        "prisn master key v1\n" .. crypto.to_base64url(("k"):rep(32)) .. "\nmore\n" }) do
        assert(fs.write_atomic(key_path, text, tonumber("600", 8)))
        local err = raised(keyring.load, home, { create = true })
        assert.equal("invalid_key_file", err.code)
        assert.matches("^master key " .. key_path:gsub("%p", "%%%0") .. ": ", err.message)
      end
    end)

    it("accepts a key file without the final newline", function()
      local key = crypto.aead_keygen()
      assert(fs.write_atomic(key_path, keyring.encode(key):sub(1, -2), tonumber("600", 8)))
      assert.equal(keyring.key_id(key), keyring.load(home).id)
    end)
  end)

  describe("seal and open", function()
    it("round-trip under the current key, bound to the associated data", function()
      local kr = keyring.load(home, { create = true })
      local sealed, id = kr:seal("plain", "ad-1")
      assert.equal(kr.id, id)
      assert.equal("plain", kr:open(id, sealed, "ad-1", "secret 'x'"))
      local err = raised(kr.open, kr, id, sealed, "ad-2", "secret 'x' in namespace 'default'")
      assert.equal("EDECRYPT", err.code)
      assert.equal(500, err.http_status)
      assert.equal("secret 'x' in namespace 'default' cannot be decrypted: its stored data is damaged "
        .. "or was copied from another secret", err.message)
    end)

    it("say which key is missing", function()
      local kr = keyring.load(home, { create = true })
      local err = raised(kr.open, kr, "0badc0de", "x", "ad", "secret 'db' in namespace 'default'")
      assert.equal("key_unavailable", err.code)
      assert.equal("secret 'db' in namespace 'default' is encrypted under master key 0badc0de, but "
        .. key_path .. " holds key " .. kr.id, err.message)
    end)
  end)

  describe("rotate", function()
    local function fill(kr, n)
      for i = 1, n do
        secrets.set(db, kr, i % 2 == 0 and "default" or "prod", "s" .. i, { VALUE = "value-" .. i, N = tostring(i) })
      end
    end

    local function assert_all_readable(kr, n)
      for i = 1, n do
        local values = secrets.get(db, kr, i % 2 == 0 and "default" or "prod", "s" .. i)
        assert.same({ VALUE = "value-" .. i, N = tostring(i) }, values)
      end
    end

    it("re-encrypts every secret under a new key and deletes the old key", function()
      local kr = keyring.load(home, { create = true })
      local old_text = fs.read_file(key_path)
      local old_id = kr.id
      fill(kr, 5)
      local result = keyring.rotate(kr, db)
      assert.same({ old_key_id = old_id, key_id = kr.id, secrets = 5 }, result)
      assert.are_not.equal(old_id, kr.id)
      assert.is_false(exists(pending_path))
      assert.are_not.equal(old_text, fs.read_file(key_path))
      assert.equal(tonumber("600", 8), mode_of(key_path))
      -- Every row is under the new key, and a fresh load (the new key only) reads them all.
      local ids = db:rows("SELECT DISTINCT key_id FROM secrets")
      assert.same({ { key_id = kr.id } }, ids)
      assert.equal(kr.id, secrets.active_key_id(db))
      local fresh = keyring.load(home)
      assert.equal(kr.id, fresh.id)
      assert.is_false(fresh:has(old_id))
      assert_all_readable(fresh, 5)
      -- The old key opens nothing any more.
      local old = keyring.new(crypto.from_base64url(old_text:match("\n([%w_%-]+)")), home)
      assert.equal("key_unavailable", raised(secrets.get, db, old, "prod", "s1").code)
    end)

    it("works with no secrets at all, and twice in a row", function()
      local kr = keyring.load(home, { create = true })
      assert.equal(0, keyring.rotate(kr, db).secrets)
      fill(kr, 2)
      keyring.rotate(kr, db)
      keyring.rotate(kr, db)
      assert_all_readable(keyring.load(home), 2)
    end)

    it("changes nothing when a secret cannot be decrypted", function()
      local kr = keyring.load(home, { create = true })
      fill(kr, 3)
      local before = fs.read_file(key_path)
      db:exec("UPDATE secrets SET data = zeroblob(60) WHERE name = 's2'")
      local err = raised(keyring.rotate, kr, db)
      assert.equal("EDECRYPT", err.code)
      assert.equal(before, fs.read_file(key_path))
      assert.is_false(exists(pending_path))
      assert.equal(keyring.key_id(crypto.from_base64url(before:match("\n([%w_%-]+)"))), kr.id)
      assert.same({ VALUE = "value-1", N = "1" }, secrets.get(db, kr, "prod", "s1"))
      assert.same({ VALUE = "value-3", N = "3" }, secrets.get(db, kr, "prod", "s3"))
      assert.same({ { key_id = kr.id } }, db:rows("SELECT DISTINCT key_id FROM secrets"))
    end)

    it("writes master.key from memory when master.key.new vanished before the rename", function()
      local kr = keyring.load(home, { create = true })
      fill(kr, 2)
      local rename = uv.fs_rename
      uv.fs_rename = function(from, to)
        if from == pending_path then
          uv.fs_unlink(from) -- another process settled it, say
          return nil, "ENOENT: no such file or directory", "ENOENT"
        end
        return rename(from, to)
      end
      local ok, err = pcall(keyring.rotate, kr, db)
      uv.fs_rename = rename
      assert(ok, tostring(err))
      assert.equal(kr.id, keyring.load(home).id)
      assert_all_readable(keyring.load(home), 2)
    end)

    it("restores the synchronous level it raised for the commit", function()
      local kr = keyring.load(home, { create = true })
      assert.equal(1, db:first("PRAGMA synchronous").synchronous) -- NORMAL, as prisn.store opens it
      keyring.rotate(kr, db)
      assert.equal(1, db:first("PRAGMA synchronous").synchronous)
    end)
  end)

  describe("crash safety", function()
    -- The states a crash can leave, made by hand, then settled by load.
    local kr, old_key, new_key

    before_each(function()
      kr = keyring.load(home, { create = true })
      old_key = crypto.from_base64url(fs.read_file(key_path):match("\n([%w_%-]+)"))
      for i = 1, 4 do secrets.set(db, kr, "default", "s" .. i, { V = "value-" .. i }) end
      new_key = crypto.aead_keygen()
    end)

    local function write_pending(key)
      assert(fs.write_atomic(pending_path, keyring.encode(key), tonumber("600", 8)))
    end

    local function assert_readable(k)
      for i = 1, 4 do assert.same({ V = "value-" .. i }, secrets.get(db, k, "default", "s" .. i)) end
    end

    it("before master.key.new is complete: only a temporary file, ignored", function()
      assert(fs.write_atomic(pending_path .. ".123.tmp", "prisn master", tonumber("600", 8)))
      local loaded = keyring.load(home, { create = true, db = db })
      assert.equal(keyring.key_id(old_key), loaded.id)
      assert_readable(loaded)
    end)

    it("after master.key.new, before the commit: the new key is dropped", function()
      write_pending(new_key)
      local loaded = keyring.load(home, { create = true, db = db })
      assert.equal(keyring.key_id(old_key), loaded.id)
      assert.is_false(exists(pending_path))
      assert.equal(keyring.encode(old_key), fs.read_file(key_path))
      assert_readable(loaded)
    end)

    it("after the commit, before the rename: the rotation is finished", function()
      write_pending(new_key)
      secrets.reencrypt(db, kr, keyring.new(new_key, home))
      local loaded = keyring.load(home, { create = true, db = db })
      assert.equal(keyring.key_id(new_key), loaded.id)
      assert.is_false(exists(pending_path))
      assert.equal(keyring.encode(new_key), fs.read_file(key_path))
      assert.equal(tonumber("600", 8), mode_of(key_path))
      assert.is_false(loaded:has(keyring.key_id(old_key)))
      assert_readable(loaded)
    end)

    it("master.key.new matching neither the database nor master.key: both files are kept", function()
      write_pending(new_key)
      local third = crypto.aead_keygen()
      secrets.reencrypt(db, kr, keyring.new(third, home))
      local loaded = keyring.load(home, { db = db })
      assert.equal(keyring.key_id(old_key), loaded.id)
      assert.is_true(exists(pending_path))
      assert.equal("key_unavailable", raised(secrets.get, db, loaded, "default", "s1").code)
    end)

    it("a leftover master.key.new is settled before the next rotation", function()
      write_pending(new_key)
      local result = keyring.rotate(kr, db)
      assert.equal(keyring.key_id(old_key), result.old_key_id)
      assert.is_false(exists(pending_path))
      assert_readable(keyring.load(home))
    end)

    it("without a db handle, load opens the state database to decide", function()
      if not shipped() then
        pending("the secrets migration is not in prisn.store.migrations yet (the lead adds it as entry 4)")
        return
      end
      write_pending(new_key)
      secrets.reencrypt(db, kr, keyring.new(new_key, home))
      assert.equal(keyring.key_id(new_key), keyring.load(home).id)
    end)
  end)

  describe("kill -9 during rotation", function()
    local bin = os.getenv("PRISN_BIN") or "build/prisn"

    it("never loses a secret, whenever the process dies", function()
      if not exists(bin) then
        pending("no prisn binary at " .. bin .. " (set PRISN_BIN)")
        return
      end
      -- Enough secrets that a rotation's transaction takes a while, so kills
      -- land between writing master.key.new and replacing master.key too.
      local n = 300
      local kr = keyring.load(home, { create = true })
      store.transaction(db, function()
        for i = 1, n do secrets.set(db, kr, "default", "s" .. i, { V = "value-" .. i }) end
      end)
      db:close()
      local script = home .. "/rotate.lua"
      assert(fs.write_atomic(script, [[
        local home = arg[1]
        local store = require("prisn.store")
        local keyring = require("prisn.secrets.keyring")
        local secrets = require("prisn.store.secrets")
        local schema = require("prisn.store.migrations")
        local list = { table.unpack(schema) }
        local have = false
        for _, sql in ipairs(list) do have = have or sql == schema.secrets end
        if not have then list[#list + 1] = schema.secrets end
        local db = store.open(home, { migrations = list })
        local kr = keyring.load(home, { db = db })
        while true do keyring.rotate(kr, db) end
      ]], tonumber("600", 8)))
      local keys_seen = {}
      for round = 1, 8 do
        -- Let the child rotate for a while, then kill it mid-flight.
        local delay = string.format("%.3f", 0.03 + 0.017 * round)
        os.execute(string.format("%s lua %s %s >/dev/null 2>&1 & pid=$!; sleep %s; kill -9 $pid 2>/dev/null; "
          .. "wait $pid 2>/dev/null; true", bin, script, home, delay))
        db = store.open(home, { migrations = migrations() })
        local loaded = keyring.load(home, { db = db })
        keys_seen[loaded.id] = true
        assert.is_false(exists(pending_path), "master.key.new settled in round " .. round)
        assert.equal(loaded.id, secrets.active_key_id(db))
        for i = 1, n do
          assert.same({ V = "value-" .. i }, secrets.get(db, loaded, "default", "s" .. i))
        end
        db:close()
      end
      db = store.open(home, { migrations = migrations() })
      local distinct = 0
      for _ in pairs(keys_seen) do distinct = distinct + 1 end
      assert.is_true(distinct > 1, "the child should have completed some rotations")
      -- Killed writers leave temporary key files; load removed them.
      for _, entry in ipairs(fs.list_dir(home)) do
        assert.is_nil(entry.name:match("%.tmp$"), entry.name)
      end
    end)
  end)
end)
