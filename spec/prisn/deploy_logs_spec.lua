-- prisn.deploy_logs: where instance logs live, the bound per deployment,
-- reading them merged (time order, tail over merged lines, since, one
-- instance) and following them across rotations and new instances.
local uv = require("luv")
local logs = require("prisn.logs")
local deploy_logs = require("prisn.deploy_logs")
local remove_tree = require("support").remove_tree

local T0 = 1795718760000

local function size_of(path)
  local st = uv.fs_stat(path)
  return st and st.size or 0
end

-- "[api-1] stdout line\n"-style summaries of lines, for exact comparisons.
local function texts(lines)
  local out = {}
  for i, l in ipairs(lines) do out[i] = string.format("%s %s %s", l.instance, l.stream, l.data) end
  return out
end

describe("prisn.deploy_logs", function()
  local home, writers

  -- A writer for instance `number` of deployment api whose clock is set by
  -- the spec: w.at = ms.
  local function writer(number, opts)
    opts = opts or {}
    local w
    local now = { at = T0 }
    w = assert(logs.writer(deploy_logs.instance_path(home, "default", "api", number), {
      max_bytes = opts.max_bytes, clock = function() return now.at end }))
    writers[#writers + 1] = w
    return function(at, stream, data)
      now.at = at
      assert(w:write(stream, data))
    end
  end

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    writers = {}
  end)

  after_each(function()
    for _, w in ipairs(writers) do w:close() end
    remove_tree(home)
  end)

  it("keeps instance N of a deployment in logs/<ns>/deploy/<name>/N.log", function()
    assert.equal(home .. "/logs/default/deploy/api/3.log", deploy_logs.instance_path(home, "default", "api", 3))
    assert.equal("api-3", deploy_logs.instance_name("api", 3))
    assert.has_error(function() deploy_logs.instance_path(home, "default", "api", 0) end)
    assert.has_error(function() deploy_logs.instance_path(home, "default", "../x", 1) end)
  end)

  it("splits the bound over replicas + 1 instances, at least 64 KiB each", function()
    assert.equal(50 * 1024 * 1024, deploy_logs.total_bytes(""))
    assert.equal(50 * 1024 * 1024 // 3, deploy_logs.max_bytes_per_instance(2, deploy_logs.total_bytes("")))
    assert.equal(50 * 1024 * 1024 // 2, deploy_logs.max_bytes_per_instance(0, deploy_logs.DEFAULT_TOTAL_BYTES))
    assert.equal(64 * 1024, deploy_logs.max_bytes_per_instance(1000, deploy_logs.DEFAULT_TOTAL_BYTES))
    assert.equal(10 * 1024 * 1024, deploy_logs.total_bytes("10M"))
    local bytes, warning = deploy_logs.total_bytes("lots")
    assert.equal(deploy_logs.DEFAULT_TOTAL_BYTES, bytes)
    assert.equal("PRISN_DEPLOY_LOG_MAX_BYTES=lots is not a size of at least 128K; using 50M", warning)
  end)

  it("merges the instances' lines in time order, each tagged with its instance", function()
    local one, two = writer(1), writer(2)
    one(T0 + 10, "stdout", "a1\n")
    two(T0 + 5, "stdout", "b1\nb2\n")
    one(T0 + 20, "stderr", "a-err\n")
    two(T0 + 20, "stdout", "b3\n")
    one(T0 + 30, "stdout", "no newline")
    assert.same({
      "api-2 stdout b1\n", "api-2 stdout b2\n", "api-1 stdout a1\n",
      "api-1 stderr a-err\n", "api-2 stdout b3\n", "api-1 stdout no newline",
    }, texts(deploy_logs.read(home, "default", "api")))
    local first = deploy_logs.read(home, "default", "api")[1]
    assert.same({ instance = "api-2", number = 2, stream = "stdout", time_ms = T0 + 5, data = "b1\n" },
      { instance = first.instance, number = first.number, stream = first.stream, time_ms = first.time_ms,
        data = first.data })
  end)

  it("keeps a line split over several writes whole, stamped with its first byte", function()
    local one = writer(1)
    one(T0 + 1, "stdout", "GET ")
    one(T0 + 2, "stderr", "warn\n")
    one(T0 + 3, "stdout", "/ 200\n")
    local lines = deploy_logs.read(home, "default", "api")
    assert.same({ "api-1 stdout GET / 200\n", "api-1 stderr warn\n" }, texts(lines))
    assert.equal(T0 + 1, lines[1].time_ms)
  end)

  it("tails the last N lines after merging, and filters by since and instance", function()
    local one, two, three = writer(1), writer(2), writer(3)
    for i = 1, 5 do
      one(T0 + i * 10, "stdout", "one " .. i .. "\n")
      two(T0 + i * 10 + 1, "stdout", "two " .. i .. "\n")
      three(T0 + i * 10 + 2, "stdout", "three " .. i .. "\n")
    end
    assert.same({ "api-2 stdout two 5\n", "api-3 stdout three 5\n" },
      texts(deploy_logs.read(home, "default", "api", { tail = 2 })))
    assert.same({}, deploy_logs.read(home, "default", "api", { tail = 0 }))
    assert.same({ "api-1 stdout one 5\n", "api-2 stdout two 5\n", "api-3 stdout three 5\n" },
      texts(deploy_logs.read(home, "default", "api", { since = T0 + 50 })))
    assert.same({ "api-2 stdout two 4\n", "api-2 stdout two 5\n" },
      texts(deploy_logs.read(home, "default", "api", { instance = 2, tail = 2 })))
    assert.same({ "api-3 stdout three 5\n" },
      texts(deploy_logs.read(home, "default", "api", { instance = 3, since = T0 + 45, tail = 10 })))
    assert.same({}, deploy_logs.read(home, "default", "api", { instance = 9 }))
    assert.same({}, deploy_logs.read(home, "default", "nothing"))
  end)

  it("reads the rotated .1 file before the current one", function()
    local one = writer(1, { max_bytes = 1024 })
    for i = 1, 40 do one(T0 + i, "stdout", string.format("line %02d\n", i)) end
    assert.is_true(size_of(deploy_logs.instance_path(home, "default", "api", 1) .. ".1") > 0)
    local lines = deploy_logs.read(home, "default", "api")
    assert.equal("line 40\n", lines[#lines].data)
    for i = 2, #lines do assert.is_true(lines[i - 1].time_ms < lines[i].time_ms) end
  end)

  describe("follower", function()
    local clock_ms, clock

    before_each(function()
      clock_ms = T0
      clock = function() return clock_ms end
    end)

    local function follower(opts)
      opts = opts or {}
      opts.clock = clock
      return deploy_logs.follower(home, "default", "api", opts)
    end

    it("returns what was kept first, then only what is new", function()
      local one = writer(1)
      one(T0 + 1, "stdout", "old\n")
      local f = follower()
      assert.same({ "api-1 stdout old\n" }, texts(f:poll()))
      assert.same({}, f:poll())
      one(T0 + 2, "stdout", "new\n")
      assert.same({ "api-1 stdout new\n" }, texts(f:poll()))
    end)

    it("notices an instance that appears later and one that is replaced", function()
      local one = writer(1)
      one(T0 + 1, "stdout", "from 1\n")
      local f = follower()
      assert.same({ "api-1 stdout from 1\n" }, texts(f:poll()))
      local two = writer(2)
      two(T0 + 2, "stdout", "from 2\n")
      one(T0 + 3, "stderr", "1 again\n")
      assert.same({ "api-2 stdout from 2\n", "api-1 stderr 1 again\n" }, texts(f:poll()))
      -- A rolling update: instance 1 goes (its log pruned), 3 comes.
      uv.fs_unlink(deploy_logs.instance_path(home, "default", "api", 1))
      local three = writer(3)
      three(T0 + 4, "stdout", "from 3\n")
      assert.same({ "api-3 stdout from 3\n" }, texts(f:poll()))
    end)

    it("follows an instance across a rotation without losing or repeating a line", function()
      local one = writer(1, { max_bytes = 1024 })
      local f = follower()
      assert.same({}, f:poll())
      local seen = {}
      for i = 1, 60 do
        one(T0 + i, "stdout", string.format("line %02d\n", i))
        if i % 7 == 0 then
          for _, l in ipairs(f:poll()) do seen[#seen + 1] = l.data end
        end
      end
      for _, l in ipairs(f:poll()) do seen[#seen + 1] = l.data end
      assert.is_true(size_of(deploy_logs.instance_path(home, "default", "api", 1) .. ".1") > 0)
      assert.equal(60, #seen)
      for i = 1, 60 do assert.equal(string.format("line %02d\n", i), seen[i]) end
    end)

    it("holds back an unfinished line until its newline or the flush delay", function()
      local one = writer(1)
      local f = follower({ flush_ms = 500 })
      one(T0 + 1, "stdout", "GET ")
      assert.same({}, f:poll())
      one(T0 + 2, "stdout", "/ 200\nPOST ")
      assert.same({ "api-1 stdout GET / 200\n" }, texts(f:poll()))
      clock_ms = clock_ms + 499
      assert.same({}, f:poll())
      clock_ms = clock_ms + 1
      assert.same({ "api-1 stdout POST " }, texts(f:poll()))
    end)

    it("follows only one instance when asked", function()
      local one, two = writer(1), writer(2)
      local f = follower({ instance = 2 })
      one(T0 + 1, "stdout", "one\n")
      two(T0 + 2, "stdout", "two\n")
      assert.same({ "api-2 stdout two\n" }, texts(f:poll()))
    end)
  end)

  describe("prune and remove", function()
    local function fill(number, bytes, mtime)
      local write = writer(number)
      write(T0, "stdout", string.rep("x", bytes - 40) .. "\n")
      local path = deploy_logs.instance_path(home, "default", "api", number)
      assert(uv.fs_utime(path, mtime, mtime))
    end

    it("deletes the logs of instances that are gone, oldest first, while over the bound", function()
      fill(1, 10000, 1000)
      fill(2, 10000, 3000)
      fill(3, 10000, 2000)
      fill(4, 10000, 500)
      fill(5, 10000, 100)
      -- 4 and 5 run on; 1, 2, 3 are gone. Bound 35000: two of them must go.
      local removed, left = deploy_logs.prune(home, "default", "api", { [4] = true, [5] = true }, 35000)
      assert.same({ 1, 3 }, removed)
      assert.is_true(left <= 35000 and left > 25000)
      local numbers = {}
      for _, inst in ipairs(deploy_logs.instances(home, "default", "api")) do numbers[#numbers + 1] = inst.number end
      assert.same({ 2, 4, 5 }, numbers)
    end)

    it("never deletes a kept instance, even over the bound, and takes a list too", function()
      fill(1, 10000, 1000)
      fill(2, 10000, 2000)
      local removed, left = deploy_logs.prune(home, "default", "api", { 1, 2 }, 1000)
      assert.same({}, removed)
      assert.is_true(left > 1000)
      removed = deploy_logs.prune(home, "default", "api", { 2 }, 1000)
      assert.same({ 1 }, removed)
      assert.is_nil(uv.fs_stat(deploy_logs.instance_path(home, "default", "api", 1)))
    end)

    it("removes every log of a deployment", function()
      local one = writer(1, { max_bytes = 1024 })
      for i = 1, 40 do one(T0 + i, "stdout", string.format("line %02d\n", i)) end
      writer(2)(T0, "stdout", "x\n")
      assert.is_true(deploy_logs.remove(home, "default", "api"))
      assert.is_nil(uv.fs_stat(deploy_logs.dir(home, "default", "api")))
      assert.is_true(deploy_logs.remove(home, "default", "api"))
    end)
  end)

  describe("line readers of any log and the query options", function()
    it("reads a job's log as lines of a source, merged stably with a deployment's by one counter", function()
      local api = writer(1)
      local job_path = logs.job_path(home, "default", "06h1m9kbzd7n")
      local now = { at = T0 }
      local w = assert(logs.writer(job_path, { clock = function() return now.at end }))
      writers[#writers + 1] = w
      api(T0 + 10, "stdout", "api one\n")
      now.at = T0 + 10
      assert(w:write("stdout", "job one\njob two\n"))
      now.at = T0 + 5
      assert(w:write("stderr", "job err"))
      local counter = { n = 0 }
      local job = deploy_logs.file_lines(job_path, "job/06h1m9kbzd7n", { counter = counter, flush_ms = 10000 })
      local follower = deploy_logs.follower(home, "default", "api", { counter = counter })
      local out = follower:poll()
      job:poll(false, out)
      local seen = {}
      for i, l in ipairs(deploy_logs.merge(out)) do seen[i] = l.source .. " " .. l.data end
      -- Equal times keep the order they were read in; the unfinished line waits.
      assert.same({ "api-1 api one\n", "job/06h1m9kbzd7n job one\n", "job/06h1m9kbzd7n job two\n" }, seen)
      assert.same({ { source = "job/06h1m9kbzd7n", stream = "stderr", data = "job err" } },
        (function()
          local l = job:poll(true)[1]
          return { { source = l.source, stream = l.stream, data = l.data } }
        end)())
    end)

    it("checks a log request's since, tail, instance and stream, and select takes the stream before the tail",
      function()
      local opts = assert(deploy_logs.options({ since = "1h", tail = "5", instance = "2", follow = "1",
        stream = "stderr" }))
      assert.same({ 5, 2, true, "stderr" }, { opts.tail, opts.instance, opts.follow, opts.stream })
      assert.is_true(opts.since <= require("prisn.clock").now_ms() - 3600 * 1000 + 1000)
      assert.is_nil(deploy_logs.options({ stream = "all" }).stream)
      local ok, err = deploy_logs.options({ tail = "-1" })
      assert.is_nil(ok)
      assert.equal("tail must be a whole number of at least 0, got '-1'", err)
      assert.is_nil((deploy_logs.options({ instance = "0" })))
      assert.is_nil((deploy_logs.options({ stream = "both" })))
      local hint
      ok, err, hint = deploy_logs.options({ since = "soon" })
      assert.is_nil(ok)
      assert.matches("^bad 'since': ", err)
      assert.matches("since=1h", hint)
      local lines = { { stream = "stdout", time_ms = 1, data = "a" }, { stream = "stderr", time_ms = 2, data = "b" },
        { stream = "stdout", time_ms = 3, data = "c" } }
      local picked = deploy_logs.select(lines, { stream = "stdout", tail = 1 })
      assert.equal("c", picked[1].data)
      assert.equal(1, #picked)
      assert.equal("b", deploy_logs.select(lines, { stream = "stderr", tail = 1 })[1].data)
    end)
  end)
end)
