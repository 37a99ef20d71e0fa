-- prisn.server.supervisor.serving: which instances the data plane forwards
-- to (a deployment's pool), across a server restart.
local supervisor = require("prisn.server.supervisor")

describe("prisn.server.supervisor.serving", function()
  it("counts healthy running instances that are not draining", function()
    assert.is_true(supervisor.serving({ healthy = true, pid = 10 }))
    assert.is_false(supervisor.serving({ healthy = true, pid = 10, removing = true }))
    assert.is_false(supervisor.serving({ healthy = true }))
    assert.is_false(supervisor.serving({ healthy = false, pid = 10 }))
  end)

  it("keeps an instance re-adopted at a restart in the pool until its first health result, not a restarted one",
    function()
      assert.is_true(supervisor.serving({ recovering = true, adopted = true, pid = 10 }),
        "the data plane kept forwarding to it while the server was away")
      assert.is_false(supervisor.serving({ recovering = true, pid = 11 }), "started again: not listening yet")
      assert.is_false(supervisor.serving({ recovering = true, adopted = true, pid = 10, removing = true }))
    end)
end)
