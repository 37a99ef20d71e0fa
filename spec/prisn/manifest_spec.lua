local manifest = require("prisn.manifest")

local function eval(text) return manifest.evaluate(text, "/srv/app/prisn.lua") end

describe("prisn.manifest", function()
  it("normalizes deployments and cron jobs declared with constructors", function()
    local m = assert(eval([[
deployment {
  name = "web", script = "app.py", port = 8080, replicas = 3,
  env = { LOG_LEVEL = "info", WORKERS = 4 }, secrets = { "db-password" },
  memory = "256M", cpu = 0.5, health = { http = "/healthz", interval = "5s" },
  restart = "on-failure",
}
cron {
  name = "report", script = "/opt/report.py", every = "day at 03:00", timezone = "UTC",
  concurrency = "replace", timeout = "30m",
}
]]))
    local d = m.deployments[1]
    assert.equal("web", d.name)
    assert.equal("/srv/app/app.py", d.script)
    assert.equal(3, d.replicas)
    assert.same({ LOG_LEVEL = "info", WORKERS = "4" }, d.env)
    assert.equal(256 * 1024 * 1024, d.memory)
    -- Checked, and sent as given: the server fills the defaults.
    assert.same({ http = "/healthz", interval = "5s" }, d.health)
    assert.equal("on-failure", d.restart)
    assert.equal(1, d.line)
    local c = m.cronjobs[1]
    assert.equal("0 3 * * *", c.schedule)
    assert.equal("/opt/report.py", c.script)
    assert.equal(1800, c.timeout)
    assert.equal("replace", c.concurrency)
    assert.equal(7, c.line)
  end)

  it("takes defaults and a returned table of plain entries", function()
    local m = assert(eval([[
return {
  deployments = {
    { name = "api", script = "api" },
  },
  cronjobs = { { name = "tick", script = "t.sh", schedule = "*/5 * * * *", timezone = "UTC" } },
}]]))
    local d = m.deployments[1]
    assert.equal(1, d.replicas)
    assert.equal("always", d.restart)
    assert.is_nil(d.health) -- the server's default: tcp with a port, none without
    assert.equal(3, d.line)
    assert.equal("forbid", m.cronjobs[1].concurrency)
    assert.equal(10, m.cronjobs[1].keep_failed)
  end)

  it("names the file line and the field of a bad entry", function()
    local _, err = eval([[
deployment { name = "a", script = "a.py" }

deployment {
  name = "b", script = "b.py",
  replicas = "3",
}]])
    assert.equal('/srv/app/prisn.lua:3: deployments[2].replicas: must be a whole number from 0 to 1000, got "3"', err)
    _, err = eval('return { deployments = {\n  { name = "x", script = "x.py" },\n'
      .. '  { name = "y", script = "y.py", port = 70000 },\n} }')
    assert.equal("/srv/app/prisn.lua:3: deployments[2].port: must be a whole number from 1 to 65535, got 70000", err)
    _, err = eval('cron { name = "c", script = "c.sh", every = "7 minutes", timezone = "UTC" }')
    assert.matches("^/srv/app/prisn.lua:1: cronjobs%[1%].every: every 7 minutes does not divide", err)
    _, err = eval('\ncron { name = "c", script = "c.sh", schedule = "61 * * * *", timezone = "UTC" }')
    assert.matches("^/srv/app/prisn.lua:2: cronjobs%[1%].schedule: ", err)
    _, err = eval('cron { name = "c", script = "c.sh" }')
    assert.equal("/srv/app/prisn.lua:1: cronjobs[1]: give exactly one of schedule or every", err)
    _, err = eval('deployment { name = "w", script = "w", health = "udp" }')
    assert.equal("/srv/app/prisn.lua:1: deployments[1].health: 'udp' is not a health check; "
      .. "use http:/PATH (e.g. http:/healthz), tcp or none", err)
    _, err = eval('deployment { name = "w", script = "w", replica = 2 }')
    assert.matches("^/srv/app/prisn.lua:1: deployments%[1%].replica: unknown field", err)
    _, err = eval('deployment { name = "w", script = "w" }\ndeployment { name = "w", script = "v" }')
    assert.equal('/srv/app/prisn.lua:2: deployments[2].name: "w" is declared twice', err)
    _, err = eval('deployment { name = "Web", script = "w" }')
    assert.matches("^/srv/app/prisn.lua:1: deployments%[1%].name: ", err)
  end)

  it("evaluates with no side effects and within a budget", function()
    local _, err = eval('local f = io.open("/tmp/x", "w")')
    assert.matches("^/srv/app/prisn.lua:1: .*io", err)
    _, err = eval('os.execute("true")')
    assert.matches("^/srv/app/prisn.lua:1: ", err)
    _, err = eval('require("os")')
    assert.matches("^/srv/app/prisn.lua:1: ", err)
    _, err = eval('\nwhile true do end')
    assert.equal("/srv/app/prisn.lua:2: ran over its budget of 1000000 instructions (an endless loop?)", err)
    _, err = eval('deployment {')
    assert.matches("^/srv/app/prisn.lua:1: ", err)
    _, err = eval('return 42')
    assert.matches("returns number", err)
  end)

  it("loads a file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('deployment { name = "web", script = "app.py", replicas = 2 }\n')
    f:close()
    local m = assert(manifest.load(path))
    os.remove(path)
    assert.equal(2, m.deployments[1].replicas)
    assert.equal(path:match("^(.*)/") .. "/app.py", m.deployments[1].script)
    local none, err = manifest.load(path)
    assert.is_nil(none)
    assert.matches("No such file", err)
  end)
end)
