local deps = require("prisn.exec.deps")
local fake_tree = require("prisn.exec.deps.fake_tree")

describe("prisn.exec.deps", function()
  it("dispatches by manager", function()
    local ctx = fake_tree({ ["/w/a.py"] = "import yaml\n", ["/w/a.js"] = "require('chalk')\n" })
    assert.same({ source = "imports", file = "/w/a.py", dependencies = { "PyYAML" }, options = {} },
      deps.detect("python", "/w/a.py", ctx))
    assert.same({ source = "imports", file = "/w/a.js", dependencies = { "chalk" }, options = {} },
      deps.detect("node", "/w/a.js", ctx))
  end)

  it("needs nothing for manager none, without touching the filesystem", function()
    local ctx = fake_tree({})
    assert.same({ source = "none", dependencies = {}, options = {} }, deps.detect("none", "/w/a.sh", ctx))
    assert.same({}, ctx.reads)
  end)

  it("passes failures through as nil, message, code", function()
    local ctx = fake_tree({ ["/w/a.py"] = "# /// script\n" })
    local r, err, code = deps.detect("python", "/w/a.py", ctx)
    assert.is_nil(r)
    assert.equal("/w/a.py:1: unterminated '# /// script' block (no closing '# ///')", err)
    assert.equal("EDEPS", code)
  end)

  it("raises for an unknown manager", function()
    assert.has_error(function() deps.detect("ruby", "/w/a.rb", {}) end,
      'unknown dependency manager "ruby" (python, node or none)')
  end)

  it("normalizes per manager", function()
    assert.same({ "foo-bar>=1", "requests" }, deps.normalize("python", { "requests", "Foo.Bar >= 1" }))
    assert.same({ "a@1", "b@2" }, deps.normalize("node", { "b@2", "a@1", "b@2" }))
    assert.same({}, deps.normalize("none", { "x" }))
  end)
end)
