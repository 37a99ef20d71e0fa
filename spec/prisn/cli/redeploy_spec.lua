-- prisn.cli.redeploy: the -e words split, flags without defaults, how deploy
-- and cron show a redeploy's changes, and a rollout's progress.
local cjson = require("cjson")
local view = require("prisn.cli.redeploy")

describe("prisn.cli.redeploy", function()
  it("writes changes with units, env as keys", function()
    assert.same({ "  env       added A; removed B", "  memory    - -> 256M", "  grace     10s -> 1m",
      "  args      (none) -> --fast" }, view.change_lines({
      { field = "env", added = { "A" }, removed = { "B" }, changed = {} },
      { field = "memory", from = cjson.null, to = 268435456 },
      { field = "grace", from = 10, to = 60 },
      { field = "args", from = {}, to = { "--fast" } },
    }))
  end)

  it("heads the changes of a redeploy, a dry run, a new deployment", function()
    assert.equal("", view.changes_text({ name = "w", created = true, changes = {} }))
    assert.equal("", view.changes_text({ name = "w", changes = {} }))
    assert.equal("deployment w (dry run, nothing changed): would be created as revision 1\n",
      view.changes_text({ name = "w", dry_run = true, created = true, revision = 1, changes = {} }))
    assert.equal("cron job c (dry run, nothing changed): would change:\n  env       removed A\n",
      view.changes_text({ name = "c", dry_run = true, changed = true,
        changes = { { field = "env", added = {}, removed = { "A" }, changed = {} } } }, "cron job"))
    assert.equal("deployment w: changes (revision 4):\n  replicas  1 -> 2\n", view.changes_text({ name = "w",
      changed = true, revision = 4, changes = { { field = "replicas", from = 1, to = 2 } } }))
  end)

  it("splits -e into settings and KEY- removals", function()
    assert.same({ { "A=1", "B=x-" }, { "C", "_D" } }, { view.split_env({ "A=1", "C-", "B=x-", "_D-" }) })
  end)

  it("declares flags without defaults, saying the default in the summary", function()
    local f = { name = "grace", default = "10s", summary = "Time" }
    local out = view.without_defaults({ f })
    assert.same({ nil, "Time (10s unless set; a redeploy keeps the last value)", "10s" },
      { out[1].default, out[1].summary, f.default })
  end)

  it("names the step of a rollout", function()
    local function d(list) return { replicas = 2, ready = 0, instances = list } end
    assert.equal("starting", view.step(d({}), 2))
    assert.equal("waiting for health", view.step(d({ { revision = 2, state = "running", healthy = false } }), 2))
    assert.equal("rolling 1/2", view.step(d({ { revision = 1, state = "running", healthy = true },
      { revision = 2, state = "running", healthy = true } }), 2))
    assert.equal("restarting (it exits)", view.step(d({ { revision = 2, state = "crash_loop_backoff" } }), 2))
    assert.equal("w: 0/2 ready, 1.5s, starting", view.progress_text("w", d({}), 2, 1.5))
  end)
end)
