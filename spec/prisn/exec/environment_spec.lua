-- prisn.exec.environment: the progress of an environment build, pip's and
-- npm's lines summarised.
local environment = require("prisn.exec.environment")

describe("prisn.exec.environment progress", function()
  it("summarises pip's and npm's lines, and drops the rest", function()
    assert.equal("collecting requests", environment.summarize("Collecting requests"))
    assert.equal("processing w-1.0-py3-none-any.whl", environment.summarize("Processing /tmp/x/w-1.0-py3-none-any.whl"))
    assert.equal("downloading r-2.0.whl", environment.summarize("  Downloading r-2.0.whl (62 kB)"))
    assert.equal("installing a, b", environment.summarize("Installing collected packages: a, b"))
    assert.equal("installed a-1 b-2", environment.summarize("Successfully installed a-1 b-2"))
    assert.equal("added 3 packages in 2s", environment.summarize("added 3 packages in 2s"))
    assert.is_nil(environment.summarize("Looking in links: /srv/wheels"))
  end)

  it("prints on a terminal only, and rewrites one line while pip works", function()
    local written = {}
    local stream = { write = function(_, ...) for _, s in ipairs({ ... }) do written[#written + 1] = s end end,
      flush = function() end }
    local p = environment.progress_printer(true, "requirements.txt", stream)
    p("building", { dependencies = { "a" } })
    p("output", { data = "Collecting a\nInstalling coll" })
    p("output", { data = "ected packages: a\n" })
    p("built", {})
    local text = table.concat(written)
    assert.matches("^prisn: installing 1 dependency from requirements.txt: a\n", text)
    assert.matches("\r\27%[Kprisn: %d+%.%ds collecting a\r\27%[Kprisn: %d+%.%ds installing a\r\27%[K", text)
    assert.matches("prisn: environment ready in %d+%.%ds\n$", text)
    written = {}
    local silent = environment.progress_printer(false, "x", stream)
    silent("building", { dependencies = { "a" } })
    silent("output", { data = "Collecting a\n" })
    assert.same({}, written)
  end)
end)
