-- prisn.net.dns: the DNS responder for prisn's zone (prisn.local), on UDP and
-- TCP.
--
--   local dns = require("prisn.net.dns")
--   local r = dns.new({ zone = "prisn.local", lookup = function(name) ... end,
--     forward = { { host = "10.0.0.53", port = 53 } }, metrics = registry })
--   local ok, err, code = r:listen("127.0.0.1", 7453)
--   r:close()
--
-- The responder knows nothing of deployments: it answers from lookup(name),
-- which gets a lower-case name inside the zone and returns the records of that
-- name ({ { type = wire.TYPE.A, data = "127.0.0.1", ttl = 5 }, ... }, possibly
-- empty: the name exists with no records of any type) or nil (no such name).
-- The server feeds it (prisn.server.dns); a data-plane process that outlives
-- the server could feed it the same way.
--
-- What it answers (RFC 1035, 2308, 6891):
--   - a name of the zone: its records of the type asked (ANY: all), with the
--     AA bit and short TTLs (DEFAULT_TTL); SRV answers bring the addresses of
--     their targets as additional records. No such name: NXDOMAIN; the name
--     but not the type: NOERROR with no answer (NODATA). Both carry the zone's
--     SOA in the authority section, whose TTL and minimum are the negative TTL
--     (a few seconds: an instance turning ready is seen soon);
--   - outside the zone: REFUSED, or with `forward` (a list of resolvers), the
--     host's resolvers' answer (prisn.net.dns.forward) and the RA bit;
--   - an opcode other than QUERY: NOTIMP; not exactly one question: FORMERR;
--     an EDNS version above 0: BADVERS.
-- UDP answers are held to 512 bytes, or the EDNS0 size the client offers
-- (at most MAX_UDP_SIZE): past it the answer is sent empty with the TC bit,
-- and the client asks again over TCP (2-byte length prefix, several queries
-- per connection, an idle timeout, at most max_connections at a time).
--
-- Malformed packets and responses are dropped without an answer. Queries
-- from a source other than loopback are limited per source address (a token
-- bucket, `rate`): a spoofed source cannot turn this into an amplifier.
-- Loopback is not limited: it cannot be spoofed from the network, and a busy
-- host's workloads ask from there.
local uv = require("luv")
local errors = require("prisn.error")
local wire = require("prisn.net.dns.wire")
local forward = require("prisn.net.dns.forward")

local M = {}

M.wire = wire
M.DEFAULT_ZONE = "prisn.local"
M.DEFAULT_TTL = 5
M.NEGATIVE_TTL = 2
M.MAX_UDP_SIZE = 1232 -- the DNS flag day 2020 figure: no IP fragmentation
M.CLASSIC_UDP_SIZE = 512
M.FREE_PORT_ATTEMPTS = 20
M.DEFAULTS = {
  rate = { per_second = 50, burst = 100, sources = 4096 },
  max_connections = 64,
  tcp_idle_ms = 10000,
}

local T, RCODE = wire.TYPE, wire.RCODE
local protect = errors.call

local Responder = {}
Responder.__index = Responder

