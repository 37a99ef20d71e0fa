-- Redeploys never drop config silently (#14): an imperative `prisn deploy`
-- of an existing deployment keeps what it does not change (-e KEY- removes,
-- --reset starts from defaults), prints what changes without env values,
-- --dry-run (also with -f) changes nothing; a manifest stays complete;
-- `prisn cron` of an existing cron job gets the same treatment; a
-- failed rollout names the failing instance and prints its last lines; the
-- merge and dry run refuse a view token and another namespace's token.
local h = require("e2e.helper")
local wire = require("chaos.http_client")
local cjson = require("cjson")
local uv = require("luv")

-- An instance that writes the COLOR it got, then stays up (no port:
-- up for a second counts as healthy).
local APP = [[
echo "${COLOR:-unset}" > "$OUT/color-$PRISN_INSTANCE"
exec sleep 600
]]

describe("redeploy", function()
  local s, env, dir, out
  local prisn, ok, json = h.cli(function() return env end)

  setup(function()
    s = wire.start_server(h, { PRISN_STOP_GRACE_SECONDS = "2" })
    env = s.env
    dir = h.tempdir("prisn-redeploy")
    out = h.tempdir("prisn-redeploy-out")
    assert(uv.fs_chmod(out, tonumber("777", 8)))
    h.write(dir .. "/app.sh", APP)
  end)

  teardown(function()
    h.stop_server(env)
    for _, pid in ipairs(h.recorded_pids(s.home)) do
      if h.alive(pid) then uv.kill(-pid, "sigkill") end
    end
    h.cleanup()
  end)

  local function described(name)
    return json({ "describe", "deploy", name, "-o", "json" })
  end

  local function color(name, n)
    return (h.read(string.format("%s/color-%s-%d", out, name, n)) or ""):gsub("%s+$", "")
  end

  it("keeps what a redeploy does not change, removes -e KEY-, prints keys but never values", function()
    ok({ "deploy", dir .. "/app.sh", "--name", "web", "-r", "2", "-e", "COLOR=red", "-e", "LEVEL=1",
      "-e", "OUT=" .. out, "--memory", "64M", "--isolation", "0" })
    assert.equal("red", color("web", 1))
    -- The issue's case: the same deploy without -e COLOR keeps it.
    local r = ok({ "deploy", dir .. "/app.sh", "--name", "web" })
    assert.equal("deployment web: revision 1, 2 replica(s) (unchanged)\n", r.stdout)
    local d = described("web")
    assert.same({ "COLOR", "LEVEL", "OUT" }, d.spec.env_keys)
    assert.same({ 1, 2, 64 * 1024 * 1024 }, { d.revision, d.replicas, d.spec.memory })

    r = ok({ "deploy", dir .. "/app.sh", "--name", "web", "-e", "COLOR-", "-e", "LEVEL=secret-two",
      "-e", "DEBUG=1", "-r", "3" })
    assert.matches("deployment web: changes %(revision 2%):\n", r.stdout)
    assert.matches("  env       added DEBUG; removed COLOR; changed LEVEL\n", r.stdout, 1, true)
    assert.matches("  replicas  2 %-> 3\n", r.stdout)
    assert.is_nil(r.stdout:find("secret-two", 1, true), "never a value")
    assert.is_nil(r.stdout:find("red", 1, true), "never a value")
    assert.matches("revision 2 serving, 3/3 ready", r.stdout)
    d = described("web")
    assert.same({ "DEBUG", "LEVEL", "OUT" }, d.spec.env_keys)
    assert.same({ 2, 3, 64 * 1024 * 1024 }, { d.revision, d.replicas, d.spec.memory })
    assert.equal("unset", color("web", 3))
  end)

  it("--dry-run prints the changes and changes nothing; -o json carries them", function()
    ok({ "deploy", dir .. "/app.sh", "--name", "dry", "-e", "COLOR=red", "-e", "OUT=" .. out, "--isolation", "0" })
    h.write(dir .. "/app.sh", APP .. "# v2\n")
    local r = ok({ "deploy", dir .. "/app.sh", "--name", "dry", "--memory", "128M", "-e", "COLOR=blue",
      "--dry-run" })
    assert.matches("^deployment dry %(dry run, nothing changed%): would change %(revision 2%):\n", r.stdout)
    assert.matches("  script    app.sh %(bundle %x+%) %-> app.sh %(bundle %x+%)\n", r.stdout)
    assert.matches("  env       changed COLOR\n", r.stdout, 1, true)
    assert.matches("  memory    %- %-> 128M\n", r.stdout)
    assert.is_nil(r.stdout:find("blue", 1, true))
    local d = described("dry")
    assert.same({ 1, cjson.null }, { d.revision, d.spec.memory })
    local j = json({ "deploy", dir .. "/app.sh", "--name", "dry", "-r", "4", "--dry-run", "-o", "json" })
    assert.same({ true, false, 2 }, { j.dry_run, j.created, j.revision })
    local fields = {}
    for _, c in ipairs(j.changes) do fields[#fields + 1] = c.field end
    assert.same({ "script", "replicas" }, fields)
    assert.equal(1, described("dry").replicas)
    -- A new deployment in a dry run is not created.
    r = ok({ "deploy", dir .. "/app.sh", "--name", "ghost", "--dry-run" })
    assert.equal("deployment ghost (dry run, nothing changed): would be created as revision 1\n", r.stdout)
    assert.equal(404, (wire.api(s.tcp, "GET", "/api/v1/namespaces/default/deployments/ghost", s.admin)))
    h.write(dir .. "/app.sh", APP)
  end)

  it("--reset starts from the defaults; a manifest is complete, and -f --dry-run changes nothing", function()
    ok({ "deploy", dir .. "/app.sh", "--name", "rs", "-e", "COLOR=red", "-e", "OUT=" .. out, "--memory", "64M",
      "--isolation", "0" })
    local r = ok({ "deploy", dir .. "/app.sh", "--name", "rs", "--reset", "-e", "OUT=" .. out, "--isolation", "0" })
    assert.matches("  env       removed COLOR\n", r.stdout, 1, true)
    assert.matches("  memory    64M %-> %-\n", r.stdout)
    assert.same({ "OUT" }, described("rs").spec.env_keys)
    local usage = prisn({ "deploy", dir .. "/app.sh", "--name", "rs", "--reset", "-e", "COLOR-" })
    assert.equal(2, usage.code)
    assert.matches("^Error: %-e COLOR%- removes a variable", usage.stderr)

    h.write(dir .. "/prisn.lua", string.format([[
deployment { name = "rs", script = "app.sh", env = { OUT = %q, LEVEL = "9" }, isolation = 0 }
cron { name = "tick", script = "app.sh", every = "hour" }
]], out))
    r = ok({ "deploy", "-f", dir .. "/prisn.lua", "--dry-run" })
    assert.matches("deployment rs %(dry run, nothing changed%): would change %(revision 3%):\n", r.stdout)
    assert.matches("  env       added LEVEL\n", r.stdout, 1, true)
    assert.matches("cron job tick %(dry run, nothing changed%)", r.stdout)
    assert.equal(2, described("rs").revision)
    assert.equal(0, #json({ "get", "cron", "-o", "json" }))
  end)

  it("a failed rollout names the failing instance and prints its last lines", function()
    ok({ "deploy", dir .. "/app.sh", "--name", "fail", "-e", "OUT=" .. out, "--isolation", "0" })
    h.write(dir .. "/bad.sh", "echo booting bad\necho 'KeyError: DATABASE_URL' >&2\nexit 3\n")
    local r = prisn({ "deploy", dir .. "/bad.sh", "--name", "fail", "--wait-timeout", "30s" })
    assert.equal(1, r.code, r.stderr)
    assert.matches("Error: revision 2 of fail was rolled back", r.stderr)
    local inst = r.stderr:match("Hint: instance (fail%-%d+) failed; its last lines:\n")
    assert.truthy(inst, r.stderr)
    assert.matches("\n    KeyError: DATABASE_URL\n", r.stderr)
    assert.matches("\nmore: prisn logs fail %-%-instance %d+ %-%-tail 50\n", r.stderr)
  end)

  it("gives prisn cron the same treatment: kept, -e KEY-, changes without values, --dry-run, --reset", function()
    h.write(dir .. "/tick.sh", "echo tick\n")
    ok({ "cron", dir .. "/tick.sh", "--every", "hour", "-e", "A=one", "-e", "B=two", "--memory", "64M",
      "--keep-failed", "3" })
    local r = ok({ "cron", dir .. "/tick.sh", "--every", "5m", "-e", "A-", "-e", "C=three", "--dry-run" })
    assert.equal("cron job tick (dry run, nothing changed): would change:\n  env       added C; removed A\n"
      .. "  schedule  0 * * * * -> */5 * * * *\n", r.stdout)
    local c = json({ "describe", "cron", "tick", "-o", "json" })
    assert.same({ { "A", "B" }, "0 * * * *" }, { c.env_keys, c.schedule })
    r = ok({ "cron", dir .. "/tick.sh", "--every", "5m", "-e", "A-", "-e", "C=three" })
    assert.matches("^cron job tick: changes:\n", r.stdout)
    assert.is_nil(r.stdout:find("three", 1, true))
    c = json({ "describe", "cron", "tick", "-o", "json" })
    assert.same({ { "B", "C" }, "*/5 * * * *", 3 }, { c.env_keys, c.schedule, c.keep_failed })
    r = ok({ "cron", dir .. "/tick.sh", "--every", "5m", "--reset" })
    assert.matches("  env       removed B, C\n", r.stdout, 1, true)
    assert.matches("  memory    64M %-> %-\n", r.stdout)
    assert.matches("  keep_failed 3 %-> 10\n", r.stdout)
    c = json({ "describe", "cron", "tick", "-o", "json" })
    assert.same({ {}, 10 }, { c.env_keys, c.keep_failed })
  end)

  it("refuses a merge or dry run to a view token and to another namespace's token", function()
    ok({ "deploy", dir .. "/app.sh", "--name", "guarded", "-e", "OUT=" .. out, "--isolation", "0" })
    local hash = wire.upload(s.tcp, s.admin, dir)
    local view = wire.token(h, s, "viewer", "view", "default")
    local other = wire.token(h, s, "other", "edit", "elsewhere")
    local body = { name = "guarded", bundle = hash, entry = "app.sh", merge = true, env_remove = { "OUT" } }
    for _, extra in ipairs({ {}, { dry_run = true } }) do
      for k, v in pairs(extra) do body[k] = v end
      assert.equal(403, (wire.api(s.tcp, "POST", "/api/v1/namespaces/default/deployments", view, body)))
      assert.equal(403, (wire.api(s.tcp, "POST", "/api/v1/namespaces/default/deployments", other, body)))
    end
    assert.same({ "OUT" }, described("guarded").spec.env_keys)
    local cron_body = { name = "tick", bundle = hash, entry = "app.sh", every = "hour", merge = true,
      env_remove = { "OUT" }, dry_run = true }
    assert.equal(403, (wire.api(s.tcp, "POST", "/api/v1/namespaces/default/cronjobs", view, cron_body)))
    assert.equal(403, (wire.api(s.tcp, "POST", "/api/v1/namespaces/default/cronjobs", other, cron_body)))
    -- env_remove without merge is refused: a body without merge is complete.
    local status, res = wire.api(s.tcp, "POST", "/api/v1/namespaces/default/deployments", s.admin,
      { name = "guarded", bundle = hash, entry = "app.sh", env_remove = { "OUT" } })
    assert.equal(422, status)
    assert.matches("env_remove goes with", res.error.message)
    status, res = wire.api(s.tcp, "POST", "/api/v1/namespaces/default/deployments", s.admin,
      { name = "guarded", bundle = hash, entry = "app.sh", merge = true, env_remove = "OUT" })
    assert.same({ 422, "env_remove must be a list of variable names" }, { status, res.error.message })
  end)
end)
