-- prisn.store.job_specs: a server job's launch spec kept beside its record
-- until the job no longer needs it; jobs.delete takes both.
local uv = require("luv")
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local job_specs = require("prisn.store.job_specs")
local remove_tree = require("support").remove_tree

describe("prisn.store.job_specs", function()
  local home, db, id

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    id = jobs.create(db, { namespace = "default", script = "/srv/x.sh", runner = "bash", state = "queued",
      detached = true }).id
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  it("keeps a spec, the runner's pid beside it, and drops it", function()
    assert.equal(1, job_specs.put(db, id, '{"script":"/srv/x.sh"}'))
    assert.equal('{"script":"/srv/x.sh"}', job_specs.get(db, id))
    assert.equal(1, job_specs.set_runner_pid(db, id, 4242))
    assert.equal(4242, db:first("SELECT runner_pid FROM job_specs WHERE job_id = ?", id).runner_pid)
    assert.equal(1, job_specs.drop(db, id))
    assert.is_nil(job_specs.get(db, id))
    assert.equal(0, job_specs.drop(db, id)) -- none left: not an error
  end)

  it("refuses a second spec for a job and one for a job that does not exist", function()
    assert.equal(1, job_specs.put(db, id, "{}"))
    local ok, _, code = job_specs.put(db, id, "{}")
    assert.is_nil(ok)
    assert.matches("^SQLITE_CONSTRAINT", code)
    ok, _, code = job_specs.put(db, "nosuchjob", "{}")
    assert.is_nil(ok)
    assert.matches("^SQLITE_CONSTRAINT", code)
  end)

  it("goes with its job: jobs.delete takes both", function()
    assert.equal(1, job_specs.put(db, id, "{}"))
    jobs.delete(db, id)
    assert.is_nil(jobs.get_by_id(db, id))
    assert.is_nil(job_specs.get(db, id))
  end)
end)
