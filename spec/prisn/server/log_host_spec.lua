-- prisn.server.log_host: what the server sends the data plane's log pumps —
-- each attach and detach as it happens, the whole list on every connect,
-- and errors logged (but not "not connected": the next sync carries it).
local log_host = require("prisn.server.log_host")

-- A stand-in for prisn.server.dataplane's client: records requests and
-- answers each with `answer(msg)` (reply, err).
local function fake_dataplane(answer)
  local dp = { sent = {}, providers = {} }
  function dp:request(msg, cb)
    self.sent[#self.sent + 1] = msg
    if cb then cb(answer(msg)) end
  end
  function dp:add_service(kind, fn)
    self.providers[#self.providers + 1] = { kind = kind, fn = fn }
  end
  --- What prisn.server.dataplane does on a connect.
  function dp:connect()
    for _, p in ipairs(self.providers) do
      assert.equal("logs", p.kind)
      for _, msg in ipairs(p.fn()) do self:request(msg) end
    end
  end
  return dp
end

local function fake_log()
  local log = { errors = {} }
  function log.error(_, fmt, ...) log.errors[#log.errors + 1] = fmt:format(...) end
  return log
end

local SPEC = { fifos = { stdout = "/h/run/default/web-1.out", stderr = "/h/run/default/web-1.err" },
  path = "/h/logs/default/deploy/web/1.log", max_bytes = 65536 }

describe("prisn.server.log_host", function()
  it("sends attach and detach, and the whole list on each connect", function()
    local dp = fake_dataplane(function() return {} end)
    local host = log_host.new(dp, fake_log())
    assert.is_true(host:attach("default/web/1", SPEC))
    host:attach("default/web/2", { fifos = SPEC.fifos, path = "/h/2.log", max_bytes = 1024 })
    host:detach("default/web/2")
    assert.same({ kind = "logs", op = "attach", key = "default/web/1", fifos = SPEC.fifos, path = SPEC.path,
      max_bytes = 65536 }, dp.sent[1])
    assert.same({ kind = "logs", op = "detach", key = "default/web/2" }, dp.sent[3])
    dp:connect()
    assert.same({ kind = "logs", op = "sync", attachments = { ["default/web/1"] = { fifos = SPEC.fifos,
      path = SPEC.path, max_bytes = 65536 } } }, dp.sent[4])
  end)

  it("logs what the data plane refused, but not a request dropped while it is away", function()
    local log = fake_log()
    local dp = fake_dataplane(function(msg)
      if msg.op == "attach" and msg.key == "default/web/1" then
        return nil, { code = "ENOTCONN", message = "the data plane is not connected" }
      end
      if msg.op == "attach" then return nil, { code = "ENOENT", message = "cannot read /h/x.out" } end
      return { failed = { ["default/web/3"] = "cannot read /h/y.out" } }
    end)
    local host = log_host.new(dp, log)
    host:attach("default/web/1", SPEC)
    host:attach("default/web/2", SPEC)
    dp:connect()
    assert.same({ "data plane: logs default/web/2: cannot read /h/x.out",
      "data plane: logs default/web/3: cannot read /h/y.out" }, log.errors)
  end)
end)
