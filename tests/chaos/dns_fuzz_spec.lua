-- A DNS fuzzer against the real server's responder, over UDP and TCP.
--
-- Seeds: queries for names of the zone and outside it (A, AAAA, SRV, SOA,
-- ANY; with and without EDNS0), and answers with compressed names. Each
-- packet is a seed with one to three mutations (bit flips, bytes replaced,
-- inserted or cut, truncation, counts raised, compression pointers written
-- anywhere, a response bit set) or plain random bytes; a deterministic PRNG
-- (PRISN_FUZZ_SEED, default 15) picks them. Over TCP, the same packets with
-- lengths that lie, split across writes, and connections closed halfway.
--
-- Asserted: every answer that comes back parses and carries the id of the
-- packet it answers; a valid query is answered after every batch (the
-- responder keeps answering); no ERROR in the server's log; the server alive
-- at the end. 4,000 packets in the normal suite, 40,000 with
-- PRISN_CHAOS_LONG=1 (PRISN_FUZZ_COUNT overrides).
local h = require("e2e.helper")
local wire = require("prisn.net.dns.wire")
local uv = require("luv")

local LONG = os.getenv("PRISN_CHAOS_LONG") == "1"
local COUNT = math.tointeger(tonumber(os.getenv("PRISN_FUZZ_COUNT") or "")) or (LONG and 40000 or 4000)
local SEED = math.tointeger(tonumber(os.getenv("PRISN_FUZZ_SEED") or "")) or 15
local BATCH = 200

local function say(fmt, ...)
  io.stdout:write(string.format("[dns fuzz] " .. fmt .. "\n", ...))
  io.stdout:flush()
end

-- xorshift64: the same packets for the same seed.
local function prng(seed)
  local s = seed * 0x9E3779B97F4A7C15 + 1
  return function(n)
    s = s ~ (s << 13)
    s = s ~ (s >> 7)
    s = s ~ (s << 17)
    return (s % n + n) % n + 1
  end
end

local function seeds()
  local list = {}
  for _, name in ipairs({ "web.default.prisn.local", "1.web.default.prisn.local", "prisn.local",
    "_80._tcp.web.default.prisn.local", "nothere.prisn.local", "example.com" }) do
    for _, qtype in ipairs({ "A", "AAAA", "SRV", "SOA", "ANY" }) do
      list[#list + 1] = assert(wire.query(name, qtype, { id = 1 }))
      list[#list + 1] = assert(wire.query(name, qtype, { id = 2, edns_size = 4096 }))
    end
  end
  list[#list + 1] = assert(wire.build({ id = 3, questions = { { name = "a.b.prisn.local", type = 1 } },
    answers = { { name = "a.b.prisn.local", type = 1, ttl = 1, data = "1.2.3.4" },
      { name = "x.a.b.prisn.local", type = 5, ttl = 1, data = "a.b.prisn.local" } } }))
  return list
end

local function mutate(rand, packet)
  local n = #packet
  local kind = n >= 14 and rand(9) or (n > 0 and rand(4) or 9)
  if kind == 1 then -- bit flip
    local i = rand(n)
    return packet:sub(1, i - 1) .. string.char(packet:byte(i) ~ (1 << (rand(8) - 1))) .. packet:sub(i + 1)
  elseif kind == 2 then -- a byte replaced
    local i = rand(n)
    return packet:sub(1, i - 1) .. string.char(rand(256) - 1) .. packet:sub(i + 1)
  elseif kind == 3 then -- bytes inserted
    local i = rand(n + 1)
    local extra = {}
    for j = 1, rand(8) do extra[j] = string.char(rand(256) - 1) end
    return packet:sub(1, i - 1) .. table.concat(extra) .. packet:sub(i)
  elseif kind == 4 then -- cut
    return packet:sub(1, rand(n) - 1)
  elseif kind == 5 then -- a count raised
    local at = 5 + 2 * (rand(4) - 1)
    return packet:sub(1, at - 1) .. string.pack(">I2", rand(65536) - 1) .. packet:sub(at + 2)
  elseif kind == 6 then -- a compression pointer anywhere
    local i = 12 + rand(math.max(1, n - 12))
    return packet:sub(1, i - 1) .. string.pack(">I2", 0xC000 | (rand(n + 4) - 1)) .. packet:sub(i + 2)
  elseif kind == 7 then -- a response, or another opcode
    return packet:sub(1, 2) .. string.char(packet:byte(3) | (rand(2) == 1 and 0x80 or 0x28)) .. packet:sub(4)
  elseif kind == 8 then -- a label length past the end
    local i = 13
    return packet:sub(1, i - 1) .. string.char(rand(64) - 1) .. packet:sub(i + 1)
  end
  local bytes = {}
  for j = 1, rand(600) do bytes[j] = string.char(rand(256) - 1) end
  return table.concat(bytes)
