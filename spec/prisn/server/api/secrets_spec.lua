-- The secrets API handlers, called directly with a fake request and server:
-- roles, masking and reveal, events that carry key names but never values,
-- 404s, validation, and rotation.
local uv = require("luv")
local cjson = require("cjson")
local api = require("prisn.server.api")
local fs = require("prisn.fs")
local keyring = require("prisn.secrets.keyring")
local store = require("prisn.store")
local secrets = require("prisn.store.secrets")
local routes = require("prisn.server.api.secrets")
local schema = require("prisn.store.migrations")

local function migrations()
  local list = { table.unpack((require("prisn.store.migrations"))) }
  for _, extra in ipairs({ schema.events, schema.secrets }) do
    local have = false
    for _, sql in ipairs(list) do have = have or sql == extra end
    if not have then list[#list + 1] = extra end
  end
  return list
end

local function route(method, pattern)
  for _, r in ipairs(routes) do
    if r.method == method and r.pattern == pattern then return r end
  end
  error("no route " .. method .. " " .. pattern)
end

local NS_SECRETS = "/api/v1/namespaces/{ns}/secrets"
local ONE_SECRET = "/api/v1/namespaces/{ns}/secrets/{name}"
local ROTATE = "/api/v1/secrets/rotate-key"

-- A recorder that only remembers.
local function fake_events()
  return { list = {}, record = function(self, ev) self.list[#self.list + 1] = ev end }
end

describe("secrets API", function()
  local home, server

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    local db = store.open(home, { migrations = migrations() })
    server = { db = db, home = home, keyring = keyring.load(home, { create = true }), events = fake_events() }
  end)

  after_each(function()
    server.db:close()
    fs.rm_rf(home)
  end)

  -- Calls the handler of `method pattern`; returns status, body — or for a
  -- raised error, its status and the API's error body.
  local function call(method, pattern, opts)
    opts = opts or {}
    local req = {
      method = method, params = opts.params or {}, query = opts.query or {},
      headers = {}, body = opts.body and cjson.encode(opts.body) or opts.raw_body,
      token = { id = "t1", name = "ci", role = opts.role or "admin", namespaces = { "*" } },
      actor = "token:ci", server = server,
    }
    local ok, status, body = pcall(route(method, pattern).handler, req)
    if not ok then return api.status_of(status), api.error_body(status) end
    return status, body
  end

  local function put(ns, name, data, extra)
    local body = { data = data }
    for k, v in pairs(extra or {}) do body[k] = v end
    return call("PUT", ONE_SECRET, { params = { ns = ns, name = name }, body = body, role = "edit" })
  end

  it("declares each route's role", function()
    assert.equal("view", route("GET", NS_SECRETS).auth)
    assert.equal("view", route("GET", ONE_SECRET).auth)
    assert.equal("edit", route("PUT", ONE_SECRET).auth)
    assert.equal("edit", route("DELETE", ONE_SECRET).auth)
    assert.equal("admin", route("POST", ROTATE).auth)
    assert.equal(5, #routes)
  end)

  describe("PUT", function()
    it("creates (201) then replaces (200), answering names and keys only", function()
      local status, body = put("default", "db", { USER = "app", PASSWORD = "hunter2" })
      assert.equal(201, status)
      assert.equal("db", body.name)
      assert.equal("default", body.namespace)
      assert.same({ "PASSWORD", "USER" }, body.keys)
      assert.is_nil(body.data)
      assert.is_nil(cjson.encode(body):find("hunter2", 1, true))
      status, body = put("default", "db", { PASSWORD = "hunter3" })
      assert.equal(200, status)
      assert.same({ "PASSWORD" }, body.keys)
      status, body = put("default", "db", { USER = "app" }, { merge = true })
      assert.equal(200, status)
      assert.same({ "PASSWORD", "USER" }, body.keys)
      assert.same({ PASSWORD = "hunter3", USER = "app" }, secrets.get(server.db, server.keyring, "default", "db"))
    end)

    it("records secret.set events with the keys, never the values", function()
      put("default", "db", { USER = "app", PASSWORD = "hunter2" })
      put("default", "db", { HOST = "h" }, { merge = true })
      assert.same({
        { namespace = "default", actor = "token:ci", action = "secret.set", object = "secret/db",
          message = "keys: PASSWORD, USER" },
        { namespace = "default", actor = "token:ci", action = "secret.set", object = "secret/db",
          message = "keys: HOST, PASSWORD, USER (merged: HOST)" },
      }, server.events.list)
    end)

    it("answers 422 naming the bad field, without the value", function()
      local cases = {
        { { data = { ["bad-key"] = "hunter2" } }, "invalid key \"bad-key\" in data: use letters, digits and '_', "
          .. "not starting with a digit" },
        { { data = { PORT = 5432 } }, "the value of data.PORT must be a string, not number" },
        { { data = { BIG = ("hunter2"):rep(10000) } },
          "the value of data.BIG is 70000 bytes; the limit is 65536 (64 KiB)" },
        { { data = {} }, "data needs at least one KEY: value pair" },
        { { data = { "hunter2" } }, "data must be an object of KEY: value pairs" },
        { { data = "A=hunter2" }, "the field 'data' must be a table" },
        { { data = { A = "x" }, merge = "yes" }, "the field 'merge' must be a boolean" },
        { {}, "the field 'data' is required" },
      }
      for _, case in ipairs(cases) do
        local status, body = call("PUT", ONE_SECRET, { params = { ns = "default", name = "db" }, body = case[1] })
        assert.equal(422, status)
        assert.equal("invalid", body.error.code)
        assert.equal(case[2], body.error.message)
        assert.is_nil(cjson.encode(body):find("hunter2", 1, true))
      end
      local status, body = put("default", "Bad_Name", { A = "x" })
      assert.equal(422, status)
      assert.matches("^invalid secret name \"Bad_Name\"", body.error.message)
      status, body = call("PUT", ONE_SECRET, { params = { ns = "default", name = "db" }, raw_body = "{not json" })
      assert.equal(400, status)
      assert.equal("invalid_json", body.error.code)
      assert.same({}, server.events.list)
    end)

    it("answers 503 when the server has no keyring", function()
      server.keyring = nil
      local status, body = put("default", "db", { A = "x" })
      assert.equal(503, status)
      assert.equal("unavailable", body.error.code)
    end)
  end)

  describe("GET one", function()
    before_each(function()
      put("default", "db", { USER = "app", PASSWORD = "hunter2" })
      server.events.list = {}
    end)

    it("masks every value", function()
      for _, role in ipairs({ "view", "edit", "admin" }) do
        local status, body = call("GET", ONE_SECRET, { params = { ns = "default", name = "db" }, role = role })
        assert.equal(200, status)
        assert.same({ PASSWORD = "****", USER = "****" }, body.data)
        assert.same({ "PASSWORD", "USER" }, body.keys)
        assert.is_nil(cjson.encode(body):find("hunter2", 1, true))
      end
      local _, body = call("GET", ONE_SECRET, { params = { ns = "default", name = "db" }, query = { reveal = "0" } })
      assert.same({ PASSWORD = "****", USER = "****" }, body.data)
      assert.same({}, server.events.list)
    end)

    it("reveals values to edit and admin, recording who", function()
      for _, role in ipairs({ "edit", "admin" }) do
        local status, body = call("GET", ONE_SECRET,
          { params = { ns = "default", name = "db" }, query = { reveal = "1" }, role = role })
        assert.equal(200, status)
        assert.same({ PASSWORD = "hunter2", USER = "app" }, body.data)
      end
      assert.equal(2, #server.events.list)
      assert.same({ namespace = "default", actor = "token:ci", action = "secret.revealed", object = "secret/db",
        message = "keys: PASSWORD, USER" }, server.events.list[1])
    end)

    it("refuses to reveal to a view token (403)", function()
      local status, body = call("GET", ONE_SECRET,
        { params = { ns = "default", name = "db" }, query = { reveal = "true" }, role = "view" })
      assert.equal(403, status)
      assert.equal("forbidden", body.error.code)
      assert.equal("a view token cannot reveal secret values: it needs the edit or admin role", body.error.message)
      assert.is_nil(cjson.encode(body):find("hunter2", 1, true))
      assert.same({}, server.events.list)
    end)

    it("answers 404 for a missing secret, revealed or not", function()
      for _, query in ipairs({ {}, { reveal = "1" } }) do
        local status, body = call("GET", ONE_SECRET, { params = { ns = "default", name = "nope" }, query = query })
        assert.equal(404, status)
        assert.equal("not_found", body.error.code)
        assert.equal("secret 'nope' not found in namespace 'default'", body.error.message)
      end
      local status = call("GET", ONE_SECRET, { params = { ns = "other", name = "db" } })
      assert.equal(404, status)
    end)
  end)

  describe("GET list", function()
    it("lists names and keys of the namespace only", function()
      put("default", "db", { PASSWORD = "hunter2" })
      put("default", "api", { KEY = "k" })
      put("other", "x", { X = "x" })
      local status, body = call("GET", NS_SECRETS, { params = { ns = "default" }, role = "view" })
      assert.equal(200, status)
      assert.equal(2, #body.items)
      assert.equal("api", body.items[1].name)
      assert.same({ "PASSWORD" }, body.items[2].keys)
      assert.is_nil(body.items[1].data)
      assert.is_nil(cjson.encode(body):find("hunter2", 1, true))
      local _, empty = call("GET", NS_SECRETS, { params = { ns = "empty" } })
      -- The server encodes with prisn.output.json, which knows marked arrays.
      assert.equal("[]", (require("prisn.output.json").encode(empty.items):gsub("%s", "")))
    end)
  end)

  describe("DELETE", function()
    it("deletes, records secret.deleted with the keys, then answers 404", function()
      put("default", "db", { USER = "app", PASSWORD = "hunter2" })
      server.events.list = {}
      local status, body = call("DELETE", ONE_SECRET, { params = { ns = "default", name = "db" }, role = "edit" })
      assert.equal(200, status)
      assert.same({ namespace = "default", name = "db", deleted = true, keys = { "PASSWORD", "USER" } }, body)
      assert.same({ { namespace = "default", actor = "token:ci", action = "secret.deleted", object = "secret/db",
        message = "keys: PASSWORD, USER" } }, server.events.list)
      status, body = call("DELETE", ONE_SECRET, { params = { ns = "default", name = "db" } })
      assert.equal(404, status)
      assert.equal("not_found", body.error.code)
      assert.equal(1, #server.events.list)
    end)
  end)

  describe("POST rotate-key", function()
    it("re-encrypts under a new key and records secret.key_rotated", function()
      put("default", "db", { PASSWORD = "hunter2" })
      put("prod", "db", { PASSWORD = "hunter3" })
      server.events.list = {}
      local old = server.keyring.id
      local status, body = call("POST", ROTATE)
      assert.equal(200, status)
      assert.equal(old, body.old_key_id)
      assert.equal(server.keyring.id, body.key_id)
      assert.are_not.equal(old, body.key_id)
      assert.equal(2, body.reencrypted)
      assert.same({ { actor = "token:ci", action = "secret.key_rotated",
        message = string.format("master key %s replaced by %s; 2 secrets re-encrypted", old, body.key_id) } },
        server.events.list)
      -- The server's keyring went on working; a freshly loaded one agrees.
      local _, shown = call("GET", ONE_SECRET, { params = { ns = "prod", name = "db" }, query = { reveal = "1" } })
      assert.same({ PASSWORD = "hunter3" }, shown.data)
      assert.equal(body.key_id, keyring.load(home).id)
    end)
  end)

  describe("with the real event recorder", function()
    it("stores the mutation and its event together", function()
      local events = require("prisn.store.events")
      server.events = events.recorder(server.db)
      put("default", "db", { PASSWORD = "hunter2" })
      call("DELETE", ONE_SECRET, { params = { ns = "default", name = "db" } })
      local list = events.list(server.db, { order = "asc" })
      assert.equal(2, #list)
      assert.equal("secret.set", list[1].action)
      assert.equal("keys: PASSWORD", list[1].message)
      assert.equal("secret.deleted", list[2].action)
      assert.equal("default", list[2].namespace)
    end)
  end)
end)
