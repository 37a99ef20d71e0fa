-- No byte of a secret value in plain text anywhere under $PRISN_HOME: secrets
-- are set, merged, revealed, injected, deleted and the key rotated through
-- the real API handlers, with the real event recorder and server log, then
-- every file under the home (state.db and its -wal and -shm, master.key,
-- server.log) is read and searched for the values — raw, hex and base64.
local uv = require("luv")
local cjson = require("cjson")
local crypto = require("prisn.core.crypto")
local events = require("prisn.store.events")
local fs = require("prisn.fs")
local keyring = require("prisn.secrets.keyring")
local log = require("prisn.server.log")
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

local function handler(method, pattern)
  for _, r in ipairs(routes) do
    if r.method == method and r.pattern == pattern then return r.handler end
  end
end

-- Every regular file below `dir`: path -> content.
local function read_tree(dir, out)
  out = out or {}
  for _, entry in ipairs(fs.list_dir(dir)) do
    local path = dir .. "/" .. entry.name
    if entry.type == "directory" then
      read_tree(path, out)
    elseif entry.type == "file" then
      out[path] = assert(fs.read_file(path))
    end
  end
  return out
end

describe("secrets at rest", function()
  local home, server

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    local db = store.open(home, { migrations = migrations() })
    server = { db = db, home = home, keyring = keyring.load(home, { create = true, db = db }),
      events = events.recorder(db), log = log.open(home .. "/server.log") }
  end)

  after_each(function()
    server.log:close()
    server.db:close()
    fs.rm_rf(home)
  end)

  local function call(method, pattern, params, body, query)
    return handler(method, pattern)({ method = method, params = params, query = query or {}, headers = {},
      body = body and cjson.encode(body), token = { name = "ci", role = "admin", namespaces = { "*" } },
      actor = "token:ci", server = server })
  end

  it("leaves no secret value in any file under PRISN_HOME", function()
    local one = "Zq9-distinctive-secret-value-7731"
    local two = "second!value:with spaces\tand\ttabs"
    local three = "x" .. crypto.to_hex(crypto.random_bytes(16))
    local values = { one, two, three }
    local path = "/api/v1/namespaces/{ns}/secrets/{name}"
    call("PUT", path, { ns = "default", name = "db" }, { data = { PASSWORD = one, USER = "app" } })
    call("PUT", path, { ns = "default", name = "db" }, { data = { TOKEN = two }, merge = true })
    call("PUT", path, { ns = "prod", name = "api" }, { data = { KEY = three } })
    call("PUT", path, { ns = "prod", name = "old" }, { data = { KEY = one } })
    call("GET", path, { ns = "default", name = "db" }, nil, { reveal = "1" })
    call("GET", path, { ns = "default", name = "db" })
    call("DELETE", path, { ns = "prod", name = "old" })
    assert.same({ KEY = three }, secrets.env_for(server.db, server.keyring, "prod", { "api" }))
    call("POST", "/api/v1/secrets/rotate-key", {})
    call("PUT", path, { ns = "default", name = "db" }, { data = { PASSWORD = one .. "-again" }, merge = true })

    local function assert_clean(stage)
      local files = read_tree(home)
      for _, name in ipairs({ "master.key", "state.db", "server.log" }) do
        assert.is_truthy(files[home .. "/" .. name], name .. " should exist " .. stage)
      end
      for file, content in pairs(files) do
        for _, value in ipairs(values) do
          for _, form in ipairs({ value, crypto.to_hex(value), crypto.to_base64url(value), cjson.encode(value) }) do
            assert.is_nil(content:find(form, 1, true),
              string.format("%s holds a secret value %s", file, stage))
          end
        end
      end
    end

    assert_clean("with the WAL in use")
    assert.is_truthy(read_tree(home)[home .. "/state.db-wal"], "the WAL should exist")
    -- Once checkpointed into state.db itself, too.
    assert(server.db:exec("PRAGMA wal_checkpoint(TRUNCATE)"))
    assert_clean("after a checkpoint")
    -- Key names, on the other hand, are kept in the clear for listing.
    assert.is_truthy(read_tree(home)[home .. "/state.db"]:find("PASSWORD", 1, true))
    -- And the values are all still there, encrypted.
    assert.same({ PASSWORD = one .. "-again", TOKEN = two, USER = "app" },
      secrets.get(server.db, server.keyring, "default", "db"))
  end)
end)
