-- prisn.policies.admission: the default rules, one field at a time, for a
-- cluster-wide admin (allowed everything) and for namespaced tokens.
local admission = require("prisn.policies.admission")

describe("prisn.policies.admission", function()
  local ADMIN = { token_id = "t1", role = "admin", namespaces = { "*" }, cluster_admin = true }
  local EDIT_A = { token_id = "t2", role = "edit", namespaces = { "a" }, cluster_admin = false }
  local ADMIN_A = { token_id = "t3", role = "admin", namespaces = { "a" }, cluster_admin = false }
  local SERVER = { uid = 0, min_isolation = 1 }

  -- A request for a workload that any token may have, changed by `spec`.
  local function request(caller, spec, server)
    local s = { isolation = 1, run_as = { uid = 65534, gid = 65534 }, bundle = "ab12", env_keys = {} }
    for k, v in pairs(spec or {}) do s[k] = v end
    return { action = "job.submit", namespace = "a", caller = caller, spec = s, server = server or SERVER }
  end

  local function admit(caller, spec, server)
    return admission.admit(request(caller, spec, server))
  end

  it("lets an edit token have an isolated workload from a bundle", function()
    assert.is_true(admit(EDIT_A))
    assert.is_true(admit(EDIT_A, { isolation = 3, env_keys = { "MODE", "PATH", "PYTHONPATH" }, port = 8080 }))
  end)

  it("lets a cluster-wide admin have anything", function()
    assert.is_true(admit(ADMIN, { isolation = 0, run_as = { uid = 0, gid = 0 }, script = "/srv/x.py", bundle = false,
      env_keys = { "LD_PRELOAD" }, hooks = { "h.lua" }, port = 80 }))
  end)

  local refused = {
    { "isolation below the minimum", { isolation = 0 }, "isolation 0 needs an admin token" },
    { "a root workload", { run_as = { uid = 0, gid = 0 } },
      "this workload would run as root (uid 0), which needs an admin token" },
    { "a server path", { script = "/etc/x.py", bundle = nil }, "a script path on the server needs an admin token" },
    { "LD_PRELOAD", { env_keys = { "A", "LD_PRELOAD" } }, "the environment variable LD_PRELOAD needs an admin token" },
    { "LD_LIBRARY_PATH", { env_keys = { "LD_LIBRARY_PATH" } },
      "the environment variable LD_LIBRARY_PATH needs an admin token" },
    { "PRISN_*", { env_keys = { "PRISN_HOME" } }, "the environment variable PRISN_HOME needs an admin token" },
    { "GCONV_PATH", { env_keys = { "GCONV_PATH" } }, "the environment variable GCONV_PATH needs an admin token" },
    { "bundle hooks", { hooks = { "/b/hooks.lua" } }, "deploy hooks from the bundle need an admin token" },
    { "a privileged port", { port = 443 }, "port 443 (below 1024) needs an admin token" },
  }
  for _, case in ipairs(refused) do
    it("refuses " .. case[1] .. " to an edit token and to a namespaced admin, with a hint", function()
      for _, caller in ipairs({ EDIT_A, ADMIN_A }) do
        local allowed, reason, hint = admit(caller, case[2])
        assert.is_false(allowed)
        assert.equal(case[3], reason)
        assert.is_string(hint)
      end
    end)
  end

  it("refuses a workload that would run as prisn's own user (a server that is not root)", function()
    local allowed, reason = admit(EDIT_A, { run_as = { uid = 1000, gid = 1000 } }, { uid = 1000, min_isolation = 1 })
    assert.is_false(allowed)
    assert.equal("this workload would run as prisn's own user (uid 1000), which needs an admin token", reason)
  end)

  it("follows the server's minimum isolation", function()
    assert.is_true(admit(EDIT_A, { isolation = 0 }, { uid = 0, min_isolation = 0 }))
    local allowed, reason, hint = admit(EDIT_A, { isolation = 1 }, { uid = 0, min_isolation = 2 })
    assert.is_false(allowed)
    assert.equal("isolation 1 needs an admin token", reason)
    assert.matches("at isolation 2 or above", hint)
  end)

  it("never names another namespace's objects in a reason", function()
    for _, case in ipairs(refused) do
      local _, reason = admit(EDIT_A, case[2])
      assert.is_nil(reason:find("namespace", 1, true))
    end
  end)
end)
