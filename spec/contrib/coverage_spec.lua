-- contrib/coverage.lua: merging the binary's Lua line counts and deciding
-- which lines can run.
local source_dir = os.getenv("PRISN_SOURCE_DIR") or "."
local coverage = dofile(source_dir .. "/contrib/coverage.lua")

describe("contrib/coverage.lua", function()
  it("adds up the counts of several processes, per file and line", function()
    local hits = {}
    coverage.read_counts("prisn-lua-coverage 1\nfile lua/a.lua\n3 2\n4 1\nfile lua/b.lua\n1 5\n", hits)
    coverage.read_counts("prisn-lua-coverage 1\nfile lua/a.lua\n3 1\n", hits)
    assert.same({ ["lua/a.lua"] = { [3] = 3, [4] = 1 }, ["lua/b.lua"] = { [1] = 5 } }, hits)
  end)

  it("counts the lines that hold an instruction, not a lone end nor a comment", function()
    local listing = "\n\t1\t[1]\tVARARGPREP\t0\n\t2\t[2]\tLOADI\t0 1\n\t3\t[4]\tRETURN0\t\n"
    local source = "-- a comment\nlocal x = 1\n\nend\n"
    assert.same({ [2] = true }, coverage.runnable_lines(listing, source))
  end)

  it("prints the lines never run as ranges", function()
    local runnable = { [1] = true, [2] = true, [3] = true, [5] = true, [7] = true, [8] = true }
    assert.equal("2-3, 7-8", coverage.missed_ranges(runnable, { [1] = 1, [5] = 2 }))
    assert.equal("1-3, 5, 7-8", coverage.missed_ranges(runnable, nil))
  end)

  it("counts a file in its folder and every parent folder", function()
    assert.same({ "lua", "lua/prisn", "lua/prisn/store" }, coverage.folders("lua/prisn/store/jobs.lua"))
    assert.same({ "policies" }, coverage.folders("policies/admission.lua"))
  end)
end)
