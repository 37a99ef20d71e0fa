-- prisn.exec.limits against a fake prisn.core.cgroup: which limits go to the
-- cgroup, what falls back to rlimits and how that is said, how an OOM kill is
-- named, and that cleanup kills, waits and removes — without root.
local limits = require("prisn.exec.limits")

local M64 = 64 * 1024 * 1024

-- A fake core module. layout: what detect() answers; create_error: make
-- create() fail; kill_results / destroy_results: answers in order.
local function fake_cgroup(opts)
  opts = opts or {}
  local lib = { created = {}, calls = {} }
  local layout = opts.layout or {
    memory = { version = "v1", mount = "/sys/fs/cgroup/memory" },
    cpu = { version = "v1", mount = "/sys/fs/cgroup/cpu" },
    pids = { version = "v1", mount = "/sys/fs/cgroup/pids" },
  }
  function lib.detect() return layout end
  function lib.create(name, o)
    lib.created[#lib.created + 1] = { name = name, opts = o }
    if opts.create_error then return nil, opts.create_error, "EACCES" end
    local handle = { stats_value = opts.stats or { oom_kills = 0 } }
    function handle.procs_fds(_, all) return all and { 5, 6, 7 } or { 5, 6 } end
    function handle.dir_fd() return opts.dir_fd end
    function handle.stats(h) return h.stats_value end
    function handle.kill_all(_, o2)
      lib.calls[#lib.calls + 1] = "kill_all:" .. o2.rounds
      local r = table.remove(opts.kill_results or {}, 1)
      if r == nil then return true end
      return r
    end
    function handle.destroy(_, o2)
      lib.calls[#lib.calls + 1] = "destroy:" .. o2.attempts
      local r = table.remove(opts.destroy_results or {}, 1)
      if r == nil or r == true then return true end
      return nil, r .. ": /sys/fs/cgroup/memory/prisn/" .. name, r
    end
    lib.handle = handle
    return handle
  end
  return lib
end

local function deps(lib, extra)
  local d = {
    cgroup = lib,
    name = "job-1",
    warnings = {},
    sleeps = 0,
    uv = { getuid = function() return 1000 end, os_getpid = function() return 1 end, hrtime = function() return 7 end },
    count_processes = function() return 12 end,
  }
  d.warn = function(text) d.warnings[#d.warnings + 1] = text end
  d.sleep = function() d.sleeps = d.sleeps + 1 end
  for k, v in pairs(extra or {}) do d[k] = v end
  return d
end

describe("prisn.exec.limits", function()
  before_each(limits._reset_warning)

  describe("check", function()
    it("is false when no limit is asked", function()
      assert.is_false(limits.check({}))
      assert.is_false(limits.check(nil))
    end)

    it("keeps sensible values", function()
      assert.same({ memory = M64, cpu = 0.25, pids = 32 }, limits.check({ memory = M64, cpu = 0.25, pids = 32 }))
    end)

    it("refuses values that are surely mistakes, with a hint", function()
      local ok, err, hint = limits.check({ memory = 64 })
      assert.is_nil(ok)
      assert.equal("--memory must be a size from 1M to 8P, got 64", err)
      assert.equal("sizes without a unit are bytes: write --memory 256M", hint)
      assert.equal("--cpu is a number of cores from 0.01 to 1024, got 0", select(2, limits.check({ cpu = 0 })))
      assert.equal("--pids must be a whole number from 1 to 4194304, got 0", select(2, limits.check({ pids = 0 })))
    end)

    it("refuses huge, infinite and NaN values, naming the range", function()
      assert.equal("--memory must be a size from 1M to 8P, got 9007199254740993",
        select(2, limits.check({ memory = (1 << 53) + 1 })))
      assert.equal("memory must be a size from 1M to 8P, got 1e+308", select(2, limits.from_spec({ memory = 1e308 })))
      assert.equal('memory must be a size from 1M to 8P, got "9P"', select(2, limits.from_spec({ memory = "9P" })))
      for _, cpu in ipairs({ 0 / 0, math.huge, 1e308, -1 }) do
        assert.matches("^%-%-cpu is a number of cores from 0%.01 to 1024, got ", select(2, limits.check({ cpu = cpu })))
      end
      assert.equal("pids must be a whole number from 1 to 4194304, got 4194305",
        select(2, limits.from_spec({ pids = 4194305.0 })))
      assert.equal("pids must be a whole number from 1 to 4194304, got 1e+308",
        select(2, limits.from_spec({ pids = 1e308 })))
    end)

    it("reads JSON specs: float integers and size strings", function()
      assert.same({ memory = M64, pids = 32 }, limits.from_spec({ memory = 67108864.0, pids = 32.0 }))
      assert.same({ memory = M64, cpu = 0.5 }, limits.from_spec({ memory = "64M", cpu = 0.5 }))
      assert.is_false(limits.from_spec({}))
      local ok, err = limits.from_spec({ pids = 1.5 })
      assert.is_nil(ok)
      assert.equal("pids must be a whole number from 1 to 4194304, got 1.5", err)
      assert.equal('memory must be a size from 1M to 8P, got "lots"', select(2, limits.from_spec({ memory = "lots" })))
    end)

    it("describes limits", function()
      assert.equal("memory 64M, cpu 0.25, pids 32", limits.describe({ memory = M64, cpu = 0.25, pids = 32 }))
    end)
  end)

  describe("apply", function()
    it("puts every limit in a cgroup named after the workload", function()
      local lib = fake_cgroup({ dir_fd = 9 })
      local d = deps(lib)
      local l = limits.apply({ memory = M64, cpu = 0.5, pids = 10 }, d)
      assert.same({ name = "job-1", opts = { memory = M64, cpu = 0.5, pids = 10, parent = "prisn" } }, lib.created[1])
      assert.same({ cgroup_fd = 9, cgroup_procs_fds = { 5, 6 } }, l:spawn_options())
      assert.same({ cgroup_procs_fds = { 5, 6, 7 } }, l:spawn_options(true))
      assert.same({ memory = "cgroup", cpu = "cgroup", pids = "cgroup" }, l.enforced)
      assert.same({}, d.warnings)
    end)

    it("falls back to rlimits without cgroup access and says so once", function()
      local lib = fake_cgroup({ create_error = "EACCES: /sys/fs/cgroup/memory/prisn: Permission denied" })
      local d = deps(lib)
      local l = limits.apply({ memory = M64, cpu = 0.5, pids = 10 }, d)
      assert.same({ rlimits = { as = M64, nproc = 22 } }, l:spawn_options())
      assert.same({ memory = "rlimit", pids = "rlimit" }, l.enforced)
      assert.same({ table.concat({
        "prisn: no cgroup access (EACCES: /sys/fs/cgroup/memory/prisn: Permission denied); limits fall back to "
          .. "rlimits:",
        "  --memory 64M: RLIMIT_AS, which bounds address space, not memory in use (node or Java may fail early)",
        "  --pids 10: RLIMIT_NPROC, which counts every process of your user (set to 22: the 12 already running "
          .. "plus 10)",
        "  --cpu 0.5: not enforced (no rlimit can throttle CPU)",
        "prisn: run as root or delegate a cgroup to enforce them ('prisn doctor' shows what is available)",
      }, "\n") }, d.warnings)
      limits.apply({ memory = M64 }, d)
      assert.equal(1, #d.warnings)
      assert.is_true(l:cleanup()) -- nothing to clean
    end)

    it("does not pretend RLIMIT_NPROC binds root", function()
      local d = deps(fake_cgroup({ create_error = "EROFS: x" }))
      d.uv.getuid = function() return 0 end
      local l = limits.apply({ pids = 10 }, d)
      assert.same({}, l:spawn_options())
      assert.matches("%-%-pids 10: not enforced %(RLIMIT_NPROC does not bind root%)", d.warnings[1])
    end)

    it("falls back only for the limit no hierarchy carries", function()
      local lib = fake_cgroup({ layout = { memory = { version = "v2", mount = "/sys/fs/cgroup" } }, dir_fd = 4 })
      local d = deps(lib)
      local l = limits.apply({ memory = M64, pids = 10 }, d)
      assert.same({ memory = M64, parent = "prisn" }, lib.created[1].opts)
      assert.same({ cgroup_fd = 4, cgroup_procs_fds = { 5, 6 }, rlimits = { nproc = 22 } }, l:spawn_options())
      assert.matches("^prisn: no cgroup controller for pids; limits fall back to rlimits:\n  %-%-pids 10:",
        d.warnings[1])
    end)

    it("retries without CLONE_INTO_CGROUP only when the kernel lacks it", function()
      local l = limits.apply({ memory = M64 }, deps(fake_cgroup({ dir_fd = 4 })))
      assert.is_true(l:retry_without_clone_into("ENOSYS", "setup"))
      assert.is_false(l:retry_without_clone_into("ENOENT", "exec"))
      local v1 = limits.apply({ memory = M64 }, deps(fake_cgroup({})))
      assert.is_false(v1:retry_without_clone_into("ENOSYS", "setup"))
    end)
  end)

  describe("outcomes", function()
    local function ended(stats, result, status)
      local l = limits.apply({ memory = M64 }, deps(fake_cgroup({ stats = stats })))
      l:stop()
      return l:name_outcome(result, status or { signal = "KILL" })
    end

    it("names an OOM kill", function()
      local r = ended({ oom_kills = 1, memory_peak = M64 }, { state = "failed", reason = "killed", exit_code = 137 })
      assert.same({ state = "failed", reason = "oom_killed", exit_code = 137,
        message = "killed: out of memory (--memory 64M)", stats = { oom_kills = 1, memory_peak = M64 } }, r)
    end)

    it("counts several OOM kills in the message", function()
      local r = ended({ oom_kills = 3 }, { state = "failed", reason = "exited", exit_code = 1 }, { code = 1 })
      assert.equal("oom_killed", r.reason)
      assert.equal("killed: out of memory (--memory 64M, 3 processes killed)", r.message)
    end)

    it("leaves a success or a timeout as it is", function()
      assert.equal("exited", ended({ oom_kills = 1 }, { state = "succeeded", reason = "exited" }).reason)
      assert.equal("timeout", ended({ oom_kills = 1 }, { state = "failed", reason = "timeout", timed_out = true })
        .reason)
      assert.equal("killed", ended({ oom_kills = 0 }, { state = "failed", reason = "killed" }).reason)
    end)

    it("uses the memory limit hits where the kernel counts no OOM kills", function()
      assert.equal("oom_killed", ended({ memory_limit_hits = 4 }, { state = "failed", reason = "killed" }).reason)
      assert.equal("exited", ended({ memory_limit_hits = 4 }, { state = "failed", reason = "exited" },
        { code = 1 }).reason)
    end)
  end)

  describe("cleanup", function()
    it("kills until empty, then removes the cgroup, once", function()
      local lib = fake_cgroup({ kill_results = { false, false, true }, destroy_results = { "EBUSY", true } })
      local d = deps(lib)
      local l = limits.apply({ pids = 5 }, d)
      assert.is_true(l:cleanup())
      assert.same({ "kill_all:1", "kill_all:1", "kill_all:1", "destroy:1", "destroy:1" }, lib.calls)
      assert.equal(3, d.sleeps)
      assert.is_true(l:cleanup())
      assert.equal(5, #lib.calls)
    end)

    it("says when the cgroup cannot be removed, and tries again later", function()
      local lib = fake_cgroup({ destroy_results = { "EACCES" } })
      local d = deps(lib)
      local l = limits.apply({ pids = 5 }, d)
      local ok, err = l:cleanup()
      assert.is_nil(ok)
      assert.equal("cannot remove the workload's cgroup: EACCES: /sys/fs/cgroup/memory/prisn/job-1", err)
      assert.same({ "prisn: " .. err }, d.warnings)
      assert.is_true(l:cleanup())
    end)

    it("keeps the counters from the moment the workload ended", function()
      local lib = fake_cgroup({ stats = { oom_kills = 0, pids_current = 3 } })
      local l = limits.apply({ pids = 5 }, deps(lib))
      l:cleanup()
      lib.handle.stats = function() error("destroyed") end
      assert.same({ oom_kills = 0, pids_current = 3 }, l:stats())
    end)
  end)

  describe("a cgroup left behind", function()
    -- A fake whose create() finds `name` taken until the leftover's destroy().
    local function with_leftover(name)
      local lib = fake_cgroup()
      local create, taken = lib.create, true
      lib.create = function(n, o)
        if n == name and taken then
          lib.calls[#lib.calls + 1] = "create:EEXIST"
          return nil, "EEXIST: /sys/fs/cgroup/memory/prisn/" .. n, "EEXIST"
        end
        return create(n, o)
      end
      lib.open = function(n)
        if n ~= name or not taken then return nil, "ENOENT: /sys/fs/cgroup/memory/prisn/" .. n, "ENOENT" end
        return {
          kill_all = function(_, o) lib.calls[#lib.calls + 1] = "leftover kill_all:" .. o.rounds; return true end,
          destroy = function(_, o)
            lib.calls[#lib.calls + 1] = "leftover destroy:" .. o.attempts
            taken = false
            return true
          end,
        }
      end
      return lib
    end

    it("is emptied, removed and made again when the name is the workload's alone", function()
      local lib = with_leftover("svc-1")
      local d = deps(lib, { name = "svc-1", replace = true })
      local l = limits.apply({ cpu = 0.1, memory = M64 }, d)
      assert.same({ memory = "cgroup", cpu = "cgroup" }, l.enforced)
      assert.same({ "create:EEXIST", "leftover kill_all:100", "leftover destroy:100" }, lib.calls)
      assert.equal("svc-1", lib.created[#lib.created].name)
      assert.same({}, d.warnings)
    end)

    it("is left alone otherwise: the limits fall back, and that is said", function()
      local lib = with_leftover("run-1")
      local d = deps(lib, { name = "run-1" })
      local l = limits.apply({ cpu = 0.1 }, d)
      assert.is_nil(l.cgroup)
      assert.same({ "create:EEXIST" }, lib.calls)
      assert.matches("EEXIST", d.warnings[1])
    end)

    it("is removed by remove_leftover; a name with none is fine", function()
      local lib = with_leftover("svc-2")
      assert.is_true(limits.remove_leftover("svc-2", { cgroup = lib }))
      assert.same({ "leftover kill_all:100", "leftover destroy:100" }, lib.calls)
      assert.is_true(limits.remove_leftover("svc-2", { cgroup = lib }))
    end)
  end)
end)
