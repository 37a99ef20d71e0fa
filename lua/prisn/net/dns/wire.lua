-- prisn.net.dns.wire: DNS messages to and from their wire format (RFC 1035).
--
--   local wire = require("prisn.net.dns.wire")
--   local msg = wire.parse(packet)          -- nil, reason for anything malformed
--   local bytes = wire.build(msg, { max_size = 512 })
--
-- Pure Lua with no dependencies, so the responder can run in the server or in
-- a process of its own, and specs test it byte by byte. A message is a table:
--   { id, qr, opcode, aa, tc, rd, ra, ad, cd, rcode,
--     questions = { { name, type, class } },
--     answers, authority, additional = { { name, type, class, ttl, data } },
--     edns = { udp_size, version, dnssec_ok, ext_rcode } or nil }
-- Names are dotted text without the final dot ("" is the root); bytes that are
-- not printable, and "." or "\" inside a label, are written \DDD (RFC 4343),
-- so a name survives parse and build unchanged, case included. Types and
-- classes are numbers (M.TYPE, M.CLASS). `data` is per type: A and AAAA an
-- address string, CNAME/NS/PTR a name, SRV { priority, weight, port, target },
-- SOA { mname, rname, serial, refresh, retry, expire, minimum }, TXT a list of
-- strings, anything else the raw RDATA string.
--
-- Parsing never raises: every length is checked against the packet, a
-- compression pointer must point before the name it is part of (so there are
-- no loops), labels stay within 63 bytes and names within 255. Building
-- compresses owner names and the names inside CNAME, NS, PTR and SOA (not SRV
-- targets: RFC 2782 forbids it) and, with opts.max_size, answers with only the
-- header, question and OPT and the TC bit when the whole would not fit.
--
-- Not here: DNSSEC, zone transfers, EDNS options (they are skipped), any
-- policy about what to answer (prisn.net.dns).
local M = {}

M.TYPE = { A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, TXT = 16, AAAA = 28, SRV = 33, OPT = 41, ANY = 255 }
M.CLASS = { IN = 1, CH = 3, ANY = 255 }
M.RCODE = { NOERROR = 0, FORMERR = 1, SERVFAIL = 2, NXDOMAIN = 3, NOTIMP = 4, REFUSED = 5 }
M.HEADER_SIZE = 12
M.MAX_NAME = 255
M.MAX_LABEL = 63

M.TYPE_NAME, M.RCODE_NAME = {}, {}
for name, n in pairs(M.TYPE) do M.TYPE_NAME[n] = name end
for name, n in pairs(M.RCODE) do M.RCODE_NAME[n] = name end

local byte, char, sunpack, spack = string.byte, string.char, string.unpack, string.pack
local concat, tointeger = table.concat, math.tointeger

-- Addresses -------------------------------------------------------------------

--- The 4 bytes of dotted IPv4 text, or nil.
function M.ipv4_bytes(text)
  local a, b, c, d = tostring(text):match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local parts = { tonumber(a), tonumber(b), tonumber(c), tonumber(d) }
  for _, p in ipairs(parts) do if p > 255 then return nil end end
  return char(parts[1], parts[2], parts[3], parts[4])
end

