local schema = require("prisn.schema")

local runner_shape = {
  type = "table",
  fields = {
    name = { type = "string", required = true, pattern = "^[a-z][a-z0-9]*$", pattern_hint = "a lower-case name" },
    extensions = { type = "list", of = { type = "string" }, min_items = 1 },
    deps = { type = "string", values = { "python", "node", "none" } },
    timeout = { type = { "integer", "string" } },
    command = { type = { "list", "function" } },
  },
}

describe("prisn.schema", function()
  it("accepts a valid value", function()
    assert.is_true(schema.check({ name = "tcl", extensions = { ".tcl" }, deps = "none" }, runner_shape, "runner"))
  end)

  it("names a missing required field", function()
    local ok, err = schema.check({ extensions = { ".tcl" } }, runner_shape, "runner")
    assert.is_nil(ok)
    assert.equal("runner.name: is required", err)
  end)

  it("names the bad item of a list", function()
    local _, err = schema.check({ name = "tcl", extensions = { ".tcl", 7 } }, runner_shape, "runner")
    assert.equal("runner.extensions[2]: expected a string, got 7", err)
  end)

  it("lists the allowed values", function()
    local _, err = schema.check({ name = "tcl", deps = "ruby" }, runner_shape, "runner")
    assert.equal('runner.deps: "ruby" is not one of python, node, none', err)
  end)

  it("explains a pattern", function()
    local _, err = schema.check({ name = "Tcl" }, runner_shape, "runner")
    assert.equal('runner.name: "Tcl" is not a lower-case name', err)
  end)

  it("rejects unknown fields and lists the known ones", function()
    local _, err = schema.check({ name = "tcl", extension = ".tcl" }, runner_shape, "runner")
    assert.equal("runner.extension: unknown field (known fields: command, deps, extensions, name, timeout)", err)
  end)

  it("accepts any of several types", function()
    assert.is_true(schema.check({ name = "a", timeout = 5 }, runner_shape))
    assert.is_true(schema.check({ name = "a", command = function() end }, runner_shape))
    local _, err = schema.check({ name = "a", timeout = 1.5 }, runner_shape, "r")
    assert.equal("r.timeout: expected an integer or a string, got 1.5", err)
  end)

  it("enforces min_items and custom checks", function()
    local _, err = schema.check({ name = "a", extensions = {} }, runner_shape, "r")
    assert.equal("r.extensions: needs at least 1 item", err)
    local even = { type = "integer", check = function(v) return v % 2 == 0 or nil, "must be even" end }
    assert.is_true(schema.check(4, even))
    assert.same({ nil, "n: must be even" }, { schema.check(3, even, "n") })
  end)

  it("does not take a map for a list", function()
    local _, err = schema.check({ name = "a", extensions = { first = ".x" } }, runner_shape, "r")
    assert.equal("r.extensions: expected a list, got table", err)
  end)
end)
