-- prisn.dataplane.protocol: the control protocol between the server and the
-- data plane, over the unix socket $PRISN_HOME/dataplane.sock (mode 0600:
-- only the home's owner may drive the ports).
--
-- Framing: NDJSON, one JSON object a line (cjson escapes newlines inside
-- strings, so a line is a message). A line longer than MAX_LINE is a
-- protocol error and the connection is closed: a peer cannot make the other
-- hold an unbounded buffer. Text, so that `socat - UNIX:dataplane.sock`
-- is a debugging tool.
--
-- Messages (every one names the service it is for, `kind`):
--   request  { id = N, kind = "ports", op = "sync", ... }  the server asks
--   reply    { re = N, ok = true, ... } or { re = N, error = { code, message } }
--   event    { kind = "ports", event = "stats", ... }     the data plane tells,
--            unasked (no id), every connected server
-- `kind` is a service of the data plane's registry (prisn.dataplane.host):
-- "host" (hello, metrics, upgrade, stop), "ports", "dns", and whatever a
-- later service adds (ingress routes, log pumps): a new kind is a new module,
-- the framing and the dispatch do not change. An unknown kind or op is
-- answered with error code "unknown_kind" / "unknown_op", so an older data
-- plane tells a newer server what it cannot do instead of hanging it.
--
-- Each op's fields are documented where it is handled (the service module).
-- Every request gets exactly one reply; replies may come out of order.
local cjson = require("cjson")

local M = {}

M.VERSION = 1
M.MAX_LINE = 16 * 1024 * 1024

local encode_json = cjson.encode
local decode_json = cjson.new().decode

--- One message as a line.
function M.encode(msg)
  return encode_json(msg) .. "\n"
end

--- A decoder of a byte stream into messages: d:feed(chunk) returns a list
-- of messages (tables), or nil and a message when the stream is not the
-- protocol (the caller closes the connection).
function M.decoder(max_line)
  max_line = max_line or M.MAX_LINE
  local buffer = ""
  return {
    feed = function(_, chunk)
      buffer = buffer .. chunk
      local out, from = {}, 1
      while true do
        local nl = buffer:find("\n", from, true)
        if not nl then break end
        local line = buffer:sub(from, nl - 1)
        from = nl + 1
        if line ~= "" then
          local ok, msg = pcall(decode_json, line)
          if not ok or type(msg) ~= "table" or not line:find("^%s*{") then
            return nil, "not a JSON object: " .. line:sub(1, 80)
          end
          out[#out + 1] = msg
        end
      end
      buffer = buffer:sub(from)
      if #buffer > max_line then return nil, "a line longer than " .. max_line .. " bytes" end
      return out
    end,
  }
end

-- A connection -----------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

--- Wraps a connected luv stream. handlers: on_message(conn, msg) for
-- requests and events, on_close(conn, why) once when it ends. Replies to
-- this side's requests go to their callbacks instead.
function M.connection(stream, handlers)
  local conn = setmetatable({ stream = stream, handlers = handlers, pending = {}, next_id = 1,
    decoder = M.decoder() }, Conn)
  stream:read_start(function(err, chunk)
    if err or not chunk then return conn:close(err or "closed by the peer") end
    local msgs, why = conn.decoder:feed(chunk)
    if not msgs then return conn:close("protocol error: " .. why) end
    for _, msg in ipairs(msgs) do
      if conn.closed then return end
      conn:dispatch(msg)
    end
  end)
  return conn
end

function Conn:dispatch(msg)
  local re = msg.re
  if re ~= nil then
    local cb = self.pending[re]
    self.pending[re] = nil
    if cb then cb(msg.error == nil and msg or nil, msg.error) end
    return
  end
  if self.handlers.on_message then self.handlers.on_message(self, msg) end
end

--- Sends a message; false when the connection is gone.
function Conn:send(msg)
  if self.closed then return false end
  return self.stream:write(M.encode(msg)) ~= nil
end

--- Sends request `msg` (an id is added); callback(reply, err) once: the
-- reply, or nil and { code, message } (also when the connection ends first).
function Conn:request(msg, callback)
  local id = self.next_id
  self.next_id = id + 1
  msg.id = id
  if callback then self.pending[id] = callback end
  if not self:send(msg) then
    self.pending[id] = nil
    if callback then callback(nil, { code = "ENOTCONN", message = "the data plane is not connected" }) end
  end
end

--- Answers request `req` with `result` (a table, ok = true added) or, when
-- result is nil, an error of `code` and `message`.
function Conn:reply(req, result, message, code)
  if req.id == nil then return end
  if result == nil then
    return self:send({ re = req.id, error = { code = code or "failed", message = tostring(message) } })
  end
  result.re, result.ok = req.id, true
  return self:send(result)
end

--- Closes the connection (idempotent); pending requests fail.
function Conn:close(why)
  if self.closed then return end
  self.closed = true
  if not self.stream:is_closing() then self.stream:close() end
  local pending = self.pending
  self.pending = {}
  for _, cb in pairs(pending) do
    cb(nil, { code = "ENOTCONN", message = "the data plane connection closed: " .. tostring(why) })
  end
  if self.handlers.on_close then self.handlers.on_close(self, why) end
end

return M
