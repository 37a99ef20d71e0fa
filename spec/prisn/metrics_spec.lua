-- prisn.metrics: the exposition text of small registries, exactly (labels,
-- escaping, histogram buckets, number forms), misuse refused, scrape-time
-- functions, the process collector over a fake /proc, prisn's own metric set,
-- and `promtool check metrics` accepting all of it when promtool is here.
local metrics = require("prisn.metrics")
local process = require("prisn.metrics.process")
local prisn_set = require("prisn.metrics.prisn")

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function lines(...)
  return table.concat({ ... }, "\n") .. "\n"
end

-- promtool's verdict on `text`: its exit code and output; nil when promtool
-- is not installed.
local function promtool_check(text)
  local found = io.popen("command -v promtool 2>/dev/null"):read("a")
  if found == "" then return nil end
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local pipe = io.popen("promtool check metrics < " .. path .. " 2>&1; echo \"rc=$?\"")
  local out = pipe:read("a")
  pipe:close()
  os.remove(path)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

describe("prisn.metrics", function()
  describe("exposition", function()
    it("writes HELP, TYPE and the value of unlabeled families, which start at 0", function()
      local reg = metrics.registry()
      local c = reg:counter("jobs_started_total", "Jobs started.")
      local g = reg:gauge("queue_depth", "Jobs waiting.")
      c:inc()
      c:inc(2)
      g:set(5)
      g:dec()
      reg:gauge("idle", "Never touched.")
      assert.equal(lines(
        "# HELP jobs_started_total Jobs started.",
        "# TYPE jobs_started_total counter",
        "jobs_started_total 3",
        "# HELP queue_depth Jobs waiting.",
        "# TYPE queue_depth gauge",
        "queue_depth 4",
        "# HELP idle Never touched.",
        "# TYPE idle gauge",
        "idle 0"), reg:render())
    end)

    it("writes one series per combination of label values, in creation order", function()
      local reg = metrics.registry()
      local req = reg:counter("http_requests_total", "Requests.", { "route", "code" })
      req:labels("/a", 200):inc()
      req:labels("/b", "404"):inc()
      req:labels("/a", "200"):inc(5)
      assert.equal(req:labels("/a", 200), req:labels("/a", "200"))
      assert.equal(lines(
        "# HELP http_requests_total Requests.",
        "# TYPE http_requests_total counter",
        'http_requests_total{route="/a",code="200"} 6',
        'http_requests_total{route="/b",code="404"} 1'), reg:render())
    end)

    it("leaves out a labeled family with no series yet, and an empty registry is empty", function()
      local reg = metrics.registry()
      assert.equal("", reg:render())
      reg:counter("a_total", "A.", { "x" })
      assert.equal("", reg:render())
    end)

    it("escapes backslash, quote and newline in label values, and backslash and newline in help", function()
      local reg = metrics.registry()
      reg:gauge("g", 'Help with \\ and "quotes"\nand a second line.', { "v" }):labels('a\\b"c\nd'):set(1)
      assert.equal(lines(
        '# HELP g Help with \\\\ and "quotes"\\nand a second line.',
        "# TYPE g gauge",
        'g{v="a\\\\b\\"c\\nd"} 1'), reg:render())
    end)

    it("keeps label values valid UTF-8", function()
      local reg = metrics.registry()
      reg:gauge("g", "G.", { "v" }):labels("caf\xc3\xa9 \xff"):set(1)
      assert.equal(lines("# HELP g G.", "# TYPE g gauge", 'g{v="café \u{FFFD}"} 1'), reg:render())
    end)

    it("writes histograms with cumulative buckets up to +Inf, the sum and the count", function()
      local reg = metrics.registry()
      local h = reg:histogram("req_seconds", "Latency.", { "route" }, { 0.1, 0.5, 1 })
      for _, v in ipairs({ 0.05, 0.1, 0.3, 0.7, 2 }) do h:labels("/a"):observe(v) end
      h:labels("/b"):observe(0.5)
      local plain = reg:histogram("size_bytes", "Sizes.", nil, { 10, 100 })
      plain:observe(1000)
      plain:observe(0 / 0) -- NaN: counted in +Inf only, and the sum becomes NaN
      assert.equal(lines(
        "# HELP req_seconds Latency.",
        "# TYPE req_seconds histogram",
        'req_seconds_bucket{route="/a",le="0.1"} 2',
        'req_seconds_bucket{route="/a",le="0.5"} 3',
        'req_seconds_bucket{route="/a",le="1"} 4',
        'req_seconds_bucket{route="/a",le="+Inf"} 5',
        'req_seconds_sum{route="/a"} 3.15',
        'req_seconds_count{route="/a"} 5',
        'req_seconds_bucket{route="/b",le="0.1"} 0',
        'req_seconds_bucket{route="/b",le="0.5"} 1',
        'req_seconds_bucket{route="/b",le="1"} 1',
        'req_seconds_bucket{route="/b",le="+Inf"} 1',
        'req_seconds_sum{route="/b"} 0.5',
        'req_seconds_count{route="/b"} 1',
        "# HELP size_bytes Sizes.",
        "# TYPE size_bytes histogram",
        'size_bytes_bucket{le="10"} 0',
        'size_bytes_bucket{le="100"} 0',
        'size_bytes_bucket{le="+Inf"} 2',
        "size_bytes_sum NaN",
        "size_bytes_count 2"), reg:render())
    end)

    it("accepts a trailing +Inf bucket and uses the default buckets when none are given", function()
      local reg = metrics.registry()
      local h = reg:histogram("a_seconds", "A.", nil, { 1, math.huge })
      h:observe(3)
      assert.equal(lines("# HELP a_seconds A.", "# TYPE a_seconds histogram",
        'a_seconds_bucket{le="1"} 0', 'a_seconds_bucket{le="+Inf"} 1', "a_seconds_sum 3", "a_seconds_count 1"),
        reg:render())
      local d = reg:histogram("b_seconds", "B.")
      assert.same(metrics.DEFAULT_BUCKETS, d.buckets)
    end)

    it("writes numbers so Prometheus reads the same value back", function()
      local f = metrics.format_number
      assert.equal("0", f(0))
      assert.equal("42", f(42))
      assert.equal("-7", f(-7))
      assert.equal("3", f(3.0))
      assert.equal("0.1", f(0.1))
      assert.equal("0.0005", f(0.0005))
      assert.equal("0.30000000000000004", f(0.1 + 0.2))
      assert.equal("1e+300", f(1e300))
      assert.equal("9007199254740993", f(9007199254740993))
      assert.equal("1.5e-05", f(1.5e-05))
      assert.equal("+Inf", f(math.huge))
      assert.equal("-Inf", f(-math.huge))
      assert.equal("NaN", f(0 / 0))
      for _, v in ipairs({ 0.1, 1 / 3, 2 / 3, 1e-9, 123456.789, 2 ^ 60 + 0.0 }) do
        assert.equal(v, tonumber(f(v)))
      end
    end)
  end)

  describe("misuse", function()
    it("refuses bad metric and label names", function()
      local reg = metrics.registry()
      assert.matches('bad metric name "1abc"', raised(reg.counter, reg, "1abc", "h"))
      assert.matches('bad metric name "a%-b"', raised(reg.gauge, reg, "a-b", "h"))
      assert.matches('bad label name "__x"', raised(reg.gauge, reg, "g1", "h", { "__x" }))
      assert.matches('bad label name "a:b"', raised(reg.gauge, reg, "g2", "h", { "a:b" }))
      assert.matches('duplicate label name "a"', raised(reg.gauge, reg, "g3", "h", { "a", "a" }))
      assert.matches('the label name "le" is reserved', raised(reg.histogram, reg, "h1", "h", { "le" }))
      assert.matches("help must be a string", raised(reg.gauge, reg, "g4"))
      -- colons are fine in metric names, not in label names
      reg:gauge("prisn:rule:ratio", "h", { "_ok" })
    end)

    it("refuses a name taken by another family, histogram series included", function()
      local reg = metrics.registry()
      reg:histogram("lat", "h")
      assert.matches("the name lat_count is already taken by lat", raised(reg.counter, reg, "lat_count", "h"))
      assert.matches("the name lat is already taken by lat", raised(reg.gauge, reg, "lat", "h"))
      reg:gauge("x_sum", "h")
      assert.matches("the name x_sum is already taken", raised(reg.histogram, reg, "x", "h"))
    end)

    it("refuses the wrong number of label values, and labeled families used bare", function()
      local reg = metrics.registry()
      local c = reg:counter("c_total", "h", { "a", "b" })
      assert.matches("expected 2 label value%(s%) %(a, b%), got 1", raised(c.labels, c, "x"))
      assert.matches("c_total has labels %(a, b%): use :labels%(...%):inc%(%)", raised(c.inc, c))
      assert.matches("a label value must be a string or a number, got table", raised(c.labels, c, "x", {}))
    end)

    it("refuses a counter going down and wrong values", function()
      local reg = metrics.registry()
      local c = reg:counter("c_total", "h")
      assert.matches("a counter only goes up", raised(c.inc, c, -1))
      assert.matches("a counter only goes up", raised(c.inc, c, 0 / 0))
      assert.matches("a counter has no set", raised(c.set, c, 1))
      local g = reg:gauge("g", "h")
      assert.matches("set takes a number", raised(g.set, g, "1"))
      local h = reg:histogram("h", "h", nil, { 1 })
      assert.matches("observe takes a number", raised(h.observe, h, nil))
      assert.matches("buckets must be increasing numbers %(bucket 2 is 1%)",
        raised(reg.histogram, reg, "h2", "h", nil, { 1, 1 }))
    end)
  end)

  describe("scrape-time functions", function()
    it("render a number, a labeled list, or nothing", function()
      local reg = metrics.registry()
      local n = 7
      reg:gauge_fn("temp", "T.", function() return n end)
      reg:gauge_fn("jobs", "J.", function()
        return { { labels = { state = "running" }, value = 2 }, { { state = "queued" }, 1 } }
      end, { "state" })
      reg:counter_fn("bytes_total", "B.", function()
        return { { labels = { z = "1", a = "2" }, value = 10 } }
      end)
      reg:gauge_fn("absent", "A.", function() return nil end)
      local text = reg:render()
      assert.equal(lines(
        "# HELP temp T.", "# TYPE temp gauge", "temp 7",
        "# HELP jobs J.", "# TYPE jobs gauge", 'jobs{state="running"} 2', 'jobs{state="queued"} 1',
        "# HELP bytes_total B.", "# TYPE bytes_total counter", 'bytes_total{a="2",z="1"} 10'), text)
      n = 8
      assert.matches("\ntemp 8\n", reg:render())
    end)

    it("leave a failing family out of the scrape and tell on_error", function()
      local errs = {}
      local reg = metrics.registry({ on_error = function(name, err)
        errs[#errs + 1] = name .. ": " .. tostring(err)
      end })
      reg:gauge_fn("boom", "B.", function() error("no /proc", 0) end)
      reg:gauge_fn("wrong", "W.", function() return { { labels = { other = "x" }, value = 1 } } end, { "state" })
      reg:gauge_fn("labeled", "L.", function() return 3 end, { "state" })
      reg:gauge_fn("ok", "O.", function() return 1 end)
      assert.equal(lines("# HELP ok O.", "# TYPE ok gauge", "ok 1"), reg:render())
      assert.same({ "boom: no /proc", 'wrong: entry 1 has the undeclared label "other"',
        "labeled: returned a number but the family has labels" }, errs)
    end)
  end)

  describe("process collector", function()
    local STAT = "4242 (prisn (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 15 5 0 0 20 0 1 0 "
      .. "123456 104857600 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
    local FILES = {
      ["/proc/self/stat"] = STAT,
      ["/proc/stat"] = "cpu  1 2 3\nintr 5\nbtime 1795700000\nprocesses 9\n",
      ["/proc/self/limits"] = "Limit                     Soft Limit           Hard Limit           Units\n"
        .. "Max cpu time              unlimited            unlimited            seconds\n"
        .. "Max open files            1024                 524288               files\n",
    }

    it("reads memory, CPU, descriptors and start time", function()
      local reg = metrics.registry()
      metrics.process_collector(reg, {
        read_file = function(path) return FILES[path] end,
        count_entries = function(path) return path == "/proc/self/fd" and 12 or nil end,
        rusage = function() return { utime = { sec = 1, usec = 250000 }, stime = { sec = 0, usec = 500000 } } end,
        rss = function() return 8192000 end,
      })
      assert.equal(lines(
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 8192000",
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
        "# TYPE process_virtual_memory_bytes gauge",
        "process_virtual_memory_bytes 104857600",
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 1.75",
        "# HELP process_open_fds Number of open file descriptors.",
        "# TYPE process_open_fds gauge",
        "process_open_fds 12",
        "# HELP process_max_fds Maximum number of open file descriptors.",
        "# TYPE process_max_fds gauge",
        "process_max_fds 1024",
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        "process_start_time_seconds 1795701234.56"), reg:render())
    end)

    it("leaves out what the platform cannot tell", function()
      local reg = metrics.registry()
      metrics.process_collector(reg, {
        read_file = function() return nil end,
        count_entries = function() return nil end,
        rusage = function() return { utime = { sec = 2, usec = 0 }, stime = { sec = 1, usec = 0 } } end,
        rss = function() return 1000 end,
      })
      assert.equal(lines(
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 1000",
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 3"), reg:render())
    end)

    it("parses an unlimited fd limit", function()
      assert.equal(math.huge, process.parse_max_fds("Max open files  unlimited  unlimited  files\n"))
      assert.is_nil(process.parse_max_fds("nothing here"))
    end)

    it("reads this process on Linux", function()
      local f = io.open("/proc/self/stat")
      if not f then
        pending("no /proc here: the /proc metrics are Linux only")
        return
      end
      f:close()
      local reg = metrics.registry()
      metrics.process_collector(reg)
      local text = reg:render()
      for _, name in ipairs({ "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
        "process_max_fds", "process_start_time_seconds", "process_virtual_memory_bytes" }) do
        assert.matches("\n" .. name .. " [%d.e+]+\n", text)
      end
      local start = tonumber(text:match("\nprocess_start_time_seconds (%S+)"))
      assert.is_true(math.abs(start - os.time()) < 3600, "start time " .. start .. " is not recent")
    end)
  end)

  describe("prisn's metric set", function()
    local function prisn_registry()
      local reg = metrics.registry()
      local m = metrics.prisn_metrics(reg, { jobs_by_state = function() return { running = 2, queued = 1 } end,
        job_states = { "pending", "running", "succeeded", "failed" },
        instances_by_state = function() return { running = 3, crash_loop_backoff = 1 } end,
        state_degraded = function() return 0 end, state_pending_writes = function() return 0 end })
      return reg, m
    end

    it("registers the families the server updates", function()
      local _, m = prisn_registry()
      for _, f in ipairs(prisn_set.FAMILIES) do
        assert.truthy(m[f.key], f.key)
        assert.equal(f.name, m[f.key].name)
      end
      assert.same({ "route", "method", "code" }, m.api_requests.label_names)
      assert.same({ 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 },
        m.api_request_duration.buckets)
    end)

    it("reports every instance state, zero included", function()
      local text = prisn_registry():render()
      assert.matches('prisn_instances{state="starting"} 0\nprisn_instances{state="running"} 3\n', text, 1, true)
      assert.matches('prisn_instances{state="crash_loop_backoff"} 1\n', text, 1, true)
    end)

    it("reports every job state, zero included, then any other", function()
      local reg = prisn_registry()
      assert.matches(table.concat({ "# HELP prisn_jobs Jobs recorded in the state database, by state.",
        "# TYPE prisn_jobs gauge", 'prisn_jobs{state="pending"} 0', 'prisn_jobs{state="running"} 2',
        'prisn_jobs{state="succeeded"} 0', 'prisn_jobs{state="failed"} 0', 'prisn_jobs{state="queued"} 1' }, "\n"),
        reg:render(), 1, true)
    end)

    it("leaves prisn_jobs out without a counting function", function()
      local reg = metrics.registry()
      local m = metrics.prisn_metrics(reg)
      assert.is_nil(m.jobs)
      assert.is_nil(reg:get("prisn_jobs"))
    end)

    it("is accepted by promtool check metrics, with the process metrics", function()
      local reg, m = prisn_registry()
      metrics.process_collector(reg)
      m.api_requests:labels("/api/v1/namespaces/{ns}/jobs", "GET", 200):inc()
      m.api_requests:labels("unmatched", "POST", 404):inc()
      m.api_request_duration:labels("/api/v1/namespaces/{ns}/jobs"):observe(0.0012)
      m.job_duration:observe(0.02)
      m.job_scheduling_latency:observe(0.0008)
      m.queue_depth:set(3)
      reg:gauge("odd", 'Odd \\ "help"\nlines.', { "v" }):labels('a\\b"c\nd\xff'):set(0 / 0)
      local rc, out = promtool_check(reg:render())
      if rc == nil then
        pending("promtool is not installed (Debian package prometheus)")
        return
      end
      assert.equal("", out)
      assert.equal(0, rc)
    end)

    it("is checked by a promtool that does catch mistakes", function()
      local rc, out = promtool_check("# HELP bad x\n# TYPE bad counter\nbad 1\n")
      if rc == nil then
        pending("promtool is not installed (Debian package prometheus)")
        return
      end
      assert.matches('counter metrics should have "_total" suffix', out)
      assert.is_true(rc ~= 0)
    end)
  end)
end)
