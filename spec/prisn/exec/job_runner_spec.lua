-- prisn.exec.job_runner: when a server job's sandbox init may be a copy of
-- its runner (which holds other jobs' data) rather than an exec of prisn.
local job_runner = require("prisn.exec.job_runner")

describe("prisn.exec.job_runner.init_in_place_allowed", function()
  local function probe(user_ns)
    return function() return { ok = true, user_ns = user_ns } end
  end

  it("a root runner: only for a workload switched to another uid than 0", function()
    assert.is_true(job_runner.init_in_place_allowed({ uid = 65534, gid = 65534 }, 0, probe(false)))
    assert.is_true(job_runner.init_in_place_allowed({ uid = 1000, gid = 0 }, 0, probe(false)))
    -- Root keeps CAP_SYS_PTRACE: it could read the copy (/proc/1/mem).
    assert.is_false(job_runner.init_in_place_allowed({ uid = 0, gid = 0 }, 0, probe(false)))
    assert.is_false(job_runner.init_in_place_allowed({ uid = 0, gid = 65534 }, 0, probe(false)))
    -- No switch (isolation 0, or a caller that kept root).
    assert.is_false(job_runner.init_in_place_allowed(nil, 0, probe(false)))
  end)

  it("a runner that is not root: only when the workload gets a user namespace of its own", function()
    assert.is_true(job_runner.init_in_place_allowed(nil, 1000, probe(true)))
    -- Namespaces through capabilities, without a user namespace: the
    -- workload would keep them over the copy.
    assert.is_false(job_runner.init_in_place_allowed(nil, 1000, probe(false)))
  end)
end)
