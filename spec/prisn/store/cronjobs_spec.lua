-- prisn.store.cronjobs: records, defaults, the scheduler's queries and the
-- public shape; plus the jobs.cron link of migration 7.
local uv = require("luv")
local store = require("prisn.store")
local cronjobs = require("prisn.store.cronjobs")
local jobs = require("prisn.store.jobs")
local remove_tree = require("support").remove_tree

local T = 1795718760000 -- 2026-11-26T18:46:00.000Z

describe("prisn.store.cronjobs", function()
  local home, db

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  local function make(fields)
    local f = { name = "backup", expression = "0 3 * * *", spec = { script = "/srv/backup.sh", args = { "--full" },
      env = { A = "1" }, env_keys = { "A" }, bundle = "ab12", entry = "backup.sh" }, created_at = T }
    for k, v in pairs(fields or {}) do f[k] = v end
    return cronjobs.create(db, f)
  end

  it("creates a cron job with the documented defaults", function()
    local c = make()
    assert.same({ "default", "backup", "0 3 * * *", "forbid", false, 10, 10, false },
      { c.namespace, c.name, c.expression, c.concurrency, c.catch_up, c.keep_succeeded, c.keep_failed, c.suspended })
    assert.same({ "--full" }, c.spec.args)
    assert.equal(T, c.created_at)
    assert.equal(T, c.updated_at)
    assert.is_nil(c.next_fire)
    assert.is_nil(c.timezone)
  end)

  it("refuses a name that is taken, and bad fields", function()
    make()
    local ok, err = pcall(make)
    assert.is_false(ok)
    assert.equal("exists", err.code)
    assert.equal("cron job 'backup' already exists in namespace 'default'", err.message)
    assert.is_true(pcall(make, { namespace = "other" }))
    assert.has_error(function() make({ name = "Bad_Name" }) end)
    assert.has_error(function() make({ name = "x", concurrency = "sometimes" }) end,
      "cronjobs: concurrency must be allow, forbid or replace, got sometimes")
  end)

  it("validates names and derives one from a script", function()
    assert.is_true(cronjobs.valid_name("a"))
    assert.is_true(cronjobs.valid_name("nightly-backup2"))
    assert.is_nil(cronjobs.valid_name("-x"))
    assert.is_nil(cronjobs.valid_name("x-"))
    assert.is_nil(cronjobs.valid_name(string.rep("a", 64)))
    assert.equal("nightly-backup", cronjobs.name_from_script("/srv/jobs/Nightly_Backup.py"))
    assert.equal("report", cronjobs.name_from_script("report"))
    assert.is_nil(cronjobs.name_from_script("/srv/___.sh"))
  end)

  it("updates schedule, spec and policies but keeps history fields", function()
    make({ last_fire = T - 1000 })
    local c = cronjobs.update(db, { name = "backup", expression = "*/5 * * * *", spec = { script = "/x.sh" },
      concurrency = "replace", keep_succeeded = 2, updated_at = T + 5 })
    assert.same({ "*/5 * * * *", "replace", 2, 10, T, T + 5, T - 1000 },
      { c.expression, c.concurrency, c.keep_succeeded, c.keep_failed, c.created_at, c.updated_at, c.last_fire })
    assert.is_nil(cronjobs.update(db, { name = "nope", expression = "* * * * *", spec = {} }))
  end)

  it("lists by namespace, gets, deletes", function()
    make({ name = "b" })
    make({ name = "a" })
    make({ name = "c", namespace = "ops" })
    local names = {}
    for i, c in ipairs(cronjobs.list(db)) do names[i] = c.name end
    assert.same({ "a", "b" }, names)
    assert.equal(3, #cronjobs.list(db, { all_namespaces = true }))
    assert.equal("c", cronjobs.get(db, "ops", "c").name)
    assert.is_true(cronjobs.delete(db, "ops", "c"))
    assert.is_false(cronjobs.delete(db, "ops", "c"))
    assert.is_nil(cronjobs.get(db, "ops", "c"))
  end)

  it("answers the scheduler: earliest and due, suspended ones left out", function()
    make({ name = "a", next_fire = T + 3000 })
    make({ name = "b", next_fire = T + 1000 })
    make({ name = "c", next_fire = T, suspended = true })
    assert.equal(T + 1000, cronjobs.earliest(db))
    assert.same({}, cronjobs.due(db, T + 999))
    local due = cronjobs.due(db, T + 3000)
    assert.same({ "b", "a" }, { due[1].name, due[2].name })
    cronjobs.record_fire(db, "default", "b", T + 1001, T + 2000)
    local b = cronjobs.get(db, "default", "b")
    assert.same({ T + 1001, T + 2000 }, { b.last_fire, b.next_fire })
    cronjobs.record_fire(db, "default", "b", T + 1500, nil)
    b = cronjobs.get(db, "default", "b")
    assert.same({ T + 1500, T + 2000 }, { b.last_fire, b.next_fire })
  end)

  it("suspends (clearing next_fire) and resumes", function()
    make({ next_fire = T })
    local c = cronjobs.set_suspended(db, "default", "backup", true)
    assert.is_true(c.suspended)
    assert.is_nil(c.next_fire)
    assert.is_nil(cronjobs.earliest(db))
    c = cronjobs.set_suspended(db, "default", "backup", false, T + 60000)
    assert.is_false(c.suspended)
    assert.equal(T + 60000, c.next_fire)
    assert.is_nil(cronjobs.set_suspended(db, "default", "nope", true))
  end)

  it("has a public shape without the values of -e", function()
    local p = cronjobs.to_public(make({ next_fire = T + 60000 }))
    assert.same({ "backup", "0 3 * * *", "backup.sh", "ab12", "forbid", false, "2026-11-26T18:47:00.000Z" },
      { p.name, p.schedule, p.script, p.bundle, p.concurrency, p.suspended, p.next_fire })
    assert.same({ "A" }, p.env_keys)
    assert.is_nil(p.env)
    assert.equal(require("prisn.output").null, p.last_fire)
    assert.equal(require("prisn.output").null, p.timezone)
  end)

  it("links jobs to their cron job (migration 7) and lists them by it", function()
    jobs.create(db, { script = "/srv/backup.sh", runner = "bash", cron = "backup" })
    jobs.create(db, { script = "/srv/backup.sh", runner = "bash" })
    local runs = jobs.list(db, { cron = "backup" })
    assert.equal(1, #runs)
    assert.equal("backup", runs[1].cron)
    assert.equal("backup", jobs.to_public(runs[1]).cron)
  end)

  it("counts cron jobs in the namespaces a token may see", function()
    make({ namespace = "a" })
    make({ namespace = "a", name = "other" })
    make({ namespace = "b" })
    assert.equal(3, cronjobs.count(db))
    assert.equal(2, cronjobs.count(db, function(ns) return ns == "a" end))
    assert.equal(0, cronjobs.count(db, function() return false end))
  end)
end)