--- A responder. opts: lookup (required, see above), zone (default
-- prisn.local), ttl, negative_ttl, forward (a list of { host, port } or nil:
-- REFUSED outside the zone), forward_timeout_ms, metrics (a prisn.metrics
-- registry), log (a prisn.server.log, for bugs), rate ({ per_second, burst,
-- sources } or false: no limit), max_connections, tcp_idle_ms, clock (a
-- function returning seconds, for specs).
function M.new(opts)
  assert(type(opts.lookup) == "function", "dns.new needs a lookup function")
  local zone = (opts.zone or M.DEFAULT_ZONE):lower():gsub("%.$", "")
  local self = setmetatable({
    zone = zone, lookup = opts.lookup, ttl = opts.ttl or M.DEFAULT_TTL,
    negative_ttl = opts.negative_ttl or M.NEGATIVE_TTL, log = opts.log,
    rate = opts.rate == nil and M.DEFAULTS.rate or opts.rate, buckets = {}, bucket_count = 0,
    max_connections = opts.max_connections or M.DEFAULTS.max_connections,
    tcp_idle_ms = opts.tcp_idle_ms or M.DEFAULTS.tcp_idle_ms, connections = 0,
    clock = opts.clock or function() return uv.now() / 1000 end,
    handles = {}, clients = {},
  }, Responder)
  if opts.forward and #opts.forward > 0 then
    self.forwarder = forward.new({ servers = opts.forward, timeout_ms = opts.forward_timeout_ms })
  end
  self.soa = { name = zone, type = T.SOA, ttl = self.negative_ttl, data = { mname = "ns." .. zone,
    rname = "hostmaster." .. zone, serial = os.time() & 0xFFFFFFFF, refresh = 60, retry = 10, expire = 600,
    minimum = self.negative_ttl } }
  if opts.metrics then
    self.m_queries = opts.metrics:get("prisn_dns_queries_total") or opts.metrics:counter("prisn_dns_queries_total",
      "DNS queries answered, by query type and response code (forwarded: the upstream's).", { "type", "rcode" })
    self.m_dropped = opts.metrics:get("prisn_dns_dropped_total") or opts.metrics:counter("prisn_dns_dropped_total",
      "DNS packets dropped without an answer: malformed, a response, over the per-source rate.", { "reason" })
  end
  self.on_bug = function(err)
    if self.log then self.log:error("dns: %s", tostring(err)) else io.stderr:write("dns: ", tostring(err), "\n") end
  end
  return self
end

-- Answering ---------------------------------------------------------------------

