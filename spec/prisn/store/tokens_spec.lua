local uv = require("luv")
local store = require("prisn.store")
local tokens = require("prisn.store.tokens")

describe("prisn.store.tokens", function()
  local home, db, key
  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-tokens-XXXXXX"))
    db = store.open(home)
    key = tokens.load_key(home)
  end)
  after_each(function()
    db:close()
    os.execute("rm -rf '" .. home .. "'")
  end)

  it("keeps its hashing key 0600 and reuses it", function()
    assert.equal(32, #key)
    assert.equal(tonumber("600", 8), uv.fs_stat(home .. "/token.key").mode & tonumber("777", 8))
    assert.equal(key, tokens.load_key(home))
  end)

  it("creates a token shown once and stores only a keyed hash", function()
    local record, token = tokens.create(db, key, { name = "ci", role = "edit", namespaces = { "ns-a" } })
    assert.matches("^prisn_" .. record.id .. "_[%w_-]+$", token)
    local secret = token:match("_([%w_-]+)$")
    local row = db:first("SELECT * FROM tokens WHERE id = ?", record.id)
    assert.is_nil(tostring(row.hash):find(secret, 1, true))
    assert.equal(32, #row.hash)
    assert.same({ "ns-a" }, record.namespaces)
  end)

  it("verifies a token and records its last use", function()
    local record, token = tokens.create(db, key, { name = "ci", role = "view", namespaces = { "a" } })
    local found = tokens.verify(db, key, token, 1000)
    assert.equal(record.id, found.id)
    assert.equal(1000, tokens.get(db, record.id).last_used_at)
  end)

  it("says why a token is refused", function()
    local record, token = tokens.create(db, key, { name = "t", role = "view", namespaces = { "a" },
      expires_at = 5000 })
    assert.same({ nil, "malformed" }, { tokens.verify(db, key, "nope") })
    assert.same({ nil, "unknown" }, { tokens.verify(db, key, token:sub(1, -2) .. "x", 1) })
    assert.same({ nil, "unknown" }, { tokens.verify(db, key, "prisn_zzzzzzzzzzzz_abc", 1) })
    assert.same({ nil, "expired" }, { tokens.verify(db, key, token, 5000) })
    tokens.revoke(db, record.id)
    assert.same({ nil, "revoked" }, { tokens.verify(db, key, token, 1) })
  end)

  it("refuses a token whose key file changed", function()
    local _, token = tokens.create(db, key, { name = "t", role = "view", namespaces = { "a" } })
    assert.same({ nil, "unknown" }, { tokens.verify(db, string.rep("k", 32), token, 1) })
  end)

  it("validates role, name and namespaces with hints", function()
    local function err_of(fields)
      local ok, e = pcall(tokens.create, db, key, fields)
      assert.is_false(ok)
      return e
    end
    assert.equal("'root' is not a role", err_of({ name = "x", role = "root", namespaces = { "a" } }).message)
    assert.equal("a token needs at least one namespace", err_of({ name = "x", role = "view", namespaces = {} }).message)
    assert.equal("an edit token cannot hold every namespace ('*')",
      err_of({ name = "x", role = "edit", namespaces = { "*" } }).message)
    -- A cluster-wide reader (a metrics scraper) may.
    assert.same({ "*" }, tokens.create(db, key, { name = "scrape", role = "view", namespaces = { "*" } }).namespaces)
    assert.equal("'Bad NS' is not a namespace name",
      err_of({ name = "x", role = "view", namespaces = { "Bad NS" } }).message)
    assert.equal("'no spaces' is not a token name",
      err_of({ name = "no spaces", role = "view", namespaces = { "a" } }).message)
  end)

  it("lists without hashes and revokes once", function()
    local record = tokens.create(db, key, { name = "t", role = "admin", namespaces = { "*" } })
    for _, t in ipairs(tokens.list(db)) do assert.is_nil(t.hash) end
    assert.is_true(tokens.has_admin(db))
    tokens.revoke(db, record.id)
    assert.is_false(tokens.has_admin(db))
    local ok, e = pcall(tokens.revoke, db, record.id)
    assert.is_false(ok)
    assert.equal("conflict", e.code)
    local public = tokens.to_public(tokens.get(db, record.id))
    assert.is_nil(public.hash)
    assert.is_string(public.revoked_at)
  end)
end)
