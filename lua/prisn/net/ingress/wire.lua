-- prisn.net.ingress.wire: the bytes the ingress writes, pure (no sockets).
--
-- The request head sent to a backend and the response head sent to a client,
-- built from the parsed heads of prisn.core.http (lower-cased names, repeats
-- joined): hop-by-hop fields are dropped (RFC 9110 7.6.1: Connection, the
-- fields it names, Keep-Alive, Proxy-Connection, TE, Trailer,
-- Transfer-Encoding, Upgrade) and the framing is the ingress's own, since
-- each side has its own connection: a body of known length keeps its
-- Content-Length, any other is sent chunked (to an HTTP/1.0 client: as is,
-- ended by the close). An upgrade request keeps its Upgrade and
-- "Connection: upgrade", so the backend can switch.
--
-- Not here: header case (names go out lower-case, which HTTP/1.1 allows),
-- trailers (the parser drops them), obs-fold.
local M = {}

local concat, format = table.concat, string.format

local HOP_BY_HOP = {
  ["connection"] = true, ["keep-alive"] = true, ["proxy-connection"] = true, ["te"] = true,
  ["trailer"] = true, ["transfer-encoding"] = true, ["upgrade"] = true,
  -- framing and proxy headers the ingress sets itself
  ["content-length"] = true, ["x-forwarded-for"] = true, ["x-forwarded-proto"] = true,
  ["x-forwarded-host"] = true, ["expect"] = true,
}

local NONE = setmetatable({}, { __newindex = function() error("wire: NONE is read-only", 2) end })

-- The fields a Connection header names, as a set.
local function connection_tokens(headers)
  local v = headers["connection"]
  if not v then return NONE end
  local set = {}
  for token in v:gmatch("[^,%s]+") do set[token:lower()] = true end
  return set
end
M.connection_tokens = connection_tokens

-- The end-to-end fields of `headers` appended to `out` as "name: value\r\n"
-- (set-cookie's values, joined by the parser with "\n", one line each).
local function copy_end_to_end(headers, out, except)
  local named = connection_tokens(headers)
  local names = {}
  for name in pairs(headers) do
    if not HOP_BY_HOP[name] and not named[name] and not (except and except[name]) then names[#names + 1] = name end
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local value = headers[name]
    if name == "set-cookie" then
      for line in value:gmatch("[^\n]+") do out[#out + 1] = name .. ": " .. line .. "\r\n" end
    else
      out[#out + 1] = name .. ": " .. value:gsub("[\r\n]", " ") .. "\r\n"
    end
  end
end

--- A request in absolute form ("GET http://h:1/p?q HTTP/1.1") made origin
-- form: its authority becomes the Host (RFC 9112 3.2.2: it wins over the
-- Host header) and the target its path and query, as a backend expects.
-- Changes `head` in place; other heads are left alone.
function M.origin_form(head)
  local authority = head.url:match("^%a[%w+.-]*://([^/?#]*)")
  if not authority then return end
  head.headers["host"] = authority:gsub("^.*@", "")
  head.url = head.path .. (head.query and ("?" .. head.query) or "")
end

--- Whether a request head asks to switch protocols (Upgrade with
-- "Connection: upgrade").
function M.wants_upgrade(head)
  return head.headers["upgrade"] ~= nil and connection_tokens(head.headers)["upgrade"] == true
end

--- Whether a request head declares a body: a Content-Length above 0 or a
-- Transfer-Encoding.
function M.has_body(head)
  return (head.content_length or 0) > 0 or head.headers["transfer-encoding"] ~= nil
end

--- The head to send a backend for request `head`. info: { client = the
-- client's address, proto = "http" | "https" }. The body (has_body) goes
-- with its Content-Length or chunked.
function M.request_head(head, info)
  local h = head.headers
  local out = { head.method, " ", head.url, " HTTP/1.1\r\n" }
  copy_end_to_end(h, out)
  if not h["host"] then out[#out + 1] = "host: \r\n" end
  local xff = h["x-forwarded-for"]
  out[#out + 1] = "x-forwarded-for: " .. (xff and (xff .. ", ") or "") .. info.client .. "\r\n"
  out[#out + 1] = "x-forwarded-proto: " .. info.proto .. "\r\n"
  if h["host"] then out[#out + 1] = "x-forwarded-host: " .. h["host"] .. "\r\n" end
  if M.wants_upgrade(head) then
    out[#out + 1] = "connection: upgrade\r\nupgrade: " .. h["upgrade"] .. "\r\n"
  elseif head.content_length then
    out[#out + 1] = format("content-length: %d\r\n", head.content_length)
  elseif h["transfer-encoding"] then
    out[#out + 1] = "transfer-encoding: chunked\r\n"
  end
  out[#out + 1] = "\r\n"
  return concat(out)
end

--- The head to send a client for response `head` to a request of `method`.
-- opts: { client_version = "1.1" | "1.0", keep_alive = whether the client
-- connection stays open, reason = fallback reason phrase }. Returns the
-- head and the body framing: "length", "chunked", "close" (an HTTP/1.0
-- client: the close ends it) or "none".
function M.response_head(head, method, opts)
  local status = head.status
  local out = { format("HTTP/1.1 %d %s\r\n", status, head.reason or opts.reason or "") }
  copy_end_to_end(head.headers, out)
  local framing
  local bodyless = method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200)
  if bodyless then
    framing = "none"
    -- a HEAD answer keeps the length the GET would have
    if head.content_length and status ~= 204 and status >= 200 then
      out[#out + 1] = format("content-length: %d\r\n", head.content_length)
    end
  elseif head.content_length then
    framing = "length"
    out[#out + 1] = format("content-length: %d\r\n", head.content_length)
  elseif opts.client_version == "1.1" then
    framing = "chunked"
    out[#out + 1] = "transfer-encoding: chunked\r\n"
  else
    framing = "close"
  end
  if status >= 200 then
    local keep = opts.keep_alive and framing ~= "close"
    out[#out + 1] = keep and "" or "connection: close\r\n"
    if keep and opts.client_version == "1.0" then out[#out + 1] = "connection: keep-alive\r\n" end
  end
  out[#out + 1] = "\r\n"
  return concat(out), framing
end

--- A chunk of a chunked body ("" is the last chunk).
function M.chunk(data)
  if data == "" then return "0\r\n\r\n" end
  return format("%x\r\n", #data) .. data .. "\r\n"
end

--- A short plain-text answer the ingress makes itself (404, 408, 413, 502...).
function M.error_response(status, reason, text, keep_alive)
  local body = text .. "\n"
  return format("HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%s\r\n%s",
    status, reason, #body, keep_alive and "" or "connection: close\r\n", body), #body
end

return M
