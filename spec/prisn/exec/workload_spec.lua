local workload = require("prisn.exec.workload")

local M64 = 64 * 1024 * 1024

-- The message and hint of `value` for field `name`, as `channel` says it.
local function refused(name, value, channel, opts)
  local v, problem = workload.normalize(name, value, opts)
  assert.is_nil(v, name .. " accepted " .. tostring(value))
  return workload.message(problem, channel or "api")
end

describe("prisn.exec.workload", function()
  it("accepts each field's values, normalized", function()
    local accepted = {
      { "env", { A = "1", _B = "" }, { A = "1", _B = "" } },
      { "timeout", "1h30m", 5400 }, { "timeout", 0.001, 0.001 }, { "timeout", "365d", 365 * 86400 },
      { "grace", 2, 2 }, { "grace", "1h", 3600 },
      { "memory", "64M", M64 }, { "memory", 67108864.0, M64 }, { "memory", "8P", 1 << 53 },
      { "cpu", 0.5, 0.5 }, { "cpu", "2", 2 }, { "cpu", 1024, 1024 },
      { "pids", 32.0, 32 }, { "pids", 4194304, 4194304 },
      { "isolation", 0, 0 }, { "isolation", 3.0, 3 },
      { "disk", "1M", 1024 * 1024 }, { "runner", "python3", "python3" }, { "no_deps", true, true },
      { "secrets", { "db" }, { "db" } }, { "args", {}, {} },
      { "port", 8080, 8080 }, { "replicas", 0, 0 }, { "restart", "on-failure", "on-failure" },
      { "hooks", { "pre.lua" }, { "pre.lua" } }, { "concurrency", "replace", "replace" },
      { "catch_up", false, false }, { "keep_succeeded", 0, 0 }, { "keep_failed", 10000, 10000 },
    }
    for _, case in ipairs(accepted) do
      local v, problem = workload.normalize(case[1], case[2])
      assert.is_nil(problem, case[1])
      assert.same(case[3], v, case[1])
    end
    assert.is_nil(workload.normalize("memory", nil))
  end)

  it("refuses each field's bad values with its rule, the value and a hint", function()
    local cases = {
      { "timeout", 0, "timeout must be a duration from 1ms to 365d, like 30s, 5m or 1h30m, got 0" },
      { "timeout", "forever", 'timeout must be a duration from 1ms to 365d, like 30s, 5m or 1h30m, got "forever"' },
      { "grace", "2h", 'grace must be a duration from 1ms to 1h, like 30s, 5m or 1h30m, got "2h"' },
      { "memory", 64, "memory must be a size from 1M to 8P, got 64",
        'sizes without a unit are bytes: write "memory": "256M"' },
      { "memory", "lots", 'memory must be a size from 1M to 8P, got "lots"' },
      { "memory", 2.5, "memory must be a size from 1M to 8P, got 2.5" },
      { "cpu", 0, "cpu is a number of cores from 0.01 to 1024, got 0", 'for half a core: "cpu": 0.5' },
      { "cpu", 0 / 0, "cpu is a number of cores from 0.01 to 1024, got NaN" },
      { "cpu", math.huge, "cpu is a number of cores from 0.01 to 1024, got Infinity" },
      { "pids", 0, "pids must be a whole number from 1 to 4194304, got 0", 'the script itself counts: "pids": 100' },
      { "pids", 1.5, "pids must be a whole number from 1 to 4194304, got 1.5" },
      { "isolation", 7, "isolation must be 0, 1, 2 or 3, got 7",
        "0 none, 1 process (default), 2 filesystem, 3 network" },
      { "isolation", "2", 'isolation must be 0, 1, 2 or 3, got "2"' },
      { "disk", 64, "disk must be a size from 1M to 8P, got 64",
        'sizes without a unit are bytes: write "disk": "100M"' },
      { "runner", 5, "runner must be a string, got 5" },
      { "no_deps", "yes", 'no_deps must be true or false, got "yes"' },
      { "secrets", "db", 'secrets must be a list of strings, got "db"' },
      { "secrets", { "db", 3 }, "secrets[2] must be a secret name, got 3" },
      { "args", { x = 1 }, "args must be a list of strings, got an object" },
      { "env", "A=1", 'env must be an object of variable names and string values, got "A=1"' },
      { "env", { ["A-B"] = "x" },
        "env: A-B is not a variable name (letters, digits and '_', not starting with a digit)",
        "keys become environment variable names, like DATABASE_URL" },
      { "env", { A = 3 }, "env.A must be a string, got a number" },
      { "port", 70000, "port must be a whole number from 1 to 65535, got 70000" },
      { "replicas", -1, "replicas must be a whole number from 0 to 1000, got -1" },
      { "restart", "sometimes", 'restart must be always, on-failure or never, got "sometimes"' },
      { "hooks", { true }, "hooks[1] must be a file, got true" },
      { "concurrency", "queue", 'concurrency must be allow, forbid or replace, got "queue"' },
      { "catch_up", 1, "catch_up must be true or false, got 1" },
      { "keep_succeeded", 10001, "keep_succeeded must be a whole number from 0 to 10000, got 10001" },
      { "keep_failed", -1, "keep_failed must be a whole number from 0 to 10000, got -1" },
    }
    for _, case in ipairs(cases) do
      local message, hint = refused(case[1], case[2])
      assert.equal(case[3], message)
      if case[4] then assert.equal(case[4], hint) end
    end
  end)

  it("never shows an env value, which may be a secret", function()
    local message = refused("env", { TOKEN = { "s3cret" } })
    assert.equal("env.TOKEN must be a string, got an object", message)
    assert.is_nil(message:find("s3cret"))
  end)

  it("says a problem as each channel names the field", function()
    assert.same({ "--cpu is a number of cores from 0.01 to 1024, got 0", "for half a core: --cpu 0.5" },
      { refused("cpu", 0, "flag") })
    assert.same({ "is a number of cores from 0.01 to 1024, got 0", "for half a core: cpu = 0.5" },
      { refused("cpu", 0, "manifest") })
    assert.equal("--secret", workload.CHANNELS.flag("secrets"))
    assert.equal("--grace must be a duration from 1ms to 1h, like 30s, 5m or 1h30m, got 2h",
      refused("grace", 7200, "flag"))
    assert.equal("item 2 must be a secret name, got 3", refused("secrets", { "a", 3 }, "manifest"))
    assert.equal("A must be a string, got an object", (refused("env", { A = {} }, "manifest")))
    -- Manifests may give env values as numbers or booleans: they become strings.
    assert.same({ N = "4", B = "true" }, workload.normalize("env", { N = 4, B = true }, { coerce = true }))
  end)

  it("ties disk to the isolation level", function()
    assert.equal(2, workload.disk_level(nil, M64))
    assert.equal(3, workload.disk_level(3, M64))
    assert.equal(1, workload.disk_level(1, nil))
    local _, problem = workload.disk_level(1, M64)
    assert.same({ "--disk needs isolation level 2 or 3, got --isolation 1",
      "the size bound is a tmpfs in the workload's own root: use --isolation 2, or drop --isolation" },
      { workload.message(problem, "flag") })
    assert.same({ "disk needs isolation level 2 or 3, got isolation 1",
      "the size bound is a tmpfs in the workload's own root: use \"isolation\": 2, or drop isolation" },
      { workload.message(problem, "api") })
    assert.equal("needs isolation level 2 or 3, got isolation 1", (workload.message(problem, "manifest")))
  end)

  it("reads an ingress host name: lower case, DNS labels, never an address or a port", function()
    assert.equal("api.example.com", workload.normalize("hostname", "API.Example.com."))
    assert.equal("localhost", workload.normalize("hostname", "localhost"))
    assert.equal("a-1.b2.example", workload.normalize("hostname", "a-1.b2.example"))
    for _, bad in ipairs({ "", ".", "a..b", "-a.com", "a-.com", "1.2.3.4", "api.example.com:80", "a b.com", "*.x.com",
      "a_b.com", string.rep("a", 64) .. ".com", string.rep("abcdefghi.", 26) .. "com", 42 }) do
      local v, problem = workload.normalize("hostname", bad)
      assert.is_nil(v, tostring(bad))
      assert.truthy(problem, tostring(bad))
    end
    local _, problem = workload.normalize("hostname", "api.example.com:80")
    assert.same({ "--host must be a DNS host name like api.example.com (letters, digits, dashes; no port, at most "
      .. "253), got \"api.example.com:80\"", "the name clients put in Host:, e.g. --host api.example.com" },
      { workload.message(problem, "flag") })
    assert.same({ "hostname must be a DNS host name like api.example.com (letters, digits, dashes; no port, at most "
      .. "253), got \"api.example.com:80\"", 'the name clients put in Host:, e.g. "hostname": "api.example.com"' },
      { workload.message(problem, "api") })
  end)

  it("reads an ingress path prefix: from /, without a final slash, no dot segments", function()
    assert.equal("/", workload.normalize("path", "/"))
    assert.equal("/v1", workload.normalize("path", "/v1/"))
    assert.equal("/a/b-c/%20~", workload.normalize("path", "/a/b-c/%20~"))
    for _, bad in ipairs({ "", "v1", "/a/../b", "/..", "/a/./b", "/a//b", "/a b", "/a?x=1", "/a#f",
      "/" .. string.rep("a", 256), true }) do
      assert.is_nil(workload.normalize("path", bad), tostring(bad))
    end
    local _, problem = workload.normalize("path", "/a/../b")
    assert.equal("--path must be a URL path starting with / (no .. segment, no spaces, at most 256 characters), "
      .. "got \"/a/../b\"", (workload.message(problem, "flag")))
  end)

  it("declares the flags of prisn run and the fields each kind takes", function()
    assert.same({ "env", "env-file", "cwd", "timeout", "grace", "memory", "cpu", "pids", "isolation", "disk", "user",
      "runner", "no-deps", "exec", "detach", "secret" }, workload.flag_names())
    assert.same({ name = "memory", type = "size", placeholder = "SIZE",
      summary = "Limit the script's memory (256M, 1G); over it the kernel kills it (oom_killed)" },
      workload.flag("memory"))
    assert.same({ "allow", "forbid", "replace" }, workload.flag("concurrency").values)
    assert.equal("int", workload.flag("isolation").type)
    assert.same({ "env", "memory", "cpu", "pids", "isolation", "disk", "secrets", "port", "replicas", "restart",
      "hooks", "hostname", "path", "tls_cert", "tls_key", "tls_secret" }, workload.names("deployment", true))
    assert.same({ "env", "timeout", "memory", "cpu", "pids", "isolation", "disk", "secrets", "concurrency",
      "catch_up", "keep_succeeded", "keep_failed" }, workload.names("cron", true))
    assert.same({ "env", "timeout", "grace", "memory", "cpu", "pids", "isolation", "disk", "runner", "no_deps",
      "secrets", "args" }, workload.names("job"))
    assert.has_error(function() workload.field("nope") end)
  end)
end)
