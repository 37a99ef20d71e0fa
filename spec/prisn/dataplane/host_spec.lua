-- prisn.dataplane.host: the registry of services and the dispatch of
-- requests by kind and op, with fake services.
local host = require("prisn.dataplane.host")

local function fake_service(name)
  return {
    new = function()
      return {
        op_echo = function(_, msg) return { from = name, value = msg.value } end,
        op_fail = function() return nil, "it failed", "EIO" end,
        op_bug = function() error("oops") end,
        tick = function() return name == "a" and { event = "changed" } or nil end,
        snapshot = function() return { name = name } end,
        listeners = function() return { { name = "l", fd = name == "a" and 7 or 8 } } end,
        adopt = function(self, snapshot, fds) self.adopted = { snapshot, fds } end,
      }
    end,
  }
end

local function new_host()
  local errors = {}
  local log = { error = function(_, fmt, ...) errors[#errors + 1] = string.format(fmt, ...) end }
  local h = host.new({ log = log, pid = 42, version = "9.9",
    services = { { kind = "a", module = fake_service("a") }, { kind = "b", module = fake_service("b") } } })
  return h, errors
end

describe("prisn.dataplane.host", function()
  it("sends each request to its kind's op_<op>; unknown kinds and ops are errors with a code", function()
    local h = new_host()
    assert.are.same({ from = "b", value = 3 }, h:handle({ kind = "b", op = "echo", value = 3 }))
    assert.are.same({ nil, "it failed", "EIO" }, { h:handle({ kind = "a", op = "fail" }) })
    assert.are.same({ nil, "the data plane has no service ingress", "unknown_kind" },
      { h:handle({ kind = "ingress", op = "routes" }) })
    assert.are.same({ nil, "the data plane's a has no op nope", "unknown_op" },
      { h:handle({ kind = "a", op = "nope" }) })
    assert.are.same({ nil, "a request needs an op", "invalid" }, { h:handle({ kind = "a" }) })
    assert.are.same({ pid = 42, version = "9.9", services = { "a", "b" } }, h:handle({ kind = "host", op = "hello" }))
  end)

  it("a service that raises answers an internal error and is logged; the host goes on", function()
    local h, errors = new_host()
    local result, message, code = h:handle({ kind = "a", op = "bug" })
    assert.is_nil(result)
    assert.are.equal("internal", code)
    assert.matches("oops", message)
    assert.matches("^a bug: .*oops", errors[1])
    assert.are.equal("b", h:handle({ kind = "b", op = "echo" }).from)
  end)

  it("collects the services' events, snapshots and sockets, and hands them to the next host", function()
    local h = new_host()
    assert.are.same({ { event = "changed", kind = "a" } }, h:tick())
    local snapshot, fds = h:handover()
    assert.are.same({ a = { name = "a" }, b = { name = "b" } }, snapshot)
    assert.are.same({ { kind = "a", name = "l", fd = 7 }, { kind = "b", name = "l", fd = 8 } }, fds)
    local next_host = new_host()
    next_host:adopt(snapshot, { a = { l = 3 } })
    assert.are.same({ { name = "a" }, { l = 3 } }, next_host.services.a.adopted)
    assert.are.same({ { name = "b" }, {} }, next_host.services.b.adopted)
  end)
end)
