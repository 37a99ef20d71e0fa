-- prisn.dataplane.logs: the log pump on real named pipes and a real luv loop
-- in this process — order per stream, an instance's restart on the same
-- pipes, draining on detach, a hand-over between two pumps with nothing lost
-- or doubled, rotation, the full-list sync, and a log that cannot be written
-- never blocking the instance; and the data plane's service: its ops, an
-- upgrade's hand-over (and a failed one), the last words read at a stop.
local uv = require("luv")
local cjson = require("cjson")
local sys = require("prisn.core.sys")
local logs = require("prisn.logs")
local pump_mod = require("prisn.dataplane.logs")
local support = require("support")
local remove_tree, run_until = support.remove_tree, support.run_until

local O_RDWR, O_NONBLOCK = 2, 2048

-- The stdout and stderr text of the log at `path` (with its .1).
local function read_log(path)
  local records, truncated = logs.read(path)
  if not records then return "", "", false end
  local out, err = {}, {}
  for _, r in ipairs(records) do
    local t = r.stream == "stdout" and out or err
    t[#t + 1] = r.data
  end
  return table.concat(out), table.concat(err), truncated
end

describe("prisn.dataplane.logs", function()
  local dir, fifos, path, writers, pumps

  -- The instance's side: the pipe opened read-write, as prisn.exec.instance.start does.
  local function open_writer(stream)
    local fd = assert(uv.fs_open(fifos[stream], O_RDWR | O_NONBLOCK, 0))
    writers[#writers + 1] = fd
    return fd
  end

  local function close_writer(fd)
    uv.fs_close(fd)
    for i, w in ipairs(writers) do if w == fd then table.remove(writers, i) end end
  end

  local function new_pump(opts)
    local p = pump_mod.pump(opts)
    pumps[#pumps + 1] = p
    return p
  end

  local function spec(max_bytes)
    return { fifos = fifos, path = path, max_bytes = max_bytes }
  end

  before_each(function()
    dir = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    fifos = { stdout = dir .. "/web-1.out", stderr = dir .. "/web-1.err" }
    for _, p in pairs(fifos) do assert(sys.mkfifo(p, tonumber("600", 8))) end
    path = dir .. "/logs/default/deploy/web/1.log"
    writers, pumps = {}, {}
  end)

  after_each(function()
    for _, p in ipairs(pumps) do p:close() end
    for _, fd in ipairs(writers) do uv.fs_close(fd) end
    uv.run("nowait")
    remove_tree(dir)
  end)

  it("writes each stream's chunks to the log in order, as prisn.logs records", function()
    local p = new_pump()
    assert.is_true(p:attach("default/web/1", spec()))
    assert.same({ "default/web/1" }, p:keys())
    local out, err = open_writer("stdout"), open_writer("stderr")
    local want_out, want_err = {}, {}
    for i = 1, 200 do
      local line = i .. "\n"
      if i % 3 == 0 then
        assert(uv.fs_write(err, line, -1)); want_err[#want_err + 1] = line
      else
        assert(uv.fs_write(out, line, -1)); want_out[#want_out + 1] = line
      end
    end
    local expected_out, expected_err = table.concat(want_out), table.concat(want_err)
    assert.is_true(run_until(function()
      local o, e = read_log(path)
      return o == expected_out and e == expected_err
    end))
  end)

  it("keeps reading the same pipes across an instance's restart (all writers closed, then a new one)", function()
    local p = new_pump()
    assert(p:attach("default/web/1", spec()))
    local w = open_writer("stdout")
    assert(uv.fs_write(w, "first run\n", -1))
    close_writer(w)
    assert.is_true(run_until(function() return read_log(path) == "first run\n" end))
    w = open_writer("stdout")
    assert(uv.fs_write(w, "second run\n", -1))
    assert.is_true(run_until(function() return read_log(path) == "first run\nsecond run\n" end))
  end)

  it("reads what is left in the pipes when detached, and leaves nothing open", function()
    local p = new_pump()
    assert(p:attach("default/web/1", spec()))
    local w = open_writer("stdout")
    -- Written, never read by the loop: detach takes it.
    assert(uv.fs_write(w, "last words\n", -1))
    p:detach("default/web/1")
    assert.equal("last words\n", (read_log(path)))
    assert.same({}, p:keys())
    p:detach("default/web/1") -- idempotent
    local open = 0
    uv.walk(function(h) if not h:is_closing() then open = open + 1 end end)
    assert.equal(0, open)
  end)

  it("hands over to another pump with every line exactly once, in order", function()
    local w = open_writer("stdout")
    local old, new = new_pump(), new_pump()
    assert(old:attach("default/web/1", spec()))
    local expected = {}
    local n = 0
    local function write_some(count)
      for _ = 1, count do
        n = n + 1
        local line = string.format("line %05d\n", n)
        assert(uv.fs_write(w, line, -1))
        expected[#expected + 1] = line
      end
    end
    write_some(300)
    run_until(function() return #(read_log(path)) > 0 end)
    write_some(300) -- some read by the old pump, some left in the pipe
    old:detach("default/web/1")
    write_some(300) -- written between the two: waits in the pipe
    assert(new:attach("default/web/1", spec()))
    write_some(300)
    local want = table.concat(expected)
    assert.is_true(run_until(function() return read_log(path) == want end))
  end)

  it("rotates the log at half its bound, like every prisn log", function()
    local p = new_pump()
    assert(p:attach("default/web/1", spec(4096)))
    local w = open_writer("stdout")
    local last
    for i = 1, 400 do
      last = string.format("line %05d\n", i)
      assert(uv.fs_write(w, last, -1))
      if i % 50 == 0 then run_until(function() return false end, 5) end
    end
    assert.is_true(run_until(function() return (read_log(path)):sub(-#last) == last end))
    local out, _, truncated = read_log(path)
    assert.is_true(truncated)
    assert.is_truthy(uv.fs_stat(path .. ".1"))
    assert.is_true(#out <= 4096)
    local st1, st = uv.fs_stat(path .. ".1"), uv.fs_stat(path)
    assert.is_true(st1.size + st.size <= 4096 + 256)
  end)

  it("takes the full list: attaches new keys, updates the bound of kept ones, detaches the rest", function()
    local other = { stdout = dir .. "/web-2.out", stderr = dir .. "/web-2.err" }
    for _, f in pairs(other) do assert(sys.mkfifo(f, tonumber("600", 8))) end
    local other_path = dir .. "/logs/default/deploy/web/2.log"
    local p = new_pump()
    assert(p:attach("default/web/1", spec(8192)))
    local failed = p:sync({
      ["default/web/1"] = spec(65536),
      ["default/web/2"] = { fifos = other, path = other_path, max_bytes = 8192 },
      ["default/web/3"] = { fifos = { stdout = dir .. "/missing.out", stderr = dir .. "/missing.err" },
        path = dir .. "/3.log" },
    })
    assert.same({ "default/web/1", "default/web/2" }, p:keys())
    assert.matches("cannot read .*/missing%.out", failed["default/web/3"])
    assert.equal(65536, p.attached["default/web/1"].writer.max_bytes)
    p:sync({ ["default/web/2"] = { fifos = other, path = other_path } })
    assert.same({ "default/web/2" }, p:keys())
  end)

  it("refuses a bad attachment by name and leaves nothing open when a pipe is missing", function()
    local p = new_pump()
    assert.has_error(function() p:attach("", spec()) end, "log pump: a key must be a non-empty string")
    assert.has_error(function() p:attach("k", { path = path }) end)
    uv.fs_unlink(fifos.stderr)
    local ok, err = p:attach("default/web/1", spec())
    assert.is_nil(ok)
    assert.matches("cannot read .*web%-1%.err", err)
    assert.same({}, p:keys())
    uv.run("nowait")
    local open = 0
    uv.walk(function(h) if not h:is_closing() then open = open + 1 end end)
    assert.equal(0, open)
  end)

  describe("as the data plane's service", function()
    local said
    local function service()
      said = {}
      local svc = pump_mod.new({ log = { error = function(_, fmt, ...) said[#said + 1] = fmt:format(...) end,
        warn = function(_, fmt, ...) said[#said + 1] = fmt:format(...) end } })
      pumps[#pumps + 1] = svc.pump
      return svc
    end
    local function attach_msg()
      return { kind = "logs", op = "attach", key = "default/web/1", fifos = fifos, path = path, max_bytes = 65536.0 }
    end

    it("attaches, detaches and syncs by request, answering bad ones with an error", function()
      local svc = service()
      assert.same({}, svc:op_attach(attach_msg()))
      local w = open_writer("stdout")
      assert(uv.fs_write(w, "hello\n", -1))
      assert.is_true(run_until(function() return read_log(path) == "hello\n" end))
      assert.equal(65536, svc.pump.attached["default/web/1"].writer.max_bytes)
      local ok, err, code = svc:op_attach({ key = "default/web/2", fifos = {}, path = path })
      assert.is_nil(ok)
      assert.matches("needs { fifos", err)
      assert.equal("invalid", code)
      assert.same({}, svc:op_detach({ key = "default/web/1" }))
      assert.same({}, svc.pump:keys())
      local reply = svc:op_sync({ attachments = { ["default/web/1"] = { fifos = fifos, path = path },
        ["default/web/9"] = { fifos = { stdout = dir .. "/no.out", stderr = dir .. "/no.err" }, path = path } } })
      assert.same({ "default/web/1" }, svc.pump:keys())
      assert.matches("cannot read", reply.failed["default/web/9"])
    end)

    it("hands over at an upgrade: the old one lets go before the new one reads, nothing lost or doubled", function()
      local old, new = service(), service()
      assert(old:op_attach(attach_msg()))
      local w = open_writer("stdout")
      local expected, n = {}, 0
      local function write_some(count)
        for _ = 1, count do
          n = n + 1
          expected[#expected + 1] = string.format("line %05d\n", n)
          assert(uv.fs_write(w, expected[#expected], -1))
        end
      end
      write_some(200)
      run_until(function() return #(read_log(path)) > 0 end)
      write_some(200)
      local snapshot = cjson.decode(cjson.encode(old:snapshot())) -- as the handover file carries it
      assert.same({}, old.pump:keys())
      write_some(200)
      -- Requests meanwhile go to the list it would take back, not to a pump.
      assert.same({}, old:op_attach({ key = "default/web/7", fifos = fifos, path = dir .. "/7.log" }))
      assert.same({}, old.pump:keys())
      new:adopt(snapshot)
      local stopped = false
      old:stop_accepting(function() stopped = true end)
      assert.is_true(stopped)
      write_some(200)
      local want = table.concat(expected)
      assert.is_true(run_until(function() return read_log(path) == want end))
    end)

    it("attaches again when an upgrade never takes over", function()
      local saved = pump_mod.HANDOVER_TIMEOUT_MS
      pump_mod.HANDOVER_TIMEOUT_MS = 20
      local svc = service()
      local ok, err = pcall(function()
        assert(svc:op_attach(attach_msg()))
        svc:snapshot()
        assert.same({}, svc.pump:keys())
        -- A second attempt hands over the same list.
        assert.same({ "default/web/1" }, (function()
          local keys = {}
          for k in pairs(svc:snapshot().attachments) do keys[#keys + 1] = k end
          return keys
        end)())
        svc:op_detach({ key = "default/web/1" })
        svc:op_attach({ key = "default/web/2", fifos = fifos, path = path })
        assert.is_true(run_until(function() return #svc.pump:keys() == 1 end, 2000))
        assert.same({ "default/web/2" }, svc.pump:keys())
      end)
      pump_mod.HANDOVER_TIMEOUT_MS = saved
      assert(ok, err)
      assert.matches("did not take over", said[1])
    end)

    it("at a stop, reads an instance's last words until it closes its pipes", function()
      local svc = service()
      assert(svc:op_attach(attach_msg()))
      local out, errw = open_writer("stdout"), open_writer("stderr")
      local closed = false
      svc:close(function() closed = true end)
      assert.is_true(closed) -- at once: the data plane goes on stopping
      assert(uv.fs_write(out, "stopping\n", -1))
      assert(uv.fs_write(errw, "bye\n", -1))
      close_writer(out)
      close_writer(errw)
      -- Both pipes end once the instance closed them: nothing left open.
      local pipes_open
      assert.is_true(run_until(function()
        local o, e = read_log(path)
        pipes_open = 0
        uv.walk(function(h) if h:get_type() == "pipe" and not h:is_closing() then pipes_open = pipes_open + 1 end end)
        return o == "stopping\n" and e == "bye\n" and pipes_open == 0
      end))
      local open = 0
      uv.walk(function(h) if not h:is_closing() then open = open + 1 end end)
      assert.equal(0, open)
    end)
  end)

  it("keeps reading a log it cannot write, so the instance never blocks, and says so once", function()
    local said = {}
    local p = new_pump({ on_error = function(key, text) said[#said + 1] = key .. ": " .. text end })
    -- A file where the log's directory should be.
    local f = assert(io.open(dir .. "/logs", "w")); f:close()
    assert(p:attach("default/web/1", spec()))
    local w = open_writer("stdout")
    local chunk = string.rep("x", 4095) .. "\n"
    local written = 0
    for _ = 1, 64 do -- 256 KiB: four times what the pipe holds
      local ok = run_until(function()
        local n = uv.fs_write(w, chunk, -1)
        return n ~= nil
      end, 2000)
      assert.is_true(ok)
      written = written + #chunk
    end
    assert.equal(256 * 1024, written)
    assert.equal(1, #said)
    assert.matches("^default/web/1: cannot keep its output in ", said[1])
  end)
end)
