-- prisn.server.dataplane: what the server sends the data plane, and when,
-- with a fake connection recording the requests.
local dataplane = require("prisn.server.dataplane")

local function new_client()
  local logged = {}
  local log = {}
  for _, level in ipairs({ "info", "warn", "error" }) do
    log[level] = function(_, fmt, ...) logged[#logged + 1] = level .. ": " .. string.format(fmt, ...) end
  end
  local c = dataplane.new({ home = "/nonexistent", log = log }, { in_process = false, exe = "/bin/false" })
  local sent, replies = {}, {}
  -- A connected fake: answers each request from `replies[kind .. " " .. op]`.
  c.conn = { request = function(_, msg, cb)
    sent[#sent + 1] = msg
    if replies.hold then
      replies.held = function(reply) cb(reply) end
      return
    end
    local reply = replies[msg.kind .. " " .. msg.op] or {}
    if cb then cb(reply.error == nil and reply or nil, reply.error) end
  end }
  return c, sent, replies, logged
end

local function ops(sent)
  local out = {}
  for i, m in ipairs(sent) do out[i] = m.kind .. " " .. m.op end
  return out
end

describe("prisn.server.dataplane", function()
  it("sends a port's pool only when it changed", function()
    local c, sent = new_client()
    local port = c:open_port({ name = "default/web", host = "0.0.0.0", port = 8080 })
    local pool = { { id = "web-1", host = "127.0.0.1", port = 40001 } }
    port:set_backends(pool)
    port:set_backends({ { id = "web-1", host = "127.0.0.1", port = 40001 } })
    assert.are.same({ "ports set", "ports backends" }, ops(sent))
    port:close()
    port:set_backends({})
    assert.are.same({ "ports set", "ports backends", "ports close" }, ops(sent))
  end)

  it("sends the whole state on sync: every port with its pool, the DNS, the records, other services", function()
    local c, sent = new_client()
    local port = c:open_port({ name = "a/web", host = "0.0.0.0", port = 8080 })
    port:set_backends({ { id = "w", host = "::1", port = 1 } })
    c:set_dns({ host = "127.0.0.1", port = 7453, zone = "prisn.local", forward = {} })
    c:set_dns_records("a/web", { ["web.a.prisn.local"] = {} })
    c:set_dns_records("a/web", { ["web.a.prisn.local"] = {} }) -- unchanged: not sent
    c:add_service("logs", function() return { { kind = "logs", op = "sync", pumps = {} } } end)
    sent[#sent + 1] = "--"
    c:sync()
    local from = 0
    for i, m in ipairs(sent) do if m == "--" then from = i end end
    local after = { table.unpack(sent, from + 1) }
    assert.are.same({ "ports sync", "dns listen", "dns sync", "logs sync" }, ops(after))
    assert.are.same({ { name = "a/web", host = "0.0.0.0", port = 8080,
      backends = { { id = "w", host = "::1", port = 1 } } } }, after[1].ports)
    assert.are.same({ ["a/web"] = { ["web.a.prisn.local"] = {} } }, after[3].records)
  end)

  it("a port the data plane cannot open is forgotten and reported to its owner", function()
    local c, _, replies, logged = new_client()
    replies["ports sync"] = { failed = { ["a/web"] = { code = "EADDRINUSE",
      message = "port 8080 is already in use" } } }
    local failure
    c:open_port({ name = "a/web", host = "0.0.0.0", port = 8080 }, function(message, code)
      failure = { message, code }
    end)
    c:sync()
    assert.are.same({ "port 8080 is already in use", "EADDRINUSE" }, failure)
    assert.is_nil(c.ports["a/web"])
    assert.are.equal("error: data plane: a/web: port 8080 is already in use", logged[#logged])
  end)

  it("counts a backend's open connections from the data plane's events", function()
    local c = new_client()
    local port = c:open_port({ name = "a/web", host = "0.0.0.0", port = 8080 })
    assert.are.equal(0, port:connections("web-1"))
    c:on_event({ kind = "ports", event = "connections", ports = { ["a/web"] = { ["web-1"] = 3 } } })
    assert.are.equal(3, port:connections("web-1"))
  end)

  it("answers 1 for a backend's connections while a new pool is on its way, then the count it took", function()
    local c, _, replies = new_client()
    local port = c:open_port({ name = "a/web", host = "0.0.0.0", port = 8080 })
    replies.hold = true
    port:set_backends({ { id = "web-2", host = "127.0.0.1", port = 2 } })
    assert.are.equal(1, port:connections("web-1"), "unknown yet: a drain must wait")
    replies.held({ ok = true, connections = { ["web-1"] = 0.0, ["web-2"] = 1.0 } })
    assert.are.equal(0, port:connections("web-1"))
    assert.are.equal(1, port:connections("web-2"))
  end)

  it("in process, opens real ports in this process and reports a taken one at once", function()
    local log = { info = function() end, warn = function() end, error = function() end }
    local c = dataplane.new({ home = "/nonexistent", log = log }, { in_process = true })
    c:start()
    local port = assert(c:open_port({ name = "a/web", host = "127.0.0.1", port = 0 }))
    local bound = c.local_host.services.ports.ports["a/web"].proxy:port()
    assert.is_true(bound > 0)
    local again, message, code = c:open_port({ name = "a/other", host = "127.0.0.1", port = bound })
    assert.is_nil(again)
    assert.are.equal("EADDRINUSE", code)
    assert.matches("already in use", message)
    port:close()
    local closed = false
    c:stop(function() closed = true end)
    require("luv").run("nowait")
    assert.is_true(closed)
  end)
end)
