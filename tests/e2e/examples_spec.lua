-- examples/: every folder has a README, and every shell block of it runs as
-- written (tests/e2e/docs_blocks.lua), from a copy of the folder, against one
-- server shared by all the examples (a server per example would cost a
-- start and a stop each). The suite has no network: pip installs from a
-- folder holding wheels built here (tests/e2e/wheels.lua), npm's registry
-- is a dead loopback port, so an example that needs either fails here
-- instead of reaching out. examples/hello.py, the README's first command,
-- is checked too.
local h = require("e2e.helper")
local blocks = require("e2e.docs_blocks")
local wheels = require("e2e.wheels")
local uv = require("luv")

local EXAMPLES = h.source_dir .. "/examples"

-- The example folders, in name order.
local function folders()
  local list = {}
  for name, kind in uv.fs_scandir_next, assert(uv.fs_scandir(EXAMPLES)) do
    if kind == "directory" then list[#list + 1] = name end
  end
  table.sort(list)
  return list
end

-- What the examples install, offline: their Python and Node dependencies.
local function offline_env()
  local scratch = h.tempdir("prisn-examples")
  local wheel_dir = wheels.build({ { dist = "humanize", version = "4.9.0", package = "humanize",
    value = "humanize 4.9.0 (a stand-in built by the suite)" } })
  return blocks.env({
    PIP_NO_INDEX = "1",
    PIP_FIND_LINKS = wheel_dir,
    PIP_CONFIG_FILE = "/dev/null",
    PIP_CACHE_DIR = scratch .. "/pip-cache",
    npm_config_registry = "http://127.0.0.1:9/",
    npm_config_cache = scratch .. "/npm-cache",
    npm_config_audit = "false",
    npm_config_fund = "false",
    npm_config_update_notifier = "false",
  })
end

describe("examples/", function()
  local env

  setup(function()
    env = offline_env()
    local r = h.prisn({ "server", "start" }, { env = env })
    assert(r.code == 0, r.stderr)
  end)

  teardown(function()
    if env then h.stop_server(env) end
    h.cleanup()
  end)

  it("has a README in every folder", function()
    local missing = {}
    for _, name in ipairs(folders()) do
      if not h.read(EXAMPLES .. "/" .. name .. "/README.md") then missing[#missing + 1] = name end
    end
    assert.is_true(#folders() >= 7)
    assert.same({}, missing)
  end)

  it("hello.py runs as the README's first command runs it", function()
    local r = h.prisn({ "run", "examples/hello.py" }, { env = env, cwd = h.source_dir })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^hello, world, from Python 3%.", r.stdout)
  end)

  for _, name in ipairs(folders()) do
    it(name .. "/README.md runs as written", function()
      local cwd = blocks.copy(EXAMPLES .. "/" .. name)
      local page = "examples/" .. name .. "/README.md"
      assert.same({}, (blocks.run_page(cwd .. "/README.md", page, env, cwd)))
    end)
  end
end)