function Responder:in_zone(name)
  return name == self.zone or name:sub(-#self.zone - 1) == "." .. self.zone
end

local function count(self, qtype, rcode)
  if self.m_queries then
    self.m_queries:labels(wire.TYPE_NAME[qtype] or "other", wire.RCODE_NAME[rcode] or tostring(rcode)):inc()
  end
end

local function dropped(self, reason)
  if self.m_dropped then self.m_dropped:labels(reason):inc() end
end

-- The records of `lname` (lower case) in the zone, or nil: the apex has its SOA.
function Responder:records(lname)
  local list = self.lookup(lname)
  if lname == self.zone then
    local apex = { { type = T.SOA, ttl = self.ttl, data = self.soa.data } }
    for _, rr in ipairs(list or {}) do apex[#apex + 1] = rr end
    return apex
  end
  return list
end

-- Fills `reply` (a response message) for question q inside the zone.
function Responder:answer_zone(reply, q)
  local lname = q.name:lower()
  local records = self:records(lname)
  if not records then
    reply.rcode = RCODE.NXDOMAIN
    reply.authority = { self.soa }
    return
  end
  for _, rr in ipairs(records) do
    if q.type == T.ANY or rr.type == q.type then
      reply.answers[#reply.answers + 1] = { name = q.name, type = rr.type, ttl = rr.ttl or self.ttl, data = rr.data }
      if rr.type == T.SRV then
        local target = rr.data.target:lower()
        for _, extra in ipairs(self:in_zone(target) and self.lookup(target) or {}) do
          if extra.type == T.A or extra.type == T.AAAA then
            reply.additional[#reply.additional + 1] = { name = rr.data.target, type = extra.type,
              ttl = extra.ttl or self.ttl, data = extra.data }
          end
        end
      end
    end
  end
  if #reply.answers == 0 then reply.authority = { self.soa } end
end

--- The response message to query `msg` (parsed), or nil, "forward" when it
-- goes to the host's resolvers. Pure: the specs call it directly.
function Responder:resolve(msg)
  local reply = { id = msg.id, qr = true, opcode = msg.opcode, rd = msg.rd, ra = self.forwarder ~= nil,
    cd = msg.cd, rcode = RCODE.NOERROR, questions = msg.questions, answers = {}, authority = {}, additional = {} }
  if msg.edns then
    reply.edns = { udp_size = M.MAX_UDP_SIZE }
    if msg.edns.version > 0 then
      reply.edns.ext_rcode = 1 -- BADVERS (16): 1 in the upper bits, 0 in the header
      return reply
    end
  end
  if msg.opcode ~= 0 then
    reply.rcode = RCODE.NOTIMP
    return reply
  end
  local q = msg.questions[1]
  if #msg.questions ~= 1 then
    reply.rcode = RCODE.FORMERR
    return reply
  end
  if q.class ~= wire.CLASS.IN and q.class ~= wire.CLASS.ANY then
    reply.rcode = RCODE.REFUSED
    return reply
  end
  if not self:in_zone(q.name:lower()) then
    if self.forwarder and msg.rd then return nil, "forward" end
    reply.rcode = RCODE.REFUSED
    return reply
  end
  reply.aa = true
  self:answer_zone(reply, q)
  return reply
end

-- Whether `ip` may be answered now: loopback always, others within their bucket.
function Responder:allow(ip)
  local rate = self.rate
  if not rate or ip:match("^127%.") or ip == "::1" or ip:match("^::ffff:127%.") then return true end
  local now = self.clock()
  local b = self.buckets[ip]
  if not b then
    -- A flood of sources must not grow the table without bound: it is
    -- emptied when full (each source starts again with a full bucket).
    if self.bucket_count >= rate.sources then self.buckets, self.bucket_count = {}, 0 end
    b = { tokens = rate.burst, at = now }
    self.buckets[ip] = b
    self.bucket_count = self.bucket_count + 1
  end
  b.tokens = math.min(rate.burst, b.tokens + (now - b.at) * rate.per_second)
  b.at = now
  if b.tokens < 1 then return false end
  b.tokens = b.tokens - 1
  return true
end

--- Handles one query `packet` from `ip` over `transport` ("udp" or "tcp"):
-- reply(bytes) is called with the answer (now, or later when forwarded), or
-- not at all when the packet is dropped.
function Responder:handle(packet, ip, transport, reply)
  local msg = wire.parse(packet)
  if not msg then return dropped(self, "malformed") end
  if msg.qr then return dropped(self, "response") end
  if not self:allow(ip) then return dropped(self, "rate") end
  local qtype = msg.questions[1] and msg.questions[1].type
  local response, why = self:resolve(msg)
  if why == "forward" then
    return self.forwarder:send(packet, function(bytes)
      local head = bytes and wire.parse_header(bytes)
      if not head then
        local fail = { id = msg.id, qr = true, rd = msg.rd, ra = true, rcode = RCODE.SERVFAIL,
          questions = msg.questions, edns = msg.edns and { udp_size = M.MAX_UDP_SIZE } or nil }
        bytes = wire.build(fail)
        count(self, qtype, RCODE.SERVFAIL)
      else
        count(self, qtype, string.byte(bytes, 4) & 0xF)
      end
      if bytes then reply(bytes) end
    end)
  end
  local max = transport == "tcp" and 65535
    or math.min(M.MAX_UDP_SIZE, math.max(M.CLASSIC_UDP_SIZE, msg.edns and msg.edns.udp_size or 0))
  local bytes = wire.build(response, { max_size = max })
  if not bytes then
    -- A name in the question that cannot be written back: nothing to say.
    return dropped(self, "malformed")
  end
  count(self, qtype, response.rcode + ((response.edns and response.edns.ext_rcode or 0) << 4))
  reply(bytes)
end

-- Listening ---------------------------------------------------------------------

local function close_handle(h)
  if h and not h:is_closing() then h:close() end
end

-- fd: a bound socket handed over by the process that had it (an upgrade).
local function bind_or_open(handle, host, port, fd)
  if fd then return handle:open(fd) end
  return handle:bind(host, port)
end

function Responder:serve_udp(host, port, fd)
  local udp = uv.new_udp()
  local ok, err, code = bind_or_open(udp, host, port, fd)
  if not ok then
    udp:close()
    return nil, err, code
  end
  ok, err, code = udp:recv_start(function(rerr, data, addr)
    if rerr or not data or not addr then return end
    protect("dns udp", self.handle, self.on_bug, self, data, addr.ip, "udp", function(bytes)
      if not udp:is_closing() then udp:send(bytes, addr.ip, addr.port, function() end) end
    end)
  end)
  if not ok then
    udp:close()
    return nil, err, code
  end
  self.handles[#self.handles + 1] = udp
  return udp
end

-- One TCP client: messages are read as they complete; the connection closes
-- after tcp_idle_ms without a query, on a framing error or on EOF.
function Responder:tcp_client(client)
  self.connections = self.connections + 1
  local buffer, timer = "", uv.new_timer()
  local ip = (client:getpeername() or {}).ip or "?"
  local function done()
    if client:is_closing() then return end
    self.connections = self.connections - 1
    self.clients[client] = nil
    close_handle(timer)
    client:close()
  end
  self.clients[client] = done
  local function idle() timer:start(self.tcp_idle_ms, 0, done) end
  idle()
  client:read_start(function(rerr, chunk)
    if rerr or not chunk then return done() end
    buffer = buffer .. chunk
    while #buffer >= 2 do
      local len = string.unpack(">I2", buffer)
      if len < wire.HEADER_SIZE then return done() end
      if #buffer < len + 2 then break end
      local packet = buffer:sub(3, len + 2)
      buffer = buffer:sub(len + 3)
      protect("dns tcp", self.handle, self.on_bug, self, packet, ip, "tcp", function(bytes)
        if not client:is_closing() then client:write(string.pack(">s2", bytes)) end
      end)
    end
    idle()
  end)
end

function Responder:serve_tcp(host, port, fd)
  local tcp = uv.new_tcp()
  local ok, err, code = bind_or_open(tcp, host, port, fd)
  if ok then
    ok, err, code = tcp:listen(64, function(aerr)
      if aerr then return end
      local client = uv.new_tcp()
      if not tcp:accept(client) or self.connections >= self.max_connections then return client:close() end
      protect("dns tcp", self.tcp_client, self.on_bug, self, client)
    end)
  end
  if not ok then
    tcp:close()
    return nil, err, code
  end
  self.handles[#self.handles + 1] = tcp
  return tcp
end

--- Answers on `host`:`port` over UDP and TCP (port 0: a free port, the same
-- for both when it can be had). fds (optional): { udp = FD, tcp = FD }, the
-- sockets of a data plane being replaced, adopted instead of bound. Returns the port, or nil, message, code.
function Responder:listen(host, port, fds)
  fds = fds or {}
  -- Port 0: the TCP twin of a free UDP port may be taken (by a client's
  -- local port on a busy host): another UDP port is tried.
  local attempts = (port == 0 and not fds.udp) and M.FREE_PORT_ATTEMPTS or 1
  for attempt = 1, attempts do
    local udp, err, code = self:serve_udp(host, port, fds.udp)
    if not udp then return nil, string.format("cannot listen on %s:%d/udp: %s", host, port, tostring(err)), code end
    local bound = udp:getsockname().port
    local tcp
    tcp, err, code = self:serve_tcp(host, bound, fds.tcp)
    if tcp then
      self.host, self.port = host, bound
      return bound
    end
    if attempt == attempts or code ~= "EADDRINUSE" then
      self:close()
      return nil, string.format("cannot listen on %s:%d/tcp: %s", host, bound, tostring(err)), code
    end
    table.remove(self.handles)
    close_handle(udp)
  end
end

--- Stops answering: the listeners close, forwarded queries are dropped.
function Responder:close()
  for _, h in ipairs(self.handles) do close_handle(h) end
  self.handles = {}
  local open = {}
  for _, done in pairs(self.clients) do open[#open + 1] = done end
  for _, done in ipairs(open) do done() end
  if self.forwarder then self.forwarder:close() end
end

return M