--- The 16 bytes of IPv6 text ("::1", "fd00::2:3"; no embedded IPv4), or nil.
function M.ipv6_bytes(text)
  text = tostring(text)
  if text:find(":::", 1, true) or select(2, text:gsub("::", "")) > 1 then return nil end
  local head, tail = text:match("^(.-)::(.-)$")
  local function groups(s)
    local out = {}
    if s == "" then return out end
    for g in (s .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then return nil end
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local list
  if head then
    local h, t = groups(head), groups(tail)
    if not h or not t or #h + #t > 7 then return nil end
    list = h
    for _ = 1, 8 - #h - #t do list[#list + 1] = 0 end
    for _, g in ipairs(t) do list[#list + 1] = g end
  else
    list = groups(text)
    if not list or #list ~= 8 then return nil end
  end
  return spack(">I2I2I2I2I2I2I2I2", table.unpack(list))
end

-- 16 bytes as RFC 5952 text: lower case, the longest run of zero groups
-- (two or more) as "::".
local function ipv6_text(bytes)
  local g = { sunpack(">I2I2I2I2I2I2I2I2", bytes) }
  local best, best_len, run, run_len = nil, 1, nil, 0
  for i = 1, 8 do
    if g[i] == 0 then
      if not run then run, run_len = i, 0 end
      run_len = run_len + 1
      if run_len > best_len then best, best_len = run, run_len end
    else
      run = nil
    end
  end
  local parts = {}
  for i = 1, 8 do parts[i] = string.format("%x", g[i]) end
  if not best then return concat(parts, ":") end
  return concat(parts, ":", 1, best - 1) .. "::" .. concat(parts, ":", best + best_len, 8)
end
M.ipv6_text = ipv6_text

-- Names -------------------------------------------------------------------------

-- One label's bytes as text (\DDD for what is not plainly printable).
local function label_text(raw)
  return (raw:gsub("[^%w%-_*/+=@#%%$!?~^&()%[%]{}<>,;:'\"|`]", function(c)
    return string.format("\\%03d", byte(c))
  end))
end

--- The labels of dotted `name` as raw byte strings, or nil, reason (an empty
-- label, one over 63 bytes, a bad escape, a name over 255 bytes on the wire).
function M.labels(name)
  if name == "" or name == "." then return {} end
  if name:sub(-1) == "." and name:sub(-2, -2) ~= "\\" then name = name:sub(1, -2) end
  local labels, current, i, wire_len = {}, {}, 1, 1
  local function finish()
    local label = concat(current)
    if #label == 0 then return nil, "empty label" end
    if #label > M.MAX_LABEL then return nil, "label longer than 63 bytes" end
    labels[#labels + 1] = label
    wire_len = wire_len + #label + 1
    current = {}
    return true
  end
  while i <= #name do
    local c = name:sub(i, i)
    if c == "\\" then
      local digits = name:match("^%d%d%d", i + 1)
      if digits then
        local n = tonumber(digits)
        if n > 255 then return nil, "bad escape" end
        current[#current + 1] = char(n)
        i = i + 4
      elseif i < #name then
        current[#current + 1] = name:sub(i + 1, i + 1)
        i = i + 2
      else
        return nil, "bad escape"
      end
    elseif c == "." then
      local ok, err = finish()
      if not ok then return nil, err end
      i = i + 1
    else
      current[#current + 1] = c
      i = i + 1
    end
  end
  local ok, err = finish()
  if not ok then return nil, err end
  if wire_len > M.MAX_NAME then return nil, "name longer than 255 bytes" end
  return labels
end

-- Reads a name at `pos` (1-based) of `packet`: the name and the position after
-- it in the message (after the first pointer when there is one), or nil.
-- A pointer must point before the start of the labels it follows, so every
-- jump goes backwards and the walk ends.
local function read_name(packet, pos)
  local labels, wire_len, after = {}, 1, nil
  local limit = pos -- pointers must point before this
  local n = #packet
  while true do
    if pos > n then return nil end
    local len = byte(packet, pos)
    if len == 0 then
      pos = pos + 1
      break
    elseif len >= 0xC0 then
      if pos + 1 > n then return nil end
      local target = ((len & 0x3F) << 8 | byte(packet, pos + 1)) + 1
      if target >= limit then return nil end
      if not after then after = pos + 2 end
      pos, limit = target, target
    elseif len > M.MAX_LABEL then
      return nil -- 0x40 and 0x80: extended and reserved label types
    else
      if pos + len > n then return nil end
      wire_len = wire_len + len + 1
      if wire_len > M.MAX_NAME then return nil end
      labels[#labels + 1] = label_text(packet:sub(pos + 1, pos + len))
      pos = pos + len + 1
    end
  end
  return concat(labels, "."), after or pos
end
M.read_name = read_name

-- Parsing -------------------------------------------------------------------------

local function u16(packet, pos)
  if pos + 1 > #packet then return nil end
  return (byte(packet, pos) << 8) | byte(packet, pos + 1)
end

local function rdata_of(packet, rtype, pos, rdlen)
  local raw = packet:sub(pos, pos + rdlen - 1)
  local stop = pos + rdlen
  if rtype == M.TYPE.A then
    if rdlen ~= 4 then return nil end
    return string.format("%d.%d.%d.%d", byte(raw, 1, 4))
  elseif rtype == M.TYPE.AAAA then
    if rdlen ~= 16 then return nil end
    return ipv6_text(raw)
  elseif rtype == M.TYPE.CNAME or rtype == M.TYPE.NS or rtype == M.TYPE.PTR then
    local name, after = read_name(packet, pos)
    if not name or after ~= stop then return nil end
    return name
  elseif rtype == M.TYPE.SRV then
    if rdlen < 7 then return nil end
    local priority, weight, port = sunpack(">I2I2I2", packet, pos)
    local target, after = read_name(packet, pos + 6)
    if not target or after ~= stop then return nil end
    return { priority = priority, weight = weight, port = port, target = target }
  elseif rtype == M.TYPE.SOA then
    local mname, p1 = read_name(packet, pos)
    if not mname then return nil end
    local rname, p2 = read_name(packet, p1)
    if not rname or p2 + 20 ~= stop then return nil end
    local serial, refresh, retry, expire, minimum = sunpack(">I4I4I4I4I4", packet, p2)
    return { mname = mname, rname = rname, serial = serial, refresh = refresh, retry = retry, expire = expire,
      minimum = minimum }
  elseif rtype == M.TYPE.TXT then
    local list, p = {}, 1
    while p <= #raw do
      local len = byte(raw, p)
      if p + len > #raw then return nil end
      list[#list + 1] = raw:sub(p + 1, p + len)
      p = p + len + 1
    end
    return list
  end
  return raw
end

-- Reads one resource record at pos: the record and the position after it, or nil.
local function read_record(packet, pos)
  local name, p = read_name(packet, pos)
  if not name or p + 9 > #packet then return nil end
  local rtype, class, ttl, rdlen = sunpack(">I2I2I4I2", packet, p)
  p = p + 10
  if p + rdlen - 1 > #packet then return nil end
  local data = rdata_of(packet, rtype, p, rdlen)
  if data == nil then return nil end
  return { name = name, type = rtype, class = class, ttl = ttl, data = data }, p + rdlen
end

--- The message in `packet` (a string), or nil, reason when it is not a
-- well-formed DNS message. Trailing bytes after the last record are an error.
function M.parse(packet)
  if type(packet) ~= "string" or #packet < M.HEADER_SIZE then return nil, "shorter than a header" end
  local id, flags, qd, an, ns, ar = sunpack(">I2I2I2I2I2I2", packet)
  local msg = {
    id = id, qr = flags & 0x8000 ~= 0, opcode = (flags >> 11) & 0xF, aa = flags & 0x0400 ~= 0,
    tc = flags & 0x0200 ~= 0, rd = flags & 0x0100 ~= 0, ra = flags & 0x0080 ~= 0, ad = flags & 0x0020 ~= 0,
    cd = flags & 0x0010 ~= 0, rcode = flags & 0xF,
    questions = {}, answers = {}, authority = {}, additional = {},
  }
  local pos = M.HEADER_SIZE + 1
  for _ = 1, qd do
    local name, p = read_name(packet, pos)
    if not name then return nil, "bad question name" end
    local qtype, qclass = u16(packet, p), u16(packet, p + 2)
    if not qclass then return nil, "truncated question" end
    msg.questions[#msg.questions + 1] = { name = name, type = qtype, class = qclass }
    pos = p + 4
  end
  for _, section in ipairs({ { "answers", an }, { "authority", ns }, { "additional", ar } }) do
    local list = msg[section[1]]
    for _ = 1, section[2] do
      local rr, p = read_record(packet, pos)
      if not rr then return nil, "bad record in " .. section[1] end
      pos = p
      if rr.type == M.TYPE.OPT and section[1] == "additional" then
        if msg.edns or rr.name ~= "" then return nil, "bad OPT record" end
        msg.edns = { udp_size = rr.class, ext_rcode = rr.ttl >> 24, version = (rr.ttl >> 16) & 0xFF,
          dnssec_ok = rr.ttl & 0x8000 ~= 0 }
      else
        list[#list + 1] = rr
      end
    end
  end
  if pos ~= #packet + 1 then return nil, "trailing bytes" end
  return msg
end

--- Only the header and the first question of `packet`, for answering a
-- message whose records are malformed (FORMERR): { id, opcode, rd, question }
-- or nil when even those cannot be read.
function M.parse_header(packet)
  if type(packet) ~= "string" or #packet < M.HEADER_SIZE then return nil end
  local id, flags, qd = sunpack(">I2I2I2", packet)
  local head = { id = id, qr = flags & 0x8000 ~= 0, opcode = (flags >> 11) & 0xF, rd = flags & 0x0100 ~= 0 }
  if qd >= 1 then
    local name, p = read_name(packet, M.HEADER_SIZE + 1)
    local qtype, qclass = name and u16(packet, p), name and u16(packet, p + 2)
    if qclass then head.question = { name = name, type = qtype, class = qclass } end
  end
  return head
end

-- Building --------------------------------------------------------------------------

local Writer = {}
Writer.__index = Writer

local function new_writer()
  return setmetatable({ parts = {}, size = 0, offsets = {} }, Writer)
end

function Writer:put(s)
  self.parts[#self.parts + 1] = s
  self.size = self.size + #s
end

-- Writes `name`, pointing at an earlier copy of its longest known suffix when
-- `compress`; raises on a name that cannot be encoded (build catches it).
function Writer:name(name, compress)
  local labels, err = M.labels(name)
  if not labels then error({ bad_name = name .. ": " .. err }) end
  for i = 1, #labels do
    local key = concat(labels, ".", i):lower()
    local at = compress and self.offsets[key]
    if at then
      self:put(spack(">I2", 0xC000 | at))
      return
    end
    if compress and self.size < 0x3FFF then self.offsets[key] = self.size end
    self:put(char(#labels[i]) .. labels[i])
  end
  self:put("\0")
end

local function must(v, what)
  if v == nil then error({ bad_name = "bad " .. what }) end
  return v
end

function Writer:record(rr)
  self:name(rr.name, true)
  local rtype = rr.type
  self:put(spack(">I2I2I4", rtype, rr.class or M.CLASS.IN, rr.ttl or 0))
  local data = rr.data
  if rtype == M.TYPE.A then
    self:put(spack(">I2", 4) .. must(M.ipv4_bytes(data), "A address"))
  elseif rtype == M.TYPE.AAAA then
    self:put(spack(">I2", 16) .. must(M.ipv6_bytes(data), "AAAA address"))
  elseif rtype == M.TYPE.SRV or rtype == M.TYPE.SOA or rtype == M.TYPE.CNAME or rtype == M.TYPE.NS
    or rtype == M.TYPE.PTR then
    -- RDATA with names: its length is known once written.
    local len_index = #self.parts + 1
    self:put("\0\0")
    local start = self.size
    if rtype == M.TYPE.SRV then
      self:put(spack(">I2I2I2", data.priority or 0, data.weight or 0, data.port))
      self:name(data.target, false)
    elseif rtype == M.TYPE.SOA then
      self:name(data.mname, true)
      self:name(data.rname, true)
      self:put(spack(">I4I4I4I4I4", data.serial, data.refresh, data.retry, data.expire, data.minimum))
    else
      self:name(data, true)
    end
    self.parts[len_index] = spack(">I2", self.size - start)
  elseif rtype == M.TYPE.TXT then
    local parts = {}
    for _, s in ipairs(data) do parts[#parts + 1] = char(math.min(#s, 255)) .. s:sub(1, 255) end
    local raw = concat(parts)
    self:put(spack(">I2", #raw) .. raw)
  else
    self:put(spack(">I2", #data) .. data)
  end
end

local function flags_of(msg, tc)
  return (msg.qr and 0x8000 or 0) | ((msg.opcode or 0) & 0xF) << 11 | (msg.aa and 0x0400 or 0)
    | (tc and 0x0200 or 0) | (msg.rd and 0x0100 or 0) | (msg.ra and 0x0080 or 0) | (msg.ad and 0x0020 or 0)
    | (msg.cd and 0x0010 or 0) | ((msg.rcode or 0) & 0xF)
end

local function encode(msg, with_records, tc)
  local w = new_writer()
  local answers = with_records and msg.answers or {}
  local authority = with_records and msg.authority or {}
  local additional = with_records and msg.additional or {}
  local edns = msg.edns
  w:put(spack(">I2I2I2I2I2I2", msg.id or 0, flags_of(msg, tc), #(msg.questions or {}), #answers, #authority,
    #additional + (edns and 1 or 0)))
  for _, q in ipairs(msg.questions or {}) do
    w:name(q.name, true)
    w:put(spack(">I2I2", q.type, q.class or M.CLASS.IN))
  end
  for _, list in ipairs({ answers, authority, additional }) do
    for _, rr in ipairs(list) do w:record(rr) end
  end
  if edns then
    local ttl = ((edns.ext_rcode or 0) & 0xFF) << 24 | ((edns.version or 0) & 0xFF) << 16
      | (edns.dnssec_ok and 0x8000 or 0)
    w:put("\0" .. spack(">I2I2I4I2", M.TYPE.OPT, edns.udp_size or 1232, ttl, 0))
  end
  return concat(w.parts)
end

--- The wire bytes of `msg`, or nil, reason when a name or an address in it
-- cannot be encoded. opts.max_size: when the message would be longer, only
-- its header, questions and OPT record, with the TC bit set.
function M.build(msg, opts)
  local ok, bytes = pcall(encode, msg, true, msg.tc)
  if not ok then
    if type(bytes) == "table" and bytes.bad_name then return nil, bytes.bad_name end
    error(bytes, 0)
  end
  local max = opts and opts.max_size
  if max and #bytes > max then
    ok, bytes = pcall(encode, msg, false, true)
    if not ok then return nil, type(bytes) == "table" and bytes.bad_name or tostring(bytes) end
  end
  return bytes
end

--- A question message for `name` and `qtype` (a number or a name such as
-- "AAAA"): what a client sends. opts: id, rd (default true), edns_size.
function M.query(name, qtype, opts)
  opts = opts or {}
  local msg = { id = opts.id or 0, rd = opts.rd ~= false,
    questions = { { name = name, type = tointeger(qtype) or M.TYPE[qtype], class = M.CLASS.IN } } }
  if opts.edns_size then msg.edns = { udp_size = opts.edns_size } end
  return M.build(msg)
end

return M
