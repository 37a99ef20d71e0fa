-- prisn.exec.job_lock: one runner per job, and a server that can tell
-- whether a job's runner still runs.
local uv = require("luv")
local job_lock = require("prisn.exec.job_lock")
local remove_tree = require("support").remove_tree

describe("prisn.exec.job_lock", function()
  local home

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
  end)

  after_each(function()
    remove_tree(home)
  end)

  it("names a job's claim after the home's key, not after the job id alone", function()
    local name = job_lock.claim_name(home, "06h1m9kbzd7n")
    assert.matches("^prisn%-job/%x+$", name)
    assert.equal(name, job_lock.claim_name(home, "06h1m9kbzd7n"))
    assert.not_equal(name, job_lock.claim_name(home, "06h1m9kbzd7p"))
    assert.is_nil(name:find("06h1m9kbzd7n", 1, true))
  end)

  it("lets one runner hold a job, and tells the server it runs until it lets go", function()
    assert.is_false((job_lock.runner_alive(home, "06h1m9kbzd7n")))
    local lock = assert(job_lock.take(home, "06h1m9kbzd7n"))
    local second, held = job_lock.take(home, "06h1m9kbzd7n")
    assert.is_nil(second)
    assert.is_true(held)
    assert.is_true((job_lock.runner_alive(home, "06h1m9kbzd7n")))
    -- Another job's lock is another lock.
    local other = assert(job_lock.take(home, "06h1m9kbzd7p"))
    job_lock.release(home, "06h1m9kbzd7p", other)
    job_lock.release(home, "06h1m9kbzd7n", lock)
    assert.is_false((job_lock.runner_alive(home, "06h1m9kbzd7n")))
    job_lock.release(home, "06h1m9kbzd7n", nil) -- no lock: nothing to do
  end)
end)
