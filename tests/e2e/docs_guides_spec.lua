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

  -- A matcher that matched anything would pass every page.
  it("compares output strictly where a page shows no '...'", function()
    assert.is_true(blocks.output_matches({ "a  b", "..." }, "a b\nmore\nlines\n"))
    assert.is_true(blocks.output_matches({ "job ... done" }, "job 06h5 done\n"))
    assert.is_false(blocks.output_matches({ "job ... done" }, "job 06h5 failed\n"))
    assert.is_false(blocks.output_matches({ "one" }, "one\ntwo\n"))
    assert.is_false(blocks.output_matches({ "one", "two" }, "one\n"))
    assert.is_false(blocks.output_matches({ "50% (x)" }, "50 (x)\n"))
    assert.is_true(blocks.output_matches({ "done (x)." }, "done (x).\n"))
    assert.is_false(blocks.output_matches({ "done (x)." }, "done (x)\n"))
    assert.is_true(blocks.output_matches({ "pid ...)." }, "pid 12).\n"))
    local cmds = blocks.commands("$ a \\\n  b\nout\n\n$ c\n")
    assert.same({ { command = "a \\\n  b", expected = { "out" } }, { command = "c", expected = {} } }, cmds)
    assert.has_error(function() blocks.parse("```\nx\n```\n", "t.md") end,
      "t.md:1: a fenced block without a language")
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
