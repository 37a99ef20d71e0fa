-- The guides run as written: every shell block of docs/GETTING-STARTED.md and
-- docs/TROUBLESHOOTING.md is run against the real binary in a temporary
-- PRISN_HOME and an empty folder, and the output each page shows is compared
-- (tests/e2e/docs_blocks.lua says how a page marks its blocks). A guide
-- whose command changed its output, or stopped working, fails here.
local h = require("e2e.helper")
local blocks = require("e2e.docs_blocks")

local PAGES = { "docs/GETTING-STARTED.md", "docs/TROUBLESHOOTING.md" }

describe("the guides", function()
  local envs = {}

  teardown(function()
    for _, env in ipairs(envs) do h.stop_server(env) end
    h.cleanup()
  end)

  for _, page in ipairs(PAGES) do
    it(page .. " runs as written", function()
      local env = blocks.env()
      envs[#envs + 1] = env
      local problems = blocks.run_page(h.source_dir .. "/" .. page, page, env, h.tempdir("prisn-docs-cwd"))
      h.stop_server(env)
      assert.same({}, problems)
    end)
  end
end)
