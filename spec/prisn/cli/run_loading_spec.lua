-- What `prisn run` loads: the modules only some paths use (the bundle
-- packer, the output formatters, a python environment's build side) are
-- loaded by those paths, not by every run (tests/bench/run-report.md, third
-- pass), and still work when a path needs them.

-- Forgets `names` so the next require runs them again.
local function unload(names)
  for _, name in ipairs(names) do package.loaded[name] = nil end
end

describe("prisn run's loading", function()
  it("declares run's flags without loading the bundle packer", function()
    unload({ "prisn.cli.commands.run", "prisn.cli.workload", "prisn.bundle", "prisn.bundle.ignore" })
    local run = require("prisn.cli.commands.run")
    assert.is_table(run[1].flags)
    assert.is_nil(package.loaded["prisn.bundle"])
    assert.is_function(require("prisn.cli.workload").upload)
  end)

  it("makes a writer without loading a formatter, and loads each when it renders", function()
    local formatters = { "prisn.output.text", "prisn.output.json", "prisn.output.yaml" }
    unload({ "prisn.output" })
    unload(formatters)
    local output = require("prisn.output")
    output.writer({ format = "text" })
    for _, name in ipairs(formatters) do assert.is_nil(package.loaded[name], name) end
    assert.equal("a: 1\n", output.render({ a = 1 }, "yaml"))
    assert.is_table(package.loaded["prisn.output.yaml"])
    assert.is_nil(package.loaded["prisn.output.text"])
    assert.equal('{\n  "a": 1\n}\n', output.render({ a = 1 }, "json"))
    assert.equal("A\n1\n", output.render({ { a = 1 } }, "text"))
  end)

  it("applies a cached python environment without loading its build side", function()
    local build_side = { "prisn.exec.install.resolution", "prisn.exec.install.venv", "prisn.exec.install.wheelcache" }
    unload({ "prisn.exec.install.python" })
    unload(build_side)
    local python = require("prisn.exec.install.python")
    local launch = { env = { PATH = "/usr/bin" } }
    python.apply("/envs/x", launch)
    assert.same({ interpreter = "/envs/x/bin/python",
      env = { PATH = "/envs/x/bin:/usr/bin", VIRTUAL_ENV = "/envs/x" } }, launch)
    for _, name in ipairs(build_side) do assert.is_nil(package.loaded[name], name) end
  end)
end)
