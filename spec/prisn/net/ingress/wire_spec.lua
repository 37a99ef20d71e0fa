-- prisn.net.ingress.wire: hop-by-hop fields dropped (and those Connection
-- names), X-Forwarded-* set, the framing chosen per side.
local wire = require("prisn.net.ingress.wire")

local function request(over)
  local head = { method = "GET", url = "/a?b=1", path = "/a", http_version = "1.1", keep_alive = true,
    headers = { host = "api.test", ["user-agent"] = "t" } }
  for k, v in pairs(over or {}) do head[k] = v end
  return head
end

describe("prisn.net.ingress.wire", function()
  it("forwards end-to-end fields and sets X-Forwarded-For/-Proto/-Host", function()
    local head = request({ headers = { host = "api.test:8080", connection = "keep-alive, X-Secret",
      ["x-secret"] = "1", ["keep-alive"] = "timeout=5", te = "trailers", ["x-forwarded-for"] = "10.0.0.1",
      accept = "*/*" } })
    local out = wire.request_head(head, { client = "127.0.0.2", proto = "https" })
    assert.are.equal("GET /a?b=1 HTTP/1.1\r\naccept: */*\r\nhost: api.test:8080\r\n"
      .. "x-forwarded-for: 10.0.0.1, 127.0.0.2\r\nx-forwarded-proto: https\r\n"
      .. "x-forwarded-host: api.test:8080\r\n\r\n",
      out)
  end)

  it("turns an absolute-form target into origin form, its authority the Host", function()
    local head = request({ url = "http://user@B.test:8080/x/y?z=1", path = "/x/y", query = "z=1",
      headers = { host = "a.test" } })
    wire.origin_form(head)
    assert.are.equal("/x/y?z=1", head.url)
    assert.are.equal("B.test:8080", head.headers.host)
    local plain = request()
    wire.origin_form(plain)
    assert.are.equal("/a?b=1", plain.url)
    assert.are.equal("api.test", plain.headers.host)
  end)

  it("keeps a body's length, or sends it chunked", function()
    local fixed = wire.request_head(request({ method = "POST", content_length = 5 }), { client = "c", proto = "http" })
    assert.is_truthy(fixed:find("content-length: 5\r\n", 1, true))
    local te = request({ method = "POST", headers = { host = "h", ["transfer-encoding"] = "chunked" } })
    local chunked = wire.request_head(te, { client = "c", proto = "http" })
    assert.is_truthy(chunked:find("transfer-encoding: chunked\r\n", 1, true))
    assert.are.equal("3\r\nabc\r\n", wire.chunk("abc"))
    assert.are.equal("0\r\n\r\n", wire.chunk(""))
  end)

  it("passes Upgrade on for a protocol switch", function()
    local head = request({ headers = { host = "h", connection = "Upgrade", upgrade = "websocket",
      ["sec-websocket-key"] = "k" } })
    assert.is_true(wire.wants_upgrade(head))
    local out = wire.request_head(head, { client = "c", proto = "http" })
    assert.is_truthy(out:find("connection: upgrade\r\nupgrade: websocket\r\n", 1, true))
    assert.is_truthy(out:find("sec-websocket-key: k\r\n", 1, true))
  end)

  it("frames a response per client and method", function()
    local resp = { status = 200, headers = { ["content-type"] = "text/plain", ["set-cookie"] = "a=1\nb=2",
      connection = "close" }, content_length = 10 }
    local head, framing = wire.response_head(resp, "GET", { client_version = "1.1", keep_alive = true })
    assert.are.equal("length", framing)
    assert.are.equal("HTTP/1.1 200 \r\ncontent-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n"
      .. "content-length: 10\r\n\r\n", head)
    local plain = { status = 200, headers = {} }
    local _, f2 = wire.response_head(plain, "GET", { client_version = "1.1", keep_alive = true })
    assert.are.equal("chunked", f2)
    local h3, f3 = wire.response_head(plain, "GET", { client_version = "1.0", keep_alive = true })
    assert.are.equal("close", f3)
    assert.is_truthy(h3:find("connection: close\r\n", 1, true))
    local h4, f4 = wire.response_head(resp, "HEAD", { client_version = "1.1", keep_alive = false, reason = "OK" })
    assert.are.equal("none", f4)
    assert.is_truthy(h4:find("^HTTP/1.1 200 OK\r\n"))
    local tail = "content-length: 10\r\nconnection: close\r\n\r\n"
    assert.are.equal(tail, h4:sub(-#tail))
  end)
end)
