local wire = require("prisn.net.dns.wire")

local T, C = wire.TYPE, wire.CLASS

-- A packet from hex digits (spaces ignored).
local function hex(s)
  return (s:gsub("%s", ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

local function label(s) return string.char(#s) .. s end

describe("prisn.net.dns.wire", function()
  describe("parse", function()
    it("reads the query dig sends for example.com A", function()
      local packet = hex("1234 0120 0001 0000 0000 0000") .. label("example") .. label("com") .. "\0"
        .. hex("0001 0001")
      local msg = assert(wire.parse(packet))
      assert.are.equal(0x1234, msg.id)
      assert.is_false(msg.qr)
      assert.is_true(msg.rd)
      assert.is_true(msg.ad)
      assert.are.same({ { name = "example.com", type = T.A, class = C.IN } }, msg.questions)
      assert.is_nil(msg.edns)
    end)

    it("follows the compression pointers of RFC 1035 4.1.4 (F.ISI.ARPA, FOO.F.ISI.ARPA, ARPA)", function()
      -- Three answers whose owner names are laid out as in the RFC's example:
      -- F.ISI.ARPA in full at offset 12, FOO + pointer to it, and a pointer to ARPA.
      local head = hex("0001 8000 0000 0003 0000 0000")
      local rest = hex("0001 0001 0000 0e10 0004 0a00 0001")
      local first = label("F") .. label("ISI") .. label("ARPA") .. "\0" .. rest
      local second = label("FOO") .. hex("c00c") .. rest
      local third = hex("c012") .. rest -- offset 12 + 2 + 4 = 18: "ARPA"
      local msg = assert(wire.parse(head .. first .. second .. third))
      assert.are.equal("F.ISI.ARPA", msg.answers[1].name)
      assert.are.equal("FOO.F.ISI.ARPA", msg.answers[2].name)
      assert.are.equal("ARPA", msg.answers[3].name)
      assert.are.equal("10.0.0.1", msg.answers[3].data)
      assert.are.equal(3600, msg.answers[1].ttl)
    end)

    it("refuses pointers that loop or point forward", function()
      local head = hex("0001 0000 0001 0000 0000 0000")
      assert.is_nil(wire.parse(head .. hex("c00c") .. hex("0001 0001"))) -- to itself
      assert.is_nil(wire.parse(head .. label("a") .. hex("c00c") .. hex("0001 0001"))) -- into its own labels
      assert.is_nil(wire.parse(head .. hex("c020") .. hex("0001 0001") .. string.rep("\0", 20))) -- forward
      -- two names pointing at each other
      local loop = hex("0001 8000 0001 0001 0000 0000") .. label("x") .. hex("c012") .. hex("0001 0001")
        .. hex("c00c 0001 0001 0000 0001 0004 01020304")
      assert.is_nil(wire.parse(loop))
    end)

    it("returns nil for every truncation of a valid answer, never raising", function()
      local full = assert(wire.build({ id = 7, qr = true, aa = true,
        questions = { { name = "web.default.prisn.local", type = T.SRV, class = C.IN } },
        answers = { { name = "web.default.prisn.local", type = T.SRV, ttl = 5,
          data = { priority = 0, weight = 0, port = 8080, target = "web.default.prisn.local" } } },
        authority = { { name = "prisn.local", type = T.SOA, ttl = 5, data = { mname = "ns.prisn.local",
          rname = "hostmaster.prisn.local", serial = 1, refresh = 60, retry = 10, expire = 600, minimum = 2 } } },
        additional = { { name = "web.default.prisn.local", type = T.A, ttl = 5, data = "127.0.0.1" } },
        edns = { udp_size = 1232 } }))
      assert.is_table(wire.parse(full))
      for n = 0, #full - 1 do
        local ok, msg = pcall(wire.parse, full:sub(1, n))
        assert.is_true(ok)
        assert.is_nil(msg, "a packet cut at " .. n .. " bytes parsed")
      end
      assert.is_nil(wire.parse(full .. "\0"), "trailing bytes")
    end)

    it("refuses labels over 63 bytes, names over 255 and the reserved label types", function()
      local head = hex("0001 0000 0001 0000 0000 0000")
      local q = hex("0001 0001")
      assert.is_table(wire.parse(head .. label(string.rep("a", 63)) .. "\0" .. q))
      assert.is_nil(wire.parse(head .. string.char(64) .. string.rep("a", 64) .. "\0" .. q))
      assert.is_nil(wire.parse(head .. string.char(0x80) .. "\0" .. q))
      local long = string.rep(label(string.rep("a", 62)), 4) .. "\0" -- 4 * 63 + 1 = 253: fits
      assert.is_table(wire.parse(head .. long .. q))
      local too_long = string.rep(label(string.rep("a", 62)), 4) .. label("bb") .. "\0" -- 256
      assert.is_nil(wire.parse(head .. too_long .. q))
    end)

    it("reads the OPT record as edns and refuses two of them", function()
      local q = assert(wire.query("a.prisn.local", "A", { id = 9, edns_size = 4096 }))
      local msg = assert(wire.parse(q))
      assert.are.same({ udp_size = 4096, version = 0, ext_rcode = 0, dnssec_ok = false }, msg.edns)
      assert.are.same({}, msg.additional)
      local two = q:sub(1, 11) .. "\2" .. q:sub(13) .. q:sub(-11)
      assert.is_nil(wire.parse(two))
    end)

    it("keeps bytes that are not printable as \\DDD and builds them back", function()
      local head = hex("0001 0000 0001 0000 0000 0000")
      local packet = head .. label("a.b") .. label("C\0") .. "\0" .. hex("0001 0001")
      local msg = assert(wire.parse(packet))
      assert.are.equal("a\\046b.C\\000", msg.questions[1].name)
      assert.are.equal(packet, wire.build(msg))
    end)

    it("parse_header reads the id and question of a message whose records are broken", function()
      local q = assert(wire.query("x.prisn.local", "AAAA", { id = 77 }))
      local broken = q:sub(1, 7) .. "\1" .. q:sub(9) -- an answer count with no answer
      assert.is_nil(wire.parse(broken))
      local head = assert(wire.parse_header(broken))
      assert.are.equal(77, head.id)
      assert.are.same({ name = "x.prisn.local", type = T.AAAA, class = C.IN }, head.question)
      assert.is_nil(wire.parse_header("short"))
    end)
  end)

  describe("build", function()
    it("round-trips A, AAAA, SRV, SOA and TXT records", function()
      local msg = { id = 1, qr = true, aa = true, rcode = 3,
        questions = { { name = "x.prisn.local", type = T.ANY, class = C.IN } },
        answers = {
          { name = "x.prisn.local", type = T.A, class = C.IN, ttl = 5, data = "127.0.0.1" },
          { name = "x.prisn.local", type = T.AAAA, class = C.IN, ttl = 5, data = "fd00::2:0:0:3" },
          { name = "x.prisn.local", type = T.AAAA, class = C.IN, ttl = 5, data = "::1" },
          { name = "_80._tcp.x.prisn.local", type = T.SRV, class = C.IN, ttl = 5,
            data = { priority = 1, weight = 2, port = 80, target = "x.prisn.local" } },
          { name = "x.prisn.local", type = T.TXT, class = C.IN, ttl = 5, data = { "hello", "" } },
        },
        authority = { { name = "prisn.local", type = T.SOA, class = C.IN, ttl = 2, data = { mname = "ns.prisn.local",
          rname = "hostmaster.prisn.local", serial = 42, refresh = 60, retry = 10, expire = 600, minimum = 2 } } },
        additional = {} }
      local back = assert(wire.parse(assert(wire.build(msg))))
      assert.are.same(msg.answers, back.answers)
      assert.are.same(msg.authority, back.authority)
      assert.are.equal(3, back.rcode)
      assert.is_true(back.aa and back.qr)
    end)

    it("compresses repeated names but not SRV targets", function()
      local rr = { name = "web.default.prisn.local", type = T.A, ttl = 5, data = "127.0.0.1" }
      local one = #assert(wire.build({ questions = { { name = rr.name, type = T.A } }, answers = { rr } }))
      local two = #assert(wire.build({ questions = { { name = rr.name, type = T.A } }, answers = { rr, rr } }))
      assert.are.equal(2 + 10 + 4, two - one) -- a pointer, the fixed fields, the address
      local srv = assert(wire.build({ answers = { { name = "a.prisn.local", type = T.SRV, ttl = 5,
        data = { port = 1, target = "a.prisn.local" } } } }))
      assert.truthy(srv:find(label("a") .. label("prisn") .. label("local") .. "\0", 30, true),
        "the SRV target is written in full")
    end)

    it("sets TC and leaves the records out when the message exceeds max_size", function()
      local answers = {}
      for i = 1, 40 do
        answers[i] = { name = "big.prisn.local", type = T.A, ttl = 5, data = "10.0.0." .. i }
      end
      local msg = { id = 3, qr = true, questions = { { name = "big.prisn.local", type = T.A } }, answers = answers,
        edns = { udp_size = 512 } }
      local full = assert(wire.build(msg))
      assert.is_true(#full > 512)
      local cut = assert(wire.build(msg, { max_size = 512 }))
      local back = assert(wire.parse(cut))
      assert.is_true(back.tc)
      assert.are.equal(0, #back.answers)
      assert.are.equal(512, back.edns.udp_size)
      assert.are.equal(1, #back.questions)
      assert.is_false(assert(wire.parse(assert(wire.build(msg, { max_size = 4096 })))).tc)
    end)

    it("refuses names and addresses it cannot encode", function()
      local long = string.rep("a", 64) .. ".prisn.local"
      assert.is_nil(wire.build({ questions = { { name = long, type = T.A } } }))
      assert.is_nil(wire.build({ questions = { { name = "a..b", type = T.A } } }))
      assert.is_nil(wire.build({ answers = { { name = "a", type = T.A, data = "300.0.0.1" } } }))
      assert.is_nil(wire.build({ answers = { { name = "a", type = T.AAAA, data = "1::2::3" } } }))
      local name = string.rep(string.rep("a", 62) .. ".", 4) .. "bb"
      assert.is_nil(wire.labels(name))
    end)
  end)

  describe("addresses", function()
    it("converts IPv6 text both ways in RFC 5952 form", function()
      for _, text in ipairs({ "::1", "::", "fd00::1", "2001:db8::1:0:0:1", "1:2:3:4:5:6:7:8" }) do
        assert.are.equal(text, wire.ipv6_text(assert(wire.ipv6_bytes(text))))
      end
      assert.are.equal("2001:db8::1", wire.ipv6_text(wire.ipv6_bytes("2001:DB8:0:0:0:0:0:1")))
      assert.is_nil(wire.ipv6_bytes("1:2:3:4:5:6:7:8:9"))
      assert.is_nil(wire.ipv6_bytes("12345::"))
      assert.is_nil(wire.ipv4_bytes("1.2.3"))
    end)
  end)
end)
