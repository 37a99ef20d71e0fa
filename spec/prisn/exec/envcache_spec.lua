-- prisn.exec.envcache: what a restricted workload (a token that is not a
-- cluster-wide admin) may have of the cache: an environment that exists,
-- never a build.
local uv = require("luv")
local cjson = require("cjson")
local envcache = require("prisn.exec.envcache")
local remove_tree = require("support").remove_tree

describe("prisn.exec.envcache", function()
  local home
  local spec

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    spec = { home = home, runner = "python3", manager = "python", dependencies = { "pyyaml" },
      interpreter = { executable = "/usr/bin/python3", version = "3.11.2" }, cached_only = true }
  end)

  after_each(function() remove_tree(home) end)

  it("never builds with cached_only: an error that says why and what to do, nothing made", function()
    local ok, err = pcall(envcache.ensure, spec)
    assert.is_false(ok)
    assert.equal("EDEPS", err.code)
    assert.equal("the python dependencies of this workload (pyyaml) are not built, and this token's workloads "
      .. "may not build them", err.message)
    assert.matches("an admin builds the environment once", err.hint)
    assert.is_nil(uv.fs_stat(home .. "/envs"))
  end)

  it("hands out an environment that exists with cached_only", function()
    local key = envcache.key(spec.manager, spec.interpreter, spec.dependencies)
    local dir = envcache.path(home, spec.runner, key)
    assert(require("prisn.fs").mkdir_p(dir))
    assert(require("prisn.fs").write_atomic(dir .. "/" .. envcache.MARKER, cjson.encode({ key = key })))
    local got, got_key, built = envcache.ensure(spec)
    assert.same({ dir, key, false }, { got, got_key, built })
  end)
end)
