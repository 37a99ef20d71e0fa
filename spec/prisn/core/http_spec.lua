-- prisn.core.http as the server and the client use it: messages out of any
-- split of the byte stream, the limits and their codes, the dead parser
-- after an error, close-delimited and truncated responses, and the
-- streaming entries the client follows logs with.
local http = require("prisn.core.http")

local CRLF = "\r\n"

local function req(lines, body)
  return table.concat(lines, CRLF) .. CRLF .. CRLF .. (body or "")
end

-- Feeds `data` in pieces of `size` bytes and returns every entry produced.
local function feed_in_pieces(parser, data, size)
  local all = {}
  for i = 1, #data, size do
    local list, msg = parser:feed(data:sub(i, i + size - 1))
    assert(list and not msg, msg)
    for _, m in ipairs(list) do all[#all + 1] = m end
  end
  return all
end

describe("prisn.core.http", function()
  describe("requests", function()
    local parser

    before_each(function()
      parser = http.new_parser("request")
    end)

    after_each(function()
      parser:close()
    end)

    it("parses a simple GET into the documented table", function()
      local list = assert(parser:feed(req({ "GET /api/v1/x?y=1 HTTP/1.1", "Host: prisn", "Accept: */*" })))
      assert.same({
        {
          method = "GET",
          url = "/api/v1/x?y=1",
          path = "/api/v1/x",
          query = "y=1",
          headers = { host = "prisn", accept = "*/*" },
          body = "",
          keep_alive = true,
          http_version = "1.1",
          upgrade = false,
        },
      }, list)
    end)

    it("says whether the stream is between messages, in a head or past it", function()
      assert.equal("none", parser:pending())
      parser:feed("\r\n")
      assert.equal("none", parser:pending(), "line ends between messages begin none")
      parser:feed("POST /x HTTP/1.1\r\nContent-Le")
      assert.equal("head", parser:pending())
      parser:feed("ngth: 4\r\n\r\nab")
      assert.equal("body", parser:pending())
      local list = parser:feed("cdGET / HTTP/1.1\r\n")
      assert.equal(1, #list)
      assert.equal("head", parser:pending(), "the next pipelined request has begun")
      parser:feed("\r\n")
      assert.equal("none", parser:pending())
      parser:feed("GET / HT")
      parser:reset()
      assert.equal("none", parser:pending())
    end)

    it("returns an empty list while a message is incomplete", function()
      assert.same({}, parser:feed("GET / HT"))
      assert.same({}, parser:feed("TP/1.1\r\n"))
      local list = assert(parser:feed("\r\n"))
      assert.equal(1, #list)
      assert.is_nil(list[1].query)
    end)

    it("keeps a Content-Length body byte for byte, NULs included", function()
      local body = "a\0b\0\r\n\255"
      local m = assert(parser:feed(req({ "POST /jobs HTTP/1.1", "Content-Length: " .. #body }, body)))[1]
      assert.equal(body, m.body)
    end)

    it("joins a chunked body", function()
      local m = assert(parser:feed(req({ "POST / HTTP/1.1", "Transfer-Encoding: chunked" },
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")))[1]
      assert.equal("hello world", m.body)
    end)

    it("returns pipelined requests in order, whatever the split", function()
      local stream = req({ "GET /1 HTTP/1.1" })
        .. req({ "POST /2 HTTP/1.1", "Content-Length: 2" }, "ab")
        .. req({ "PUT /3 HTTP/1.1", "Transfer-Encoding: chunked" }, "1\r\nc\r\n0\r\n\r\n")
      for _, size in ipairs({ #stream, 1, 2, 7, 13 }) do
        local p = http.new_parser("request")
        local all = feed_in_pieces(p, stream, size)
        assert.equal(3, #all)
        assert.same({ "/1", "/2", "/3" }, { all[1].path, all[2].path, all[3].path })
        assert.same({ "", "ab", "c" }, { all[1].body, all[2].body, all[3].body })
        p:close()
      end
    end)

    it("lower-cases header names and joins repeats", function()
      local m = assert(parser:feed(req({ "GET / HTTP/1.1", "X-Tag: a", "x-TAG: b", "X-Tag:c ",
        "Set-Cookie: s=1; Expires=Wed, 21 Oct 2015", "Set-Cookie: t=2" })))[1]
      assert.equal("a, b, c", m.headers["x-tag"])
      assert.equal("s=1; Expires=Wed, 21 Oct 2015\nt=2", m.headers["set-cookie"])
      assert.is_nil(m.headers["X-Tag"])
    end)

    it("says keep_alive = false for HTTP/1.0 and Connection: close", function()
      local function keep_alive(lines)
        local p = http.new_parser("request")
        local m = assert(p:feed(req(lines)))[1]
        p:close()
        return m.keep_alive
      end
      assert.is_true(keep_alive({ "GET / HTTP/1.1" }))
      assert.is_false(keep_alive({ "GET / HTTP/1.1", "Connection: close" }))
      assert.is_false(keep_alive({ "GET / HTTP/1.0" }))
      assert.is_true(keep_alive({ "GET / HTTP/1.0", "Connection: keep-alive" }))
    end)

    it("marks upgrades and refuses the bytes that follow them", function()
      local list = assert(parser:feed(req({ "GET /ws HTTP/1.1", "Connection: Upgrade", "Upgrade: websocket" })))
      assert.is_true(list[1].upgrade)
      assert.same({ nil, "upgraded: data after a message that switched protocols", "upgraded" },
        { parser:feed("\129\5hello") })
    end)
  end)

  describe("limits", function()
    it("counts the head as a canonical message carries it", function()
      -- "GET / HTTP/1.1\r\n" 16 + "Host: x\r\n" 9 + "\r\n" 2 = 27
      local p = http.new_parser("request", { max_header_bytes = 27 })
      assert.equal(1, #assert(p:feed(req({ "GET / HTTP/1.1", "Host: x" }))))
      assert.same({ nil, "header_too_large: message head exceeds 27 bytes", "header_too_large" },
        { p:feed(req({ "GET / HTTP/1.1", "Host: xy" })) })
    end)

    it("stops a head that never ends at the default 16 KiB", function()
      local p = http.new_parser("request")
      assert.same({}, p:feed("GET / HTTP/1.1\r\n"))
      local line = "X-Filler: " .. string.rep("z", 500) .. "\r\n"
      local fed, list, msg, code = 16, {}, nil, nil
      while list do
        list, msg, code = p:feed(line)
        fed = fed + #line
      end
      assert.equal("header_too_large: message head exceeds 16384 bytes", msg)
      assert.equal("header_too_large", code)
      assert.is_true(fed > 16384 and fed <= 16384 + #line)
    end)

    it("limits the number of header fields", function()
      local p = http.new_parser("request", { max_headers = 2 })
      assert.equal(1, #assert(p:feed(req({ "GET / HTTP/1.1", "A: 1", "B: 2" }))))
      local list, msg, code = p:feed(req({ "GET / HTTP/1.1", "A: 1", "B: 2", "C: 3" }))
      assert.is_nil(list)
      assert.equal("too_many_headers: more than 2 header fields", msg)
      assert.equal("too_many_headers", code)
    end)

    it("refuses a Content-Length over the limit before any body byte", function()
      local p = http.new_parser("request", { max_body_bytes = 10 })
      local list, msg, code = p:feed(req({ "POST / HTTP/1.1", "Content-Length: 11" }))
      assert.is_nil(list)
      assert.equal("body_too_large", code)
      assert.equal("body_too_large: message body exceeds 10 bytes", msg)
    end)

    it("refuses a chunked body that grows past the limit", function()
      local p = http.new_parser("request", { max_body_bytes = 8 })
      assert.same({}, p:feed(req({ "POST / HTTP/1.1", "Transfer-Encoding: chunked" }, "4\r\nabcd\r\n")))
      assert.same({}, p:feed("4\r\nefgh\r\n"))
      local list, _, code = p:feed("1\r\ni\r\n0\r\n\r\n")
      assert.is_nil(list)
      assert.equal("body_too_large", code)
    end)

    it("rejects unknown or bad limits as misuse", function()
      assert.has_error(function() http.new_parser("request", { max_body = 1 }) end,
        "new_parser: unknown limit 'max_body'")
      assert.has_error(function() http.new_parser("request", { max_headers = 1.5 }) end,
        "new_parser: limits.max_headers must be an integer >= 0")
      assert.has_error(function() http.new_parser("client") end)
    end)
  end)

  describe("errors", function()
    it("names http-parser's errors and stays dead until reset", function()
      local p = http.new_parser("request")
      assert.same({ nil, "HPE_INVALID_METHOD: invalid HTTP method", "HPE_INVALID_METHOD" },
        { p:feed("FOO\1 / HTTP/1.1\r\n\r\n") })
      assert.same({ nil, "HPE_INVALID_METHOD: invalid HTTP method", "HPE_INVALID_METHOD" },
        { p:feed(req({ "GET / HTTP/1.1" })) })
      assert.same({ nil, "HPE_INVALID_METHOD: invalid HTTP method", "HPE_INVALID_METHOD" },
        { p:feed_eof() })
      p:reset()
      assert.equal(1, #assert(p:feed(req({ "GET / HTTP/1.1" }))))
    end)

    it("returns the messages completed before an error with it", function()
      local p = http.new_parser("request")
      local list, msg, code = p:feed(req({ "GET /ok HTTP/1.1" }) .. "GET /x HTTP/1.1\r\nBad\1: 1\r\n\r\n")
      assert.equal(1, #list)
      assert.equal("/ok", list[1].path)
      assert.equal("HPE_INVALID_HEADER_TOKEN: invalid character in header", msg)
      assert.equal("HPE_INVALID_HEADER_TOKEN", code)
    end)
  end)

  describe("responses", function()
    it("parses status, reason, chunked and Content-Length bodies", function()
      local p = http.new_parser("response")
      local list = assert(p:feed("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
        .. "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n"
        .. "HTTP/1.1 204\r\n\r\n"))
      assert.equal(3, #list)
      assert.same({ status = 201, reason = "Created", headers = { ["content-length"] = "2" }, body = "{}",
        keep_alive = true, http_version = "1.1", upgrade = false }, list[1])
      assert.same({ 404, "Not Found", "no!" }, { list[2].status, list[2].reason, list[2].body })
      assert.equal(204, list[3].status)
      assert.is_nil(list[3].reason)
    end)

    it("completes a close-delimited body at EOF", function()
      local p = http.new_parser("response")
      assert.same({}, p:feed("HTTP/1.1 200 OK\r\n\r\nfirst "))
      assert.same({}, p:feed("second"))
      local list = assert(p:feed_eof())
      assert.equal("first second", list[1].body)
      assert.is_false(list[1].keep_alive)
    end)

    it("reports a truncated message at EOF", function()
      local p = http.new_parser("response")
      assert.same({}, p:feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"))
      assert.same({ nil, "incomplete_message: the stream ended inside a message", "incomplete_message" },
        { p:feed_eof() })
    end)
  end)

  describe("stream_body", function()
    it("gives the head, the chunks as they come, then done", function()
      local p = http.new_parser("response", { stream_body = true })
      local list = assert(p:feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
      assert.same({ { status = 200, reason = "OK", headers = { ["transfer-encoding"] = "chunked" },
        keep_alive = true, http_version = "1.1", upgrade = false, streaming = true } }, list)
      assert.same({ { chunk = "line 1\n" } }, p:feed("7\r\nline 1\n\r\n"))
      assert.same({ { chunk = "line 2\nline 3\n" } }, p:feed("7\r\nline 2\n\r\n7\r\nline 3\n\r\n"))
      assert.same({}, p:feed("7\r\n"))
      assert.same({ { chunk = "li" } }, p:feed("li"))
      assert.same({ { chunk = "ne 4\n" }, { done = true } }, p:feed("ne 4\n\r\n0\r\n\r\n"))
    end)

    it("frames every message with a head and a done, and follows a close-delimited body", function()
      local p = http.new_parser("response", { stream_body = true })
      local list = assert(p:feed("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        .. "HTTP/1.0 200 OK\r\n\r\nto the end"))
      assert.equal(7, #list)
      assert.is_true(list[1].streaming)
      assert.is_true(list[2].done)
      assert.equal(2, list[3].content_length)
      assert.same({ { chunk = "ok" }, { done = true } }, { list[4], list[5] })
      assert.same({ chunk = "to the end" }, list[7])
      assert.same({ { done = true } }, p:feed_eof())
    end)

    it("has no body limit unless one is given", function()
      local p = http.new_parser("response", { stream_body = true })
      assert.equal(1, #assert(p:feed("HTTP/1.1 200 OK\r\n\r\n")))
      local piece = string.rep("x", 64 * 1024)
      for _ = 1, 32 do assert.same({ { chunk = piece } }, p:feed(piece)) end
      local q = http.new_parser("response", { stream_body = true, max_body_bytes = 4 })
      assert.equal(1, #assert(q:feed("HTTP/1.1 200 OK\r\n\r\n")))
      local list, _, code = q:feed("12345")
      assert.same({ { chunk = "1234" } }, list) -- the bytes within the limit still come out
      assert.equal("body_too_large", code)
    end)
  end)

  describe("the handle", function()
    it("closes idempotently and refuses use after close", function()
      local p = http.new_parser("response")
      assert.equal("prisn.http.parser (response)", tostring(p))
      p:close()
      p:close()
      assert.equal("prisn.http.parser (response, closed)", tostring(p))
      assert.has_error(function() p:feed("x") end)
      assert.has_error(function() p:reset() end)
    end)

    it("closes at the end of a <close> scope", function()
      local keep
      do
        local p <close> = http.new_parser("request")
        keep = p
      end
      assert.equal("prisn.http.parser (request, closed)", tostring(keep))
    end)
  end)

  it("names status codes and its own version", function()
    assert.equal("Not Found", http.status_text(404))
    assert.equal("Request Header Fields Too Large", http.status_text(431))
    assert.equal("Too Many Requests", http.status_text(429))
    assert.is_nil(http.status_text(299))
    assert.equal("2.9.4", http.version())
  end)
end)
