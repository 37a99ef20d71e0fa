local suggest = require("prisn.suggest")

describe("prisn.suggest", function()
  it("counts an adjacent swap as one edit", function()
    assert.equal(1, suggest.distance("verison", "version"))
    assert.equal(0, suggest.distance("run", "run"))
    assert.equal(3, suggest.distance("", "abc"))
    assert.equal(1, suggest.distance("doctr", "doctor"))
  end)

  it("suggests close names, best first", function()
    local names = { "version", "doctor", "deploy", "delete", "help" }
    assert.equal("Did you mean 'version'?", suggest.did_you_mean("verison", names))
    assert.equal("Did you mean 'doctor'?", suggest.did_you_mean("docter", names))
    assert.same({ "delete", "deploy" }, suggest.closest("de", names))
  end)

  it("stays quiet when nothing is close", function()
    assert.is_nil(suggest.did_you_mean("xyzzy", { "version", "doctor" }))
  end)

  it("adds a prefix for flags", function()
    assert.equal("Did you mean '--timeout'?", suggest.did_you_mean("timout", { "timeout" }, "--"))
  end)
end)
