-- prisn.dataplane.protocol: the NDJSON framing, requests and their replies
-- over a real socket pair, and what ends a connection.
local uv = require("luv")
local support = require("support")
local protocol = require("prisn.dataplane.protocol")

local run_until = support.run_until

-- Two connected protocol connections over a unix socket.
local function pair(handlers_a, handlers_b)
  local path = os.tmpname()
  os.remove(path)
  local server = uv.new_pipe(false)
  assert(server:bind(path))
  local a, b
  server:listen(1, function()
    local client = uv.new_pipe(false)
    server:accept(client)
    b = protocol.connection(client, handlers_b or {})
  end)
  local pipe = uv.new_pipe(false)
  pipe:connect(path, function(err)
    assert(not err)
    a = protocol.connection(pipe, handlers_a or {})
  end)
  run_until(function() return a and b end)
  server:close()
  os.remove(path)
  return a, b
end

describe("prisn.dataplane.protocol", function()
  describe("decoder", function()
    it("returns whole lines as messages and keeps a partial one for the next chunk", function()
      local d = protocol.decoder()
      assert.are.same({ { a = 1 } }, d:feed('{"a":1}\n{"b":'))
      assert.are.same({ { b = 2 }, { c = "x\ny" } }, d:feed('2}\n\n{"c":"x\\ny"}\n'))
      assert.are.same({}, d:feed(""))
    end)

    it("refuses what is not a JSON object and a line past the limit", function()
      assert.are.same({ nil, "not a JSON object: [1]" }, { protocol.decoder():feed("[1]\n") })
      assert.are.same({ nil, "not a JSON object: nope" }, { protocol.decoder():feed("nope\n") })
      assert.are.same({ nil, "a line longer than 8 bytes" }, { protocol.decoder(8):feed('{"a":"123456789') })
    end)
  end)

  it("answers a request with its reply, events go to on_message, and errors carry code and message", function()
    local events = {}
    local a, b
    a, b = pair({ on_message = function(_, msg) events[#events + 1] = msg end }, {
      on_message = function(conn, msg)
        if msg.op == "echo" then return conn:reply(msg, { value = msg.value }) end
        conn:reply(msg, nil, "no op " .. msg.op, "unknown_op")
      end,
    })
    local got, failed
    a:request({ kind = "ports", op = "echo", value = 42 }, function(reply) got = reply end)
    a:request({ kind = "ports", op = "nope" }, function(reply, err) failed = { reply, err } end)
    b:send({ kind = "ports", event = "connections", ports = {} })
    run_until(function() return got and failed and #events == 1 end)
    assert.are.equal(42, got.value)
    assert.is_true(got.ok)
    assert.is_nil(failed[1])
    assert.are.same({ code = "unknown_op", message = "no op nope" }, failed[2])
    assert.are.equal("connections", events[1].event)
    a:close("done")
    b:close("done")
  end)

  it("fails pending requests when the connection ends, and calls on_close once", function()
    local closes = 0
    local a, b = pair({ on_close = function() closes = closes + 1 end }, {})
    local failed
    a:request({ kind = "host", op = "hello" }, function(reply, err) failed = { reply, err } end)
    b:close("going")
    run_until(function() return failed end)
    assert.is_nil(failed[1])
    assert.are.equal("ENOTCONN", failed[2].code)
    a:close("again")
    assert.are.equal(1, closes)
    assert.is_false(a:send({ kind = "host" }))
  end)

  it("closes a connection that sends garbage", function()
    local why
    local a, b = pair({}, { on_close = function(_, w) why = w end })
    a.stream:write("garbage\n")
    run_until(function() return why end)
    assert.are.equal("protocol error: not a JSON object: garbage", why)
    assert.is_true(b.closed)
    a:close()
  end)
end)
