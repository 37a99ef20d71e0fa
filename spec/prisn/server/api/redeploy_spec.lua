-- prisn.server.api.redeploy: the base a merge starts from, the merge (env
-- key by key, env_remove, null resets), and the changes listed (env by key,
-- never a value).
local cjson = require("cjson")
local redeploy = require("prisn.server.api.redeploy")

describe("prisn.server.api.redeploy", function()
  local spec = { bundle = "abcdef0123456789", entry = "app.py", script = "/b/abc/app.py", cwd = "/b/abc",
    env = { COLOR = "red", LEVEL = "1" }, env_keys = { "COLOR", "LEVEL" }, memory = 64, grace = 30,
    hooks = { "/b/abc/hooks/check.lua" }, health = { kind = "tcp" }, restart = "always", isolation = 1 }
  local d = { port = 8080, host = "127.0.0.1", strategy = "least-connections", replicas = 3 }

  it("starts from the template and settings, hooks relative to the bundle, replicas left out", function()
    local base = redeploy.base_body(spec, d)
    assert.same({ "abcdef0123456789", "app.py", nil, 8080, "127.0.0.1", "least-connections", 30, nil },
      { base.bundle, base.entry, base.script, base.port, base.host, base.strategy, base.grace, base.replicas })
    assert.same({ "hooks/check.lua" }, base.hooks)
    assert.same({ COLOR = "red", LEVEL = "1" }, base.env)
  end)

  it("lays a body over the base: env by key, env_remove, null back to the default", function()
    local base = redeploy.base_body(spec, d)
    local merged = redeploy.merge(base, { bundle = "ffff", entry = "app.py", env = { LEVEL = "2", NEW = "x" },
      env_remove = { "COLOR" }, memory = cjson.null, merge = true, dry_run = true })
    assert.same({ LEVEL = "2", NEW = "x" }, merged.env)
    assert.same({ "ffff", nil, 30, 8080, nil, nil }, { merged.bundle, merged.memory, merged.grace, merged.port,
      merged.merge, merged.dry_run })
    assert.same({ COLOR = "red", LEVEL = "1" }, base.env, "the base is not changed")
    assert.is_nil(redeploy.merge(base, { env_remove = { "COLOR", "LEVEL" } }).env)
  end)

  it("keeps the ingress route and its certificate source; files replace a secret and back; null removes", function()
    local routed = { port = nil, strategy = "round-robin", hostname = "api.example.com", path = "/v1",
      tls_secret = "api-tls" }
    local base = redeploy.base_body(spec, routed)
    assert.same({ "api.example.com", "/v1", "api-tls" }, { base.hostname, base.path, base.tls_secret })
    local kept = redeploy.merge(base, { env = { X = "1" } })
    assert.same({ "api.example.com", "/v1", "api-tls" }, { kept.hostname, kept.path, kept.tls_secret })
    local files = redeploy.merge(base, { tls_cert = "/etc/c.pem", tls_key = "/etc/k.pem" })
    assert.same({ "/etc/c.pem", "/etc/k.pem", nil }, { files.tls_cert, files.tls_key, files.tls_secret })
    local back = redeploy.merge(redeploy.base_body(spec, { hostname = "api.example.com", path = "/",
      tls_cert = "/etc/c.pem", tls_key = "/etc/k.pem" }), { tls_secret = "new" })
    assert.same({ nil, nil, "new" }, { back.tls_cert, back.tls_key, back.tls_secret })
    local off = redeploy.merge(base, { hostname = cjson.null, path = cjson.null, tls_secret = cjson.null })
    assert.same({ nil, nil, nil }, { off.hostname, off.path, off.tls_secret })
    local changes = redeploy.changes(spec, spec, routed, { hostname = "api.example.com", path = "/v2",
      strategy = "round-robin" })
    assert.same({ { field = "path", from = "/v1", to = "/v2" }, { field = "tls_secret", from = "api-tls",
      to = cjson.null } }, changes)
  end)

  it("knows a list of keys", function()
    assert.is_true(redeploy.key_list({ "A", "B" }))
    assert.is_true(redeploy.key_list({}))
    assert.is_false(redeploy.key_list("A"))
    assert.is_false(redeploy.key_list({ "A", 3 }))
    assert.is_false(redeploy.key_list({ A = true }))
  end)

  it("lists what changes: the script by digest, env keys only, settings", function()
    local new = { bundle = "9999999999999999", entry = "app.py", env = { LEVEL = "secret", NEW = "x" },
      memory = 128, grace = 30, health = { kind = "tcp" }, restart = "always", isolation = 1 }
    local list = redeploy.changes(spec, new, d, { replicas = 5, port = 8080, host = "127.0.0.1",
      strategy = "least-connections" })
    assert.same({ field = "script", from = "app.py (bundle abcdef012345)", to = "app.py (bundle 999999999999)" },
      list[1])
    assert.same({ field = "env", added = { "NEW" }, removed = { "COLOR" }, changed = { "LEVEL" } }, list[2])
    assert.same({ field = "memory", from = 64, to = 128 }, list[3])
    assert.same({ field = "hooks", from = { "/b/abc/hooks/check.lua" }, to = cjson.null }, list[4])
    assert.same({ field = "replicas", from = 3, to = 5 }, list[5])
    assert.equal(5, #list)
    assert.is_nil(cjson.encode(list):find("secret", 1, true))
    assert.same({}, redeploy.changes(spec, spec, d, d))
    -- A cron job's settings are its own; who applied it is not a change.
    local cron_list = redeploy.changes({ admitted_for = { token = "a" } }, { admitted_for = { token = "b" } },
      { schedule = "0 * * * *", concurrency = "forbid" }, { schedule = "*/5 * * * *", concurrency = "forbid" },
      { "schedule", "concurrency" })
    assert.same({ { field = "schedule", from = "0 * * * *", to = "*/5 * * * *" } }, cron_list)
  end)
end)
