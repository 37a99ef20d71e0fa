-- prisn.store.secrets: set (replace and merge), get, describe, list, delete,
-- env_for; ciphertext only in the table, bound to its row; validation; the
-- database's master key id guarding against mixed keys.
local uv = require("luv")
local cjson = require("cjson")
local fs = require("prisn.fs")
local keyring = require("prisn.secrets.keyring")
local store = require("prisn.store")
local secrets = require("prisn.store.secrets")
local raised = require("support").raised
local schema = require("prisn.store.migrations")

local function migrations()
  local list = { table.unpack((require("prisn.store.migrations"))) }
  for _, sql in ipairs(list) do
    if sql == schema.secrets then return list end
  end
  list[#list + 1] = schema.secrets
  return list
end

describe("prisn.store.secrets", function()
  local home, db, kr

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home, { migrations = migrations() })
    kr = keyring.load(home, { create = true })
  end)

  after_each(function()
    db:close()
    fs.rm_rf(home)
  end)

  describe("set and get", function()
    it("stores values encrypted and gives them back", function()
      local info, created = secrets.set(db, kr, "default", "db", { USER = "app", PASSWORD = "hunter2" })
      assert.is_true(created)
      assert.equal("default", info.namespace)
      assert.equal("db", info.name)
      assert.same({ "PASSWORD", "USER" }, info.keys)
      assert.equal(kr.id, info.key_id)
      assert.is_true(math.type(info.created_at) == "integer" and info.created_at == info.updated_at)
      local values, got = secrets.get(db, kr, "default", "db")
      assert.same({ USER = "app", PASSWORD = "hunter2" }, values)
      assert.same(info, got)
    end)

    it("keeps only ciphertext and key names in the row", function()
      secrets.set(db, kr, "default", "db", { PASSWORD = "hunter2-distinctive" })
      local row = db:first("SELECT *, typeof(data) AS data_type FROM secrets")
      assert.equal("blob", row.data_type)
      assert.equal('["PASSWORD"]', row.keys)
      assert.is_nil(row.data:find("hunter2", 1, true))
      assert.equal(24 + #cjson.encode({ PASSWORD = "hunter2-distinctive" }) + 16, #row.data)
    end)

    it("uses a fresh nonce for every write of the same values", function()
      secrets.set(db, kr, "default", "db", { A = "same" })
      local first = db:first("SELECT data FROM secrets").data
      secrets.set(db, kr, "default", "db", { A = "same" })
      local second = db:first("SELECT data FROM secrets").data
      assert.are_not.equal(first:sub(1, 24), second:sub(1, 24))
    end)

    it("replaces all keys by default and keeps the others with merge", function()
      local first = secrets.set(db, kr, "default", "db", { USER = "app", PASSWORD = "old" })
      local info, created = secrets.set(db, kr, "default", "db", { PASSWORD = "new" })
      assert.is_false(created)
      assert.equal(first.created_at, info.created_at)
      assert.same({ "PASSWORD" }, info.keys)
      assert.same({ PASSWORD = "new" }, secrets.get(db, kr, "default", "db"))
      info = secrets.set(db, kr, "default", "db", { HOST = "db.internal", PASSWORD = "newer" }, { merge = true })
      assert.same({ "HOST", "PASSWORD" }, info.keys)
      secrets.set(db, kr, "default", "db", { USER = "app" }, { merge = true })
      assert.same({ HOST = "db.internal", PASSWORD = "newer", USER = "app" }, secrets.get(db, kr, "default", "db"))
      -- merge on a secret that does not exist yet creates it
      local _, made = secrets.set(db, kr, "default", "new", { A = "1" }, { merge = true })
      assert.is_true(made)
    end)

    it("keeps namespaces apart", function()
      secrets.set(db, kr, "ns-a", "db", { A = "a" })
      secrets.set(db, kr, "ns-b", "db", { B = "b" })
      assert.same({ A = "a" }, secrets.get(db, kr, "ns-a", "db"))
      assert.same({ B = "b" }, secrets.get(db, kr, "ns-b", "db"))
      assert.is_nil(secrets.get(db, kr, "ns-c", "db"))
    end)

    it("returns nil for a secret that does not exist or an invalid name", function()
      assert.is_nil(secrets.get(db, kr, "default", "nope"))
      assert.is_nil(secrets.get(db, kr, "default", "Not Valid"))
      assert.is_nil(secrets.describe(db, "default", "nope"))
    end)

    it("validates, naming the field and never the value", function()
      local err = raised(secrets.set, db, kr, "default", "Bad_Name", { A = "hunter2" })
      assert.equal("invalid", err.code)
      assert.equal("name", err.field)
      err = raised(secrets.set, db, kr, "default", "db", { ["bad-key"] = "hunter2" })
      assert.equal("data.bad-key", err.field)
      err = raised(secrets.set, db, kr, "default", "db", { BIG = ("hunter2"):rep(10000) })
      assert.equal("data.BIG", err.field)
      assert.is_nil(err.message:find("hunter2", 1, true))
      err = raised(secrets.set, db, kr, "", "db", { A = "x" })
      assert.equal("namespace", err.field)
      assert.equal(0, db:first("SELECT count(*) AS n FROM secrets").n)
    end)
  end)

  describe("associated data", function()
    it("makes a ciphertext copied to another row fail to decrypt", function()
      secrets.set(db, kr, "default", "db", { PASSWORD = "one" })
      secrets.set(db, kr, "default", "other", { PASSWORD = "two" })
      secrets.set(db, kr, "prod", "db", { PASSWORD = "three" })
      db:exec("UPDATE secrets SET data = (SELECT data FROM secrets WHERE namespace = 'default' AND name = 'db') "
        .. "WHERE name = 'other' OR namespace = 'prod'")
      local err = raised(secrets.get, db, kr, "default", "other")
      assert.equal("EDECRYPT", err.code)
      assert.equal("secret 'other' in namespace 'default' cannot be decrypted: its stored data is damaged "
        .. "or was copied from another secret", err.message)
      assert.equal("EDECRYPT", raised(secrets.get, db, kr, "prod", "db").code)
      assert.same({ PASSWORD = "one" }, secrets.get(db, kr, "default", "db"))
    end)
  end)

  describe("list, describe and delete", function()
    it("list names and keys by name without decrypting", function()
      secrets.set(db, kr, "default", "zeta", { Z = "1" })
      secrets.set(db, kr, "default", "alpha", { B = "1", A = "2" })
      secrets.set(db, kr, "other", "beta", { C = "1" })
      db:exec("UPDATE secrets SET data = zeroblob(50)") -- listing must not need the ciphertext
      local list = secrets.list(db, "default")
      assert.equal(2, #list)
      assert.equal("alpha", list[1].name)
      assert.same({ "A", "B" }, list[1].keys)
      assert.equal("zeta", list[2].name)
      assert.same({}, secrets.list(db, "empty"))
      assert.same({ "Z" }, secrets.describe(db, "default", "zeta").keys)
    end)

    it("delete says whether there was a secret", function()
      secrets.set(db, kr, "default", "db", { A = "1" })
      assert.is_true(secrets.delete(db, "default", "db"))
      assert.is_false(secrets.delete(db, "default", "db"))
      assert.is_false(secrets.delete(db, "default", "Bad Name"))
      assert.is_nil(secrets.get(db, kr, "default", "db"))
    end)

    it("says whether a secret exists and counts them all, decrypting nothing", function()
      assert.equal(0, secrets.count(db))
      secrets.set(db, kr, "default", "db", { A = "1" })
      secrets.set(db, kr, "ops", "db", { A = "1" })
      secrets.set(db, kr, "ops", "api", { A = "1" })
      assert.is_true(secrets.exists(db, "ops", "api"))
      assert.is_false(secrets.exists(db, "default", "api"))
      assert.is_false(secrets.exists(db, "default", "Bad Name"))
      assert.equal(3, secrets.count(db))
    end)
  end)

  describe("env_for", function()
    it("merges the named secrets in order, a later key winning", function()
      secrets.set(db, kr, "default", "db", { DB_USER = "app", SHARED = "from-db" })
      secrets.set(db, kr, "default", "api", { API_KEY = "k", SHARED = "from-api" })
      assert.same({ DB_USER = "app", API_KEY = "k", SHARED = "from-api" },
        secrets.env_for(db, kr, "default", { "db", "api" }))
      assert.same({}, secrets.env_for(db, kr, "default", {}))
    end)

    it("raises not_found naming the missing secret and how to create it", function()
      secrets.set(db, kr, "prod", "db", { A = "1" })
      local err = raised(secrets.env_for, db, kr, "prod", { "db", "missing" })
      assert.equal("not_found", err.code)
      assert.equal(404, err.http_status)
      assert.equal("secret 'missing' not found in namespace 'prod'", err.message)
      assert.equal("create it with 'prisn secret set missing KEY=VALUE -n prod', or list them with "
        .. "'prisn secret list -n prod'", err.hint)
      assert.equal("invalid", raised(secrets.env_for, db, kr, "prod", { "Bad Name" }).code)
    end)
  end)

  describe("the database's master key", function()
    it("is recorded by the first write", function()
      assert.is_nil(secrets.active_key_id(db))
      secrets.set(db, kr, "default", "db", { A = "1" })
      assert.equal(kr.id, secrets.active_key_id(db))
    end)

    it("refuses writes under another key while secrets exist", function()
      secrets.set(db, kr, "default", "db", { A = "1" })
      local other = keyring.new(require("prisn.core.crypto").aead_keygen(), home)
      local err = raised(secrets.set, db, other, "default", "db2", { A = "1" })
      assert.equal("key_mismatch", err.code)
      assert.equal(string.format("the secrets in the state database are encrypted under master key %s, "
        .. "but this server holds key %s", kr.id, other.id), err.message)
      assert.equal("key_unavailable", raised(secrets.get, db, other, "default", "db").code)
      -- Once no secret is left, the new key may take over.
      secrets.delete(db, "default", "db")
      secrets.set(db, other, "default", "db", { A = "2" })
      assert.equal(other.id, secrets.active_key_id(db))
    end)
  end)

  describe("to_public", function()
    it("shows names, keys and ISO times, and data only when given", function()
      local info = secrets.set(db, kr, "default", "db", { B = "2", A = "1" })
      local public = secrets.to_public(info)
      assert.same({ "namespace", "name", "keys", "created_at", "updated_at" }, (function()
        local fields = {}
        for _, f in ipairs({ "namespace", "name", "keys", "created_at", "updated_at", "data", "key_id" }) do
          if public[f] ~= nil then fields[#fields + 1] = f end
        end
        return fields
      end)())
      assert.same({ "A", "B" }, public.keys)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", public.created_at)
      assert.same({ A = "****" }, secrets.to_public(info, { A = "****" }).data)
    end)
  end)
end)
