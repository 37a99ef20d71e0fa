-- prisn.logs: the record format (any bytes, separate streams, order), the
-- size bound with rotation to .1, and reading back with the truncated flag.
local uv = require("luv")
local logs = require("prisn.logs")
local remove_tree = require("support").remove_tree

local function read_raw(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function size_of(path)
  local st = uv.fs_stat(path)
  return st and st.size or 0
end

local function mode_of(path)
  return string.format("%o", uv.fs_stat(path).mode & tonumber("777", 8))
end

describe("prisn.logs", function()
  local home, clock

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    local t = 1795718760000
    clock = function() t = t + 1 return t end
  end)

  after_each(function() remove_tree(home) end)

  it("places a job's log under logs/<namespace>/jobs, in 0700 directories, as a 0600 file", function()
    local path = logs.job_path(home, "default", "06h1jcf3rk0p")
    assert.equal(home .. "/logs/default/jobs/06h1jcf3rk0p.log", path)
    local w = assert(logs.writer(path))
    w:close()
    assert.equal("600", mode_of(path))
    assert.equal("700", mode_of(home .. "/logs"))
    assert.equal("700", mode_of(home .. "/logs/default"))
    assert.equal("700", mode_of(home .. "/logs/default/jobs"))
    assert.has_error(function() logs.job_path(home, "../etc", "x") end)
    assert.has_error(function() logs.job_path(home, "default", "a/b") end)
  end)

  it("frames each chunk: header line, the bytes, a newline", function()
    local path = home .. "/a.log"
    local w = assert(logs.writer(path, { clock = clock }))
    assert.is_true(w:write("stdout", "hello\n"))
    assert.is_true(w:write("stderr", "oops"))
    assert.is_true(w:write("stdout", ""))
    w:close()
    assert.equal("o 1795718760001 6\nhello\n\ne 1795718760002 4\noops\n", read_raw(path))
  end)

  it("keeps any bytes, newlines and the order of the two streams", function()
    local path = home .. "/b.log"
    local w = assert(logs.writer(path, { clock = clock }))
    local binary = "\0\1\2\255\n\r\ne 1 5\nfake header\n"
    local chunks = {
      { "stdout", "line one\nline two" }, { "stderr", "err\n" }, { "stdout", binary },
      { "stderr", "\n\n" }, { "stdout", " two ends\n" },
    }
    for _, c in ipairs(chunks) do assert(w:write(c[1], c[2])) end
    w:close()
    local records, truncated = logs.read(path)
    assert.is_false(truncated)
    assert.equal(#chunks, #records)
    for i, c in ipairs(chunks) do
      assert.equal(c[1], records[i].stream)
      assert.equal(c[2], records[i].data)
      assert.equal(1795718760000 + i, records[i].time_ms)
    end
  end)

  it("appends to an existing log", function()
    local path = home .. "/c.log"
    local w = assert(logs.writer(path))
    w:write("stdout", "one\n")
    w:close()
    w = assert(logs.writer(path))
    w:write("stdout", "two\n")
    w:close()
    local records = logs.read(path)
    assert.equal(2, #records)
    assert.equal("two\n", records[2].data)
  end)

  it("ignores a record torn by a crash", function()
    local path = home .. "/d.log"
    local f = assert(io.open(path, "wb"))
    f:write("o 1 3\nabc\no 2 100\nonly part")
    f:close()
    local records = logs.read(path)
    assert.equal(1, #records)
    assert.equal("abc", records[1].data)
  end)

  it("stays within max_bytes and keeps the most recent output", function()
    local max = 4096
    local path = home .. "/e.log"
    local w = assert(logs.writer(path, { max_bytes = max, clock = clock }))
    local written = {}
    for i = 1, 500 do
      local line = string.format("line %04d %s\n", i, string.rep("x", i % 40))
      written[i] = line
      assert(w:write(i % 3 == 0 and "stderr" or "stdout", line))
      assert.is_true(size_of(path) <= max // 2, "current file too big")
      assert.is_true(size_of(path) + size_of(path .. ".1") <= max, "log too big")
    end
    w:close()
    local records, truncated, max_bytes = logs.read(path)
    assert.is_true(truncated)
    assert.equal(max, max_bytes)
    -- The last records are the last lines written, in order, and there is at
    -- least half of max_bytes of them (minus one record's worth).
    local kept = 0
    for i = #records, 1, -1 do
      assert.equal(written[500 - (#records - i)], records[i].data)
      kept = kept + #records[i].data
    end
    assert.is_true(kept >= max // 2 - 200, "kept only " .. kept)
  end)

  it("is not truncated after the first rotation, only after a file was dropped", function()
    local path = home .. "/f.log"
    local w = assert(logs.writer(path, { max_bytes = 1024 }))
    w:write("stdout", string.rep("a", 300))
    w:write("stdout", string.rep("b", 300)) -- rotates: a -> .1
    local records, truncated = logs.read(path)
    assert.equal(2, #records)
    assert.is_false(truncated)
    w:write("stdout", string.rep("c", 300)) -- rotates again: a is dropped
    w:close()
    records, truncated = logs.read(path)
    assert.is_true(truncated)
    assert.equal(2, #records)
    assert.equal(string.rep("b", 300), records[1].data)
    assert.equal(string.rep("c", 300), records[2].data)
  end)

  it("splits a chunk bigger than half the bound", function()
    local path = home .. "/g.log"
    local w = assert(logs.writer(path, { max_bytes = 2048 }))
    local big = string.rep("0123456789", 300)
    assert(w:write("stdout", big))
    w:close()
    assert.is_true(size_of(path) <= 1024)
    assert.is_true(size_of(path) + size_of(path .. ".1") <= 2048)
    local records, truncated = logs.read(path)
    assert.is_true(truncated)
    local data = {}
    for i, r in ipairs(records) do data[i] = r.data end
    local tail = table.concat(data)
    assert.equal(big:sub(-#tail), tail)
  end)

  it("reopening a rotated log keeps counting its rotations", function()
    local path = home .. "/h.log"
    local w = assert(logs.writer(path, { max_bytes = 1024 }))
    w:write("stdout", string.rep("a", 300))
    w:write("stdout", string.rep("b", 300))
    w:close()
    w = assert(logs.writer(path, { max_bytes = 1024 }))
    w:write("stdout", string.rep("c", 300))
    w:close()
    assert.matches("rotation=2", read_raw(path))
  end)

  it("keeps a job's outcome as the last record, which readers skip and a workload cannot forge", function()
    local path = home .. "/x.log"
    local w = assert(logs.writer(path, { clock = clock }))
    -- Output that looks like an outcome record is output.
    w:write("stdout", 'x 1 16\n{"state":"fake"}\n')
    assert.is_nil(logs.outcome(path))
    assert.is_true(w:write_outcome('{"state":"succeeded"}'))
    w:close()
    assert.equal('{"state":"succeeded"}', logs.outcome(path))
    local records = assert(logs.read(path))
    assert.equal(1, #records)
    assert.equal('x 1 16\n{"state":"fake"}\n', records[1].data)
    local t = logs.tailer(path)
    assert.equal(1, #t.poll())
    -- Output after an outcome (a log reopened) means it is not the last word.
    w = assert(logs.writer(path, { clock = clock }))
    w:write("stderr", "more")
    w:close()
    assert.is_nil(logs.outcome(path))
    assert.is_nil(logs.outcome(home .. "/none.log"))
    w:close()
    local ok, _, code = w:write_outcome("{}")
    assert.is_nil(ok)
    assert.equal("EBADF", code)
  end)

  it("keeps a server job's start records, which readers skip; the log's existence says it started", function()
    local path = home .. "/s.log"
    assert.is_false(logs.started(path))
    assert.is_nil(logs.start_record(path))
    local w = assert(logs.writer(path, { clock = clock }))
    assert.is_true(logs.started(path))
    assert.is_true(w:write_start('{"runner_pid":7}'))
    assert.equal('{"runner_pid":7}', logs.start_record(path))
    w:write("stdout", 's 1 9\n{"pid":1}\n')
    assert.is_true(w:write_start('{"pid":8}'))
    w:write("stdout", "out\n")
    w:write_outcome('{"state":"succeeded"}')
    w:close()
    -- The last start record; output shaped like one is output.
    assert.equal('{"pid":8}', logs.start_record(path))
    assert.equal('{"state":"succeeded"}', logs.outcome(path))
    local records = assert(logs.read(path))
    assert.same({ 's 1 9\n{"pid":1}\n', "out\n" }, { records[1].data, records[2].data })
    -- Rotated away, the start is still told by the older file.
    assert(uv.fs_rename(path, path .. ".1"))
    assert.is_true(logs.started(path))
  end)

  it("reports a missing log and refuses a closed writer and a bad stream", function()
    local ok, msg, code = logs.read(home .. "/none.log")
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    assert.equal("ENOENT: no such file or directory: " .. home .. "/none.log", msg)
    local w = assert(logs.writer(home .. "/i.log"))
    assert.has_error(function() w:write("stdin", "x") end, "logs: stream must be stdout or stderr, got stdin")
    w:close()
    w:close()
    ok, msg, code = w:write("stdout", "late")
    assert.is_nil(ok)
    assert.equal("EBADF", code)
    assert.equal("log " .. home .. "/i.log is closed", msg)
    assert.has_error(function() logs.writer(home .. "/j.log", { max_bytes = 10 }) end)
  end)
end)

describe("prisn.logs.lines", function()
  it("splits each stream into lines on its own, keeping whole lines whole", function()
    local lines = logs.lines({
      { stream = "stdout", data = "a1\na2", time_ms = 1 },
      { stream = "stderr", data = "e1\n", time_ms = 2 },
      { stream = "stdout", data = " continued\n\nb", time_ms = 3 },
      { stream = "stderr", data = "e2", time_ms = 4 },
    })
    local got = {}
    for i, l in ipairs(lines) do got[i] = { l.stream, l.data, l.time_ms } end
    assert.same({
      { "stdout", "a1\n", 1 },
      { "stderr", "e1\n", 2 },
      { "stdout", "a2 continued\n", 1 },
      { "stdout", "\n", 3 },
      { "stdout", "b", 3 },
      { "stderr", "e2", 4 },
    }, got)
  end)

  it("gives nothing for nothing", function()
    assert.same({}, logs.lines({}))
  end)
end)
