local uv = require("luv")
local support = require("support")
local dns = require("prisn.net.dns")
local forward = require("prisn.net.dns.forward")
local metrics = require("prisn.metrics")

local wire = dns.wire
local T, R = wire.TYPE, wire.RCODE

local run_until = support.run_until

local ZONE = {
  ["default.prisn.local"] = {},
  ["web.default.prisn.local"] = {
    { type = T.A, data = "127.0.0.1" },
    { type = T.SRV, data = { priority = 0, weight = 0, port = 8080, target = "web.default.prisn.local" } },
  },
  ["idle.default.prisn.local"] = {},
}

local function lookup(name) return ZONE[name] end

local function ask(r, name, qtype, opts)
  local msg = assert(wire.parse(assert(wire.query(name, qtype, opts))))
  return r:resolve(msg)
end

describe("prisn.net.dns", function()
  local r
  before_each(function() r = dns.new({ lookup = lookup }) end)

  describe("resolve", function()
    it("answers A with the AA bit and a short TTL, the question's case kept", function()
      local reply = ask(r, "Web.Default.prisn.local", "A", { id = 5 })
      assert.are.equal(R.NOERROR, reply.rcode)
      assert.is_true(reply.aa and reply.qr)
      assert.are.equal(5, reply.id)
      assert.are.same({ { name = "Web.Default.prisn.local", type = T.A, ttl = dns.DEFAULT_TTL, data = "127.0.0.1" } },
        reply.answers)
    end)

    it("answers SRV with the target's address as an additional record", function()
      local reply = ask(r, "web.default.prisn.local", "SRV")
      assert.are.equal(8080, reply.answers[1].data.port)
      assert.are.same({ { name = "web.default.prisn.local", type = T.A, ttl = dns.DEFAULT_TTL, data = "127.0.0.1" } },
        reply.additional)
    end)

    it("answers NXDOMAIN with the SOA and the negative TTL for an unknown name", function()
      local reply = ask(r, "nope.default.prisn.local", "A")
      assert.are.equal(R.NXDOMAIN, reply.rcode)
      assert.are.equal(0, #reply.answers)
      assert.are.equal(T.SOA, reply.authority[1].type)
      assert.are.equal(dns.NEGATIVE_TTL, reply.authority[1].ttl)
      assert.are.equal(dns.NEGATIVE_TTL, reply.authority[1].data.minimum)
    end)

    it("answers NODATA (NOERROR, no answer, the SOA) for a name without records of the type", function()
      for _, case in ipairs({ { "idle.default.prisn.local", "A" }, { "web.default.prisn.local", "AAAA" },
        { "default.prisn.local", "A" }, { "prisn.local", "A" } }) do
        local reply = ask(r, case[1], case[2])
        assert.are.equal(R.NOERROR, reply.rcode, case[1])
        assert.are.equal(0, #reply.answers, case[1])
        assert.are.equal(T.SOA, reply.authority[1].type, case[1])
      end
      assert.are.equal(T.SOA, ask(r, "prisn.local", "SOA").answers[1].type)
    end)

    it("refuses names outside the zone unless it forwards, and other classes", function()
      assert.are.equal(R.REFUSED, ask(r, "example.com", "A").rcode)
      assert.are.equal(R.REFUSED, ask(r, "notprisn.local", "A").rcode)
      local chaos = assert(wire.parse(assert(wire.build({ questions = { { name = "version.bind", type = 16,
        class = wire.CLASS.CH } } }))))
      assert.are.equal(R.REFUSED, r:resolve(chaos).rcode)
      local f = dns.new({ lookup = lookup, forward = { { host = "127.0.0.1", port = 9 } } })
      local reply, why = ask(f, "example.com", "A")
      assert.is_nil(reply)
      assert.are.equal("forward", why)
      assert.is_true(ask(f, "web.default.prisn.local", "A").ra)
      f:close()
    end)

    it("answers NOTIMP, FORMERR and BADVERS", function()
      local msg = assert(wire.parse(assert(wire.query("web.default.prisn.local", "A"))))
      msg.opcode = 2
      assert.are.equal(R.NOTIMP, r:resolve(msg).rcode)
      msg.opcode, msg.questions = 0, {}
      assert.are.equal(R.FORMERR, r:resolve(msg).rcode)
      local v1 = assert(wire.parse(assert(wire.build({ questions = { { name = "a.prisn.local", type = T.A } },
        edns = { udp_size = 1232, version = 1 } }))))
      local reply = r:resolve(v1)
      assert.are.equal(1, reply.edns.ext_rcode)
      assert.are.equal(0, #reply.answers)
    end)
  end)

  describe("allow", function()
    it("limits sources other than loopback to their bucket, and refills it", function()
      local now = 0
      local limited = dns.new({ lookup = lookup, rate = { per_second = 10, burst = 3, sources = 2 },
        clock = function() return now end })
      for _ = 1, 3 do assert.is_true(limited:allow("192.0.2.1")) end
      assert.is_false(limited:allow("192.0.2.1"))
      assert.is_true(limited:allow("192.0.2.2"), "another source has its own bucket")
      for _ = 1, 100 do assert.is_true(limited:allow("127.0.0.1")) end
      now = 0.1
      assert.is_true(limited:allow("192.0.2.1"))
      assert.is_false(limited:allow("192.0.2.1"))
      assert.is_true(limited:allow("192.0.2.3"), "a full table starts over")
      assert.are.equal(1, limited.bucket_count)
    end)
  end)

  describe("on the wire", function()
    local function udp_ask(port, packet)
      local client = uv.new_udp()
      assert(client:bind("127.0.0.1", 0))
      local got
      client:recv_start(function(_, data) if data then got = data end end)
      client:send(packet, "127.0.0.1", port, function() end)
      run_until(function() return got ~= nil end, 1000)
      client:close()
      return got
    end

    it("answers over UDP and TCP, truncates over 512 bytes, drops garbage, counts by type and rcode", function()
      local many = {}
      for i = 1, 40 do many[i] = { type = T.A, data = "10.0.0." .. i } end
      local reg = metrics.registry()
      local big = dns.new({ lookup = function(name)
        if name == "big.prisn.local" then return many end
        return lookup(name)
      end, metrics = reg })
      local port = assert(big:listen("127.0.0.1", 0))
      local small = assert(wire.parse(assert(udp_ask(port, wire.query("web.default.prisn.local", "A", { id = 1 })))))
      assert.are.equal("127.0.0.1", small.answers[1].data)
      local cut = assert(wire.parse(assert(udp_ask(port, wire.query("big.prisn.local", "A", { id = 2 })))))
      assert.is_true(cut.tc)
      assert.are.equal(0, #cut.answers)
      local edns = assert(wire.parse(assert(udp_ask(port, wire.query("big.prisn.local", "A",
        { id = 3, edns_size = 4096 })))))
      assert.is_false(edns.tc)
      assert.are.equal(40, #edns.answers)
      assert.are.equal(dns.MAX_UDP_SIZE, edns.edns.udp_size)
      assert.is_nil(udp_ask(port, "\1\2\3"))

      local tcp = uv.new_tcp()
      local buffer, connected = "", false
      tcp:connect("127.0.0.1", port, function(err)
        assert(not err, err)
        connected = true
        tcp:read_start(function(_, chunk) if chunk then buffer = buffer .. chunk end end)
        -- two queries in one write, the second split from its length
        local q1, q2 = wire.query("big.prisn.local", "A", { id = 4 }), wire.query("nope.prisn.local", "A", { id = 5 })
        tcp:write(string.pack(">s2", q1) .. string.pack(">s2", q2))
      end)
      local function messages()
        local list, rest = {}, buffer
        while #rest >= 2 do
          local len = string.unpack(">I2", rest)
          if #rest < len + 2 then break end
          list[#list + 1] = assert(wire.parse(rest:sub(3, len + 2)))
          rest = rest:sub(len + 3)
        end
        return list
      end
      assert.is_true(run_until(function() return #messages() == 2 end, 2000))
      assert.is_true(connected)
      local got = messages()
      assert.are.equal(40, #got[1].answers)
      assert.are.equal(R.NXDOMAIN, got[2].rcode)
      tcp:close()
      big:close()
      local text = reg:render()
      assert.truthy(text:find('prisn_dns_queries_total{type="A",rcode="NOERROR"} 4', 1, true), text)
      assert.truthy(text:find('prisn_dns_queries_total{type="A",rcode="NXDOMAIN"} 1', 1, true), text)
      assert.truthy(text:find('prisn_dns_dropped_total{reason="malformed"} 1', 1, true), text)
    end)

    it("forwards names outside the zone to the upstream and puts the client's id back", function()
      local upstream = uv.new_udp()
      assert(upstream:bind("127.0.0.1", 0))
      local up_port = upstream:getsockname().port
      local seen_id
      upstream:recv_start(function(_, data, addr)
        if not data then return end
        local msg = assert(wire.parse(data))
        seen_id = msg.id
        local reply = { id = msg.id, qr = true, rd = true, ra = true, questions = msg.questions,
          answers = { { name = msg.questions[1].name, type = T.A, ttl = 60, data = "192.0.2.7" } } }
        upstream:send(assert(wire.build(reply)), addr.ip, addr.port, function() end)
      end)
      local f = dns.new({ lookup = lookup, forward = { { host = "127.0.0.1", port = up_port } } })
      local port = assert(f:listen("127.0.0.1", 0))
      local reply = assert(wire.parse(assert(udp_ask(port, wire.query("example.com", "A", { id = 4242 })))))
      assert.are.equal(4242, reply.id)
      assert.are.equal("192.0.2.7", reply.answers[1].data)
      assert.is_number(seen_id)
      -- an upstream that never answers: SERVFAIL after the timeout
      upstream:recv_stop()
      f.forwarder.timeout_ms = 50
      local fail = assert(wire.parse(assert(udp_ask(port, wire.query("example.org", "A", { id = 7 })))))
      assert.are.equal(R.SERVFAIL, fail.rcode)
      assert.are.equal(7, fail.id)
      f:close()
      upstream:close()
      uv.run("nowait")
    end)
  end)

  describe("forward.resolvers", function()
    it("reads nameservers in order, without prisn's own address and duplicates", function()
      local text = "# comment\nsearch example.com\nnameserver 10.0.0.53\nnameserver 127.0.0.153\n"
        .. "nameserver ::1\nnameserver 10.0.0.53\noptions edns0\n"
      assert.are.same({ { host = "10.0.0.53", port = 53 }, { host = "::1", port = 53 } },
        forward.resolvers(text, { ["127.0.0.153"] = true }))
      assert.are.same({}, forward.resolvers(nil))
    end)
  end)
end)
