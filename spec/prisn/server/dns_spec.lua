local server_dns = require("prisn.server.dns")
local T = require("prisn.net.dns.wire").TYPE

local ZONE = "prisn.local"

local function deployment(fields)
  local d = { ns = "default", name = "web", row = { port = 8080 }, instances = {} }
  for k, v in pairs(fields or {}) do d[k] = v end
  return d
end

local function inst(number, port, fields)
  local i = { number = number, port = port, pid = 1000 + number, healthy = true }
  for k, v in pairs(fields or {}) do i[k] = v end
  return i
end

describe("prisn.server.dns", function()
  describe("records", function()
    it("gives the deployment's address and port, and each ready instance its own", function()
      local d = deployment({ instances = { inst(1, 40001), inst(2, 40002) } })
      local r = server_dns.records(d, ZONE)
      local srv = { type = T.SRV, data = { priority = 0, weight = 0, port = 8080, target = "web.default.prisn.local" } }
      assert.are.same({ { type = T.A, data = "127.0.0.1" }, srv }, r["web.default.prisn.local"])
      assert.are.same({ srv }, r["_8080._tcp.web.default.prisn.local"])
      assert.are.same({ { type = T.A, data = "127.0.0.1" }, { type = T.SRV, data = { priority = 0, weight = 0,
        port = 40002, target = "2.web.default.prisn.local" } } }, r["2.web.default.prisn.local"])
    end)

    it("counts only ready instances: not unhealthy, exited or draining ones", function()
      local d = deployment({ instances = { inst(1, 40001, { healthy = false }), inst(2, 40002, { pid = false }),
        inst(3, 40003, { removing = true }) } })
      local r = server_dns.records(d, ZONE)
      assert.are.same({}, r["web.default.prisn.local"], "the name stays, with no records (NODATA)")
      assert.is_nil(r["1.web.default.prisn.local"])
      assert.is_nil(r["3.web.default.prisn.local"])
    end)

    it("lists each instance's own port as the SRV of a deployment without a port, and no A", function()
      local d = deployment({ row = {}, instances = { inst(1, 40001) } })
      local r = server_dns.records(d, ZONE)
      assert.are.same({ { type = T.SRV, data = { priority = 0, weight = 0, port = 40001,
        target = "1.web.default.prisn.local" } } }, r["web.default.prisn.local"])
    end)
  end)

  describe("service_addresses", function()
    it("answers loopback for a wildcard port unless the DNS listens on another address", function()
      assert.are.same({ { type = T.A, data = "127.0.0.1" } }, server_dns.service_addresses(nil, "127.0.0.1"))
      assert.are.same({ { type = T.A, data = "127.0.0.1" } }, server_dns.service_addresses("0.0.0.0", "0.0.0.0"))
      assert.are.same({ { type = T.A, data = "192.0.2.5" } }, server_dns.service_addresses("0.0.0.0", "192.0.2.5"))
      assert.are.same({ { type = T.A, data = "127.0.0.1" }, { type = T.AAAA, data = "::1" } },
        server_dns.service_addresses("::", "127.0.0.1"))
      assert.are.same({ { type = T.A, data = "10.1.2.3" } }, server_dns.service_addresses("10.1.2.3", "127.0.0.1"))
      assert.are.same({ { type = T.AAAA, data = "fd00::1" } }, server_dns.service_addresses("fd00::1", "127.0.0.1"))
    end)
  end)

  describe("feeder", function()
    it("keeps names per deployment, the names above them as existing, and forgets a deleted one", function()
      local f = server_dns.feeder(ZONE, "127.0.0.1")
      local d = deployment({ instances = { inst(1, 40001) } })
      f:update(d)
      assert.are.equal(2, #f:lookup("web.default.prisn.local"))
      assert.are.same({}, f:lookup("default.prisn.local"))
      assert.are.same({}, f:lookup("_tcp.web.default.prisn.local"))
      assert.is_nil(f:lookup("other.default.prisn.local"))
      local other = deployment({ name = "api", instances = {} })
      f:update(other)
      d.instances[1].healthy = false
      f:update(d)
      assert.is_nil(f:lookup("1.web.default.prisn.local"))
      d.deleted = true
      f:update(d)
      assert.is_nil(f:lookup("web.default.prisn.local"))
      assert.are.same({}, f:lookup("default.prisn.local"), "api is still there")
      other.deleted = true
      f:update(other)
      assert.is_nil(f:lookup("default.prisn.local"))
      assert.are.same({}, f.zone.parents)
    end)
  end)

  describe("workload_resolv_conf", function()
    it("names prisn's DNS first, then at most two of the host's, and keeps search and options", function()
      local text = server_dns.workload_resolv_conf("127.0.0.153", "search corp.example\nnameserver 10.0.0.1\n"
        .. "nameserver 127.0.0.153\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions edns0 trust-ad\n")
      local lines = {}
      for line in text:gmatch("[^\n]+") do
        if not line:match("^#") then lines[#lines + 1] = line end
      end
      assert.are.same({ "nameserver 127.0.0.153", "nameserver 10.0.0.1", "nameserver 10.0.0.2",
        "search corp.example", "options edns0 trust-ad" }, lines)
    end)
  end)

  describe("parse_address and upstreams", function()
    it("reads HOST:PORT and [V6]:PORT, nothing else", function()
      assert.are.same({ "127.0.0.1", 53 }, { server_dns.parse_address("127.0.0.1:53") })
      assert.are.same({ "::1", 5300 }, { server_dns.parse_address("[::1]:5300") })
      for _, bad in ipairs({ "localhost:53", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "300.1.1.1:53", "off" }) do
        assert.is_nil(server_dns.parse_address(bad), bad)
      end
    end)

    it("tries port 53 on a loopback address of its own first as root", function()
      assert.are.same({ "127.0.0.153:53", "127.0.0.1:7453" }, server_dns.default_addresses(0))
      assert.are.same({ "127.0.0.1:7453" }, server_dns.default_addresses(1000))
    end)

    it("leaves its own address out of the host's resolvers when it answers on port 53", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write("nameserver 127.0.0.153\nnameserver 10.0.0.53\n")
      f:close()
      assert.are.same({ { host = "10.0.0.53", port = 53 } }, server_dns.upstreams(path, "127.0.0.153", 53))
      assert.are.equal(2, #server_dns.upstreams(path, "127.0.0.153", 7453))
      os.remove(path)
    end)
  end)
end)
