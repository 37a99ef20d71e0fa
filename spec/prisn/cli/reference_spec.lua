local cli = require("prisn.cli")
local reference = require("prisn.cli.reference")

describe("docs/CLI.md", function()
  it("is the reference generated from the command declarations", function()
    local path = (os.getenv("PRISN_SOURCE_DIR") or ".") .. "/docs/CLI.md"
    local f = assert(io.open(path, "r"), "docs/CLI.md is missing")
    local committed = f:read("a")
    f:close()
    assert.equal(reference.markdown(cli.root()), committed,
      "docs/CLI.md is stale: regenerate it with build/prisn lua contrib/gen-cli-reference.lua > docs/CLI.md")
  end)

  it("documents every visible command", function()
    local text = reference.markdown(cli.root())
    for _, cmd in ipairs(cli.root().subcommands) do
      if not cmd.hidden then assert.matches("\n### prisn " .. cmd.name .. "\n", text, 1, true) end
    end
  end)
end)
