-- prisn.net.dns.forward: passes queries outside prisn's zone on to the
-- host's resolvers, for workloads whose resolv.conf names prisn's DNS first.
--
--   local fwd = forward.new({ servers = { { host = "10.0.0.53", port = 53 } }, timeout_ms = 2000 })
--   fwd:send(packet, msg, function(response_bytes_or_nil) ... end)
--   fwd:close()
--
-- One UDP socket per address family, from an ephemeral port. Each query goes
-- out under a fresh random id (the client's id is put back in the answer), to
-- the first server; no answer within timeout_ms tries the next one, and after
-- the last the callback gets nil (the responder answers SERVFAIL). An answer
-- is taken only from the server the query went to, under an id that is
-- pending; anything else is dropped. At most max_pending queries are in
-- flight: past that the callback gets nil at once.
--
-- M.resolvers reads the nameservers of a resolv.conf (port 53: the format has
-- no ports), leaving out the addresses prisn's own DNS answers on.
--
-- Not here: TCP to the upstream (an answer truncated upstream is passed on
-- with its TC bit), caching (the host's resolver or the client caches).
local uv = require("luv")
local errors = require("prisn.error")
local wire = require("prisn.net.dns.wire")

local M = {}

M.DEFAULTS = { timeout_ms = 2000, max_pending = 1024 }

--- The nameservers of resolv.conf text `text`: a list of { host, port = 53 },
-- in order, without those in `skip` (a set of addresses) and duplicates.
function M.resolvers(text, skip)
  local list, seen = {}, {}
  for line in (text or ""):gmatch("[^\n]+") do
    local host = line:match("^%s*nameserver%s+([%x%.:]+)%s*$")
    -- (a scoped IPv6 address, fe80::1%eth0, is left out: luv cannot send to it by name)
    if host and not seen[host] and not (skip and skip[host]) then
      seen[host] = true
      list[#list + 1] = { host = host, port = 53 }
    end
  end
  return list
end

local Forward = {}
Forward.__index = Forward

--- A forwarder to opts.servers (a non-empty list of { host, port }).
-- opts: timeout_ms, max_pending, random (a function(n) -> 1..n, for specs).
function M.new(opts)
  assert(type(opts.servers) == "table" and #opts.servers > 0, "forward.new needs servers")
  return setmetatable({ servers = opts.servers, timeout_ms = opts.timeout_ms or M.DEFAULTS.timeout_ms,
    max_pending = opts.max_pending or M.DEFAULTS.max_pending, random = opts.random or math.random,
    sockets = {}, pending = {}, count = 0 }, Forward)
end

-- The socket for `host`'s family, made on first use; nil, message on failure.
function Forward:socket(host)
  local family = host:find(":", 1, true) and "inet6" or "inet"
  local sock = self.sockets[family]
  if sock then return sock end
  sock = uv.new_udp()
  local ok, err = sock:bind(family == "inet6" and "::" or "0.0.0.0", 0)
  if not ok then
    sock:close()
    return nil, err
  end
  sock:recv_start(errors.guard("dns forward", function(rerr, data, addr)
    if rerr or not data or not addr then return end
    self:received(data, addr)
  end))
  self.sockets[family] = sock
  return sock
end

function Forward:finish(id, response)
  local q = self.pending[id]
  if not q then return end
  self.pending[id] = nil
  self.count = self.count - 1
  if not q.timer:is_closing() then q.timer:close() end
  if response then response = string.pack(">I2", q.client_id) .. response:sub(3) end
  q.callback(response)
end

function Forward:received(data, addr)
  if #data < wire.HEADER_SIZE then return end
  local id = string.unpack(">I2", data)
  local q = self.pending[id]
  if not q then return end
  local server = self.servers[q.server]
  if addr.ip ~= server.host or addr.port ~= server.port then return end
  self:finish(id, data)
end

-- Sends query `id` to its current server, or gives up past the last one.
function Forward:try(id)
  local q = self.pending[id]
  while q.server <= #self.servers do
    local server = self.servers[q.server]
    local sock = self:socket(server.host)
    if sock and sock:send(q.packet, server.host, server.port, function() end) then
      q.timer:start(self.timeout_ms, 0, function()
        q.server = q.server + 1
        self:try(id)
      end)
      return
    end
    q.server = q.server + 1
  end
  self:finish(id, nil)
end

--- Forwards `packet` (a query); callback(bytes) with the answer carrying the
-- client's id, or callback(nil) when no server answered.
function Forward:send(packet, callback)
  if self.count >= self.max_pending or #packet < wire.HEADER_SIZE then return callback(nil) end
  local id
  repeat id = self.random(65536) - 1 until not self.pending[id]
  local q = { client_id = string.unpack(">I2", packet), packet = string.pack(">I2", id) .. packet:sub(3),
    callback = callback, server = 1, timer = uv.new_timer() }
  self.pending[id] = q
  self.count = self.count + 1
  self:try(id)
end

--- Fails every pending query and closes the sockets.
function Forward:close()
  for id in pairs(self.pending) do self:finish(id, nil) end
  for family, sock in pairs(self.sockets) do
    if not sock:is_closing() then sock:close() end
    self.sockets[family] = nil
  end
end

return M