end

local free_port = h.free_udp_tcp_port

describe("chaos: DNS fuzzing", function()
  local env
  local _, ok = h.cli(function() return env end)

  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("drops what is malformed, answers the rest, and keeps answering", function()
    env = h.env()
    local port = free_port()
    ok({ "server", "start", "-q", "--dns", "127.0.0.1:" .. port, "--dns-forward", "off" })
    local info = require("cjson").decode(h.read(env.PRISN_HOME .. "/server.json"))
    local rand = prng(SEED)
    local list = seeds()
    local udp = uv.new_udp()
    assert(udp:bind("127.0.0.1", 0))
    local answers, bad_answers = 0, {}
    local probe_answered = false
    udp:recv_start(function(_, data)
      if not data then return end
      local msg = wire.parse(data)
      if not msg then
        bad_answers[#bad_answers + 1] = data
      elseif msg.id == 0xBEEF then
        probe_answered = true
      else
        answers = answers + 1
      end
    end)
    local function probe()
      probe_answered = false
      udp:send(assert(wire.query("prisn.local", "SOA", { id = 0xBEEF })), "127.0.0.1", port, function() end)
      return h.wait_for(function() return probe_answered end, 3000)
    end

    local sent = 0
    while sent < COUNT do
      for _ = 1, BATCH do
        local packet = list[rand(#list)]
        for _ = 1, rand(3) do packet = mutate(rand, packet) end
        -- (a mutated packet that happens to carry the probe's id is left out)
        if #packet < 2 or string.unpack(">I2", packet) ~= 0xBEEF then
          udp:send(packet, "127.0.0.1", port, function() end)
        end
        sent = sent + 1
      end
      assert.is_true(probe(), "no answer to a valid query after " .. sent .. " packets")
    end

    -- TCP: lying lengths, split writes, connections closed halfway.
    local tcp_done = 0
    for i = 1, 100 do
      local packet = list[rand(#list)]
      for _ = 1, rand(2) do packet = mutate(rand, packet) end
      local framed = string.pack(">I2", rand(4) == 1 and rand(65536) - 1 or #packet) .. packet
      local c = uv.new_tcp()
      c:connect("127.0.0.1", port, function(err)
        if err then c:close(); tcp_done = tcp_done + 1; return end
        local cut = rand(#framed)
        c:write(framed:sub(1, cut))
        c:write(framed:sub(cut + 1), function()
          if i % 3 == 0 then c:close(); tcp_done = tcp_done + 1 return end
          c:read_start(function() end)
          local t = uv.new_timer()
          t:start(50, 0, function() t:close(); c:close(); tcp_done = tcp_done + 1 end)
        end)
      end)
    end
    assert.is_true(h.wait_for(function() return tcp_done == 100 end, 20000))
    assert.is_true(probe(), "no answer over UDP after the TCP round")
    -- and one real TCP query
    local got
    local c = uv.new_tcp()
    c:connect("127.0.0.1", port, function(err)
      assert(not err, err)
      c:read_start(function(_, chunk) if chunk then got = (got or "") .. chunk end end)
      c:write(string.pack(">s2", assert(wire.query("prisn.local", "SOA", { id = 9 }))))
    end)
    assert.is_true(h.wait_for(function() return got and #got >= 2 and #got >= string.unpack(">I2", got) + 2 end, 3000))
    c:close()
    udp:close()
    uv.run("nowait")
    say("%d UDP packets sent, %d answered, %d answers that did not parse", sent, answers, #bad_answers)
    assert.are.equal(0, #bad_answers)
    assert.is_true(answers > 0, "some mutated packets are still valid queries")
    assert.is_true(h.alive(math.tointeger(info.pid)))
    local log = h.read(env.PRISN_HOME .. "/server.log")
    assert.is_nil(log:find(" ERROR ", 1, true), log)
  end)
end)
