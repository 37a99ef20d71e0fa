-- DNS for prisn.local against a real server, asked with real clients (dig and
-- nslookup, package dnsutils): a deployment's A and SRV records, the
-- per-instance names (whose port answers HTTP), TCP, EDNS0, a deployment
-- scaled to 0 (NODATA with the SOA) and back, deleted (NXDOMAIN), a name
-- outside the zone (REFUSED with forwarding off), --dns off and bad --dns
-- values, the metrics; Python's socket.getaddrinfo inside workloads at
-- isolation 1 and 2 (root only: their resolv.conf needs the DNS on port 53).
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

local APP = [[
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("instance %s\n" % os.environ["PRISN_INSTANCE"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
]]

local free_port = h.free_udp_tcp_port

local function which(name)
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    if uv.fs_access(dir .. "/" .. name, "X") then return dir .. "/" .. name end
  end
end

local function http_get(port)
  local r = h.run("/usr/bin/curl", { "-s", "--max-time", "5", "http://127.0.0.1:" .. port .. "/" },
    { env = { PATH = "/usr/bin:/bin" } })
  return r.code == 0 and r.stdout or nil
end

-- A service resolving NAME with getaddrinfo once a second, printing what it got.
local CLIENT = [[
import socket, sys, time
while True:
    try:
        addr = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        print("resolved", addr, flush=True)
    except Exception as e:
        print("failed", e, flush=True)
    time.sleep(0.5)
]]

describe("e2e: DNS for prisn.local", function()
  local env, dns_port, app_port, dir
  local prisn, ok, json = h.cli(function() return env end)
  local dig_bin, nslookup_bin = which("dig"), which("nslookup")

  -- dig against the server's DNS: its whole output.
  local function dig(...)
    local args = { "@127.0.0.1", "-p", tostring(dns_port), "+time=2", "+tries=1" }
    for _, a in ipairs({ ... }) do args[#args + 1] = a end
    local r = h.run(dig_bin, args, { env = { PATH = "/usr/bin:/bin" } })
    assert(r.code == 0, "dig " .. table.concat(args, " ") .. ": " .. r.stdout .. r.stderr)
    return r.stdout
  end
  local function short(...) return (dig("+short", ...):gsub("%s+$", "")) end
  local function status(name, qtype) return dig(name, qtype or "A"):match("status: (%u+)") end

  setup(function()
    assert(dig_bin and nslookup_bin, "dig and nslookup are missing: install dnsutils (contrib/bootstrap.sh test)")
  end)

  before_each(function()
    env = h.env()
    dns_port, app_port = free_port(), free_port()
    dir = h.tempdir("prisn-dns")
    h.write(dir .. "/app.py", APP)
    ok({ "server", "start", "-q", "--dns", "127.0.0.1:" .. dns_port, "--dns-forward", "off" })
  end)

  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("answers A, SRV and per-instance names of ready instances, over UDP and TCP, with nslookup too", function()
    ok({ "deploy", dir .. "/app.py", "--name", "web", "--port", tostring(app_port), "-r", "2", "--isolation", "0" })
    assert.are.equal("127.0.0.1", short("web.default.prisn.local", "A"))
    assert.are.equal("127.0.0.1", short("+tcp", "WEB.Default.prisn.local", "A"))
    local srv = string.format("0 0 %d web.default.prisn.local.", app_port)
    assert.are.equal(srv, short("web.default.prisn.local", "SRV"))
    assert.are.equal(srv, short("_" .. app_port .. "._tcp.web.default.prisn.local", "SRV"))
    local full = dig("web.default.prisn.local", "A")
    assert.matches("flags: qr aa rd;", full, 1, true)
    assert.matches("web%.default%.prisn%.local%.%s+5%s+IN%s+A%s+127%.0%.0%.1", full)
    -- each instance: its own port, which answers as that instance
    for n = 1, 2 do
      local own = short(n .. ".web.default.prisn.local", "SRV")
      local port = tonumber(own:match("^0 0 (%d+) " .. n .. "%.web%.default%.prisn%.local%.$"))
      assert(port, "SRV of instance " .. n .. ": " .. own)
      assert.are_not.equal(app_port, port)
      assert.are.equal("instance web-" .. n .. "\n", http_get(port))
      assert.are.equal("127.0.0.1", short(n .. ".web.default.prisn.local", "A"))
    end
    assert.are.equal("NXDOMAIN", status("3.web.default.prisn.local"))
    -- SRV answers bring the target's address
    assert.matches("ADDITIONAL SECTION:\nweb%.default%.prisn%.local%.%s+5%s+IN%s+A%s+127%.0%.0%.1",
      dig("web.default.prisn.local", "SRV"))
    local ns = h.run(nslookup_bin, { "-port=" .. dns_port, "web.default.prisn.local", "127.0.0.1" },
      { env = { PATH = "/usr/bin:/bin" } })
    assert.are.equal(0, ns.code, ns.stdout .. ns.stderr)
    assert.matches("Name:%s+web%.default%.prisn%.local\nAddress: 127%.0%.0%.1", ns.stdout)
  end)

  it("answers NODATA with the SOA for a deployment scaled to 0, the A again once scaled back, NXDOMAIN once "
    .. "deleted", function()
    ok({ "deploy", dir .. "/app.py", "--name", "web", "--port", tostring(app_port), "--isolation", "0" })
    assert.are.equal("127.0.0.1", short("web.default.prisn.local"))
    ok({ "scale", "web", "0" })
    assert.is_true(h.wait_for(function() return short("web.default.prisn.local") == "" end, 10000))
    local out = dig("web.default.prisn.local", "A")
    assert.matches("status: NOERROR", out, 1, true)
    assert.matches("ANSWER: 0, AUTHORITY: 1", out, 1, true)
    assert.matches("prisn%.local%.%s+2%s+IN%s+SOA%s+ns%.prisn%.local%. hostmaster%.prisn%.local%. %d+ 60 10 600 2", out)
    assert.are.equal("NXDOMAIN", status("1.web.default.prisn.local"))
    assert.are.equal("NXDOMAIN", status("nothere.default.prisn.local"))
    assert.matches("prisn%.local%.%s+2%s+IN%s+SOA", dig("nothere.default.prisn.local"))
    ok({ "scale", "web", "1" })
    assert.is_true(h.wait_for(function() return short("web.default.prisn.local") == "127.0.0.1" end, 15000))
    ok({ "delete", "deploy", "web", "--yes" })
    assert.is_true(h.wait_for(function() return status("web.default.prisn.local") == "NXDOMAIN" end, 10000))
  end)

  it("refuses names outside the zone, handles EDNS0 and counts queries in /metrics", function()
    assert.are.equal("REFUSED", status("example.com"))
    assert.are.equal("REFUSED", status("prisn.local.example.com"))
    assert.matches("; EDNS: version: 0, flags:; udp: 1232", dig("+bufsize=4096", "prisn.local", "SOA"), 1, true)
    local plain = dig("+noedns", "prisn.local", "SOA")
    assert.is_nil(plain:find("EDNS", 1, true))
    assert.matches("ANSWER: 1,", plain, 1, true)
    assert.matches("status: BADVERS", dig("+edns=1", "+noednsneg", "prisn.local", "SOA"), 1, true)
    local info = cjson.decode(h.read(env.PRISN_HOME .. "/server.json"))
    assert.are.equal("127.0.0.1:" .. dns_port, info.dns)
    local token = h.read(env.PRISN_HOME .. "/admin.token"):gsub("%s+$", "")
    local r = h.run("/usr/bin/curl", { "-s", "--cacert", env.PRISN_HOME .. "/ca.crt",
      "-H", "Authorization: Bearer " .. token, info.address .. "/metrics" },
      { env = { PATH = "/usr/bin:/bin" } })
    assert.matches('prisn_dns_queries_total{type="A",rcode="REFUSED"} 2', r.stdout, 1, true)
    assert.matches('prisn_dns_queries_total{type="SOA",rcode="NOERROR"} 2', r.stdout, 1, true)
    assert.matches("DNS for prisn.local on 127.0.0.1:" .. dns_port .. " (udp, tcp); names outside it refused",
      h.read(env.PRISN_HOME .. "/server.log"), 1, true)
  end)

  it("lets workloads at isolation 1 and 2 find names with getaddrinfo, with no setup on the host", function()
    if uv.getuid() ~= 0 then
      pending("needs root: a DNS a workload's resolv.conf can name is on port 53")
      return
    end
    h.stop_server(env)
    -- a loopback address of this test's own: other servers may hold 127.0.0.153:53
    local host = string.format("127.53.%d.%d", math.random(1, 254), math.random(1, 254))
    ok({ "server", "start", "-q", "--dns", host .. ":53" })
    local resolv = h.read(env.PRISN_HOME .. "/workload-resolv.conf")
    assert.matches("\nnameserver " .. host:gsub("%.", "%%.") .. "\n", resolv)
    h.write(dir .. "/client.py", CLIENT)
    ok({ "deploy", dir .. "/app.py", "--name", "api", "--port", tostring(app_port), "--isolation", "0" })
    for _, level in ipairs({ "1", "2" }) do
      local name = "client" .. level
      ok({ "deploy", dir .. "/client.py", "--name", name, "--isolation", level, "--no-wait", "--",
        "api.default.prisn.local" })
      local logs
      assert.is_true(h.wait_for(function()
        logs = prisn({ "logs", "deploy/" .. name, "--tail", "5" }).stdout
        return logs:find("resolved 127.0.0.1", 1, true) ~= nil
      end, 20000), "level " .. level .. ": " .. tostring(logs))
    end
    -- A server job at level 1 too: one lookup, then it ends.
    h.write(dir .. "/lookup.py", "import socket\nprint('resolved', socket.getaddrinfo('api.default.prisn.local', 80, "
      .. "socket.AF_INET)[0][4][0])\n")
    local job = json({ "run", "--detach", "-o", "json", "--isolation", "1", dir .. "/lookup.py" })
    assert.equal("resolved 127.0.0.1\n", ok({ "logs", "-f", "job/" .. job.id }).stdout)
    -- and the host's own resolv.conf is untouched
    assert.is_nil(h.read("/etc/resolv.conf"):find(host, 1, true))
  end)

  it("runs without DNS with --dns off, and says what is wrong with a bad or taken --dns", function()
    h.stop_server(env)
    ok({ "server", "start", "-q", "--dns", "off" })
    assert.is_nil(cjson.decode(h.read(env.PRISN_HOME .. "/server.json")).dns)
    assert.are.equal("off", json({ "server", "status", "-o", "json" }).dns)
    h.stop_server(env)
    local r = prisn({ "server", "start", "--dns", "localhost:53" })
    assert.are.equal(2, r.code)
    assert.matches("Error: --dns expects HOST:PORT or off, got 'localhost:53'", r.stderr, 1, true)
    assert.matches("Hint: ", r.stderr, 1, true)
    r = prisn({ "server", "start", "--dns-forward", "maybe" })
    assert.are.equal(2, r.code)
    -- a port another process holds: the server does not start, and says why
    local busy = uv.new_udp()
    assert(busy:bind("127.0.0.1", dns_port))
    r = prisn({ "server", "start", "--dns", "127.0.0.1:" .. dns_port })
    busy:close()
    assert.are.equal(1, r.code)
    assert.matches("cannot listen on 127.0.0.1:" .. dns_port .. "/udp", r.stderr, 1, true)
    assert.matches("Hint: .*%-%-dns off", r.stderr)
  end)
end)

describe("e2e: prisn dns setup", function()
  local env
  local prisn, ok = h.cli(function() return env end)

  before_each(function() env = h.env() end)
  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  local function listing(dir)
    local r = h.run("/usr/bin/find", { dir }, { env = { PATH = "/usr/bin:/bin" } })
    return r.stdout
  end

  it("writes and removes a systemd-resolved drop-in for the running server's DNS, under --root", function()
    local host_dropin = h.read("/etc/systemd/resolved.conf.d/prisn.conf")
    local port = free_port()
    ok({ "server", "start", "-q", "--dns", "127.0.0.1:" .. port })
    local root = h.tempdir("prisn-dns-root")
    assert(h.run("/bin/mkdir", { "-p", root .. "/run/systemd/resolve" }, { env = { PATH = "/usr/bin:/bin" } }))
    local r = ok({ "dns", "setup", "--root", root })
    local path = root .. "/etc/systemd/resolved.conf.d/prisn.conf"
    assert.matches("Wrote " .. path, r.stdout, 1, true)
    assert.matches("restart systemd-resolved to apply", r.stdout, 1, true)
    local text = h.read(path)
    assert.matches("\n%[Resolve%]\nDNS=127%.0%.0%.1:" .. port .. "\nDomains=~prisn%.local\n$", text)
    local doc = cjson.decode(ok({ "dns", "setup", "--root", root, "--undo", "-o", "json" }).stdout)
    assert.are.same({ resolved = true, changed = true, restarted = false, file = path }, doc)
    assert.is_nil(h.read(path))
    assert.matches("Nothing to undo", ok({ "dns", "setup", "--root", root, "--undo" }).stdout, 1, true)
    -- a file prisn did not write stays
    h.write(path, "[Resolve]\nDNS=192.0.2.1\n")
    r = prisn({ "dns", "setup", "--root", root, "--undo" })
    assert.are.equal(1, r.code)
    assert.matches("Error: " .. path .. " was not written by prisn; left as it is", r.stderr, 1, true)
    assert.are.equal("[Resolve]\nDNS=192.0.2.1\n", h.read(path))
    assert.are.equal(host_dropin, h.read("/etc/systemd/resolved.conf.d/prisn.conf"), "the host's is untouched")
  end)

  it("without systemd-resolved changes nothing and prints what to add where", function()
    local root = h.tempdir("prisn-dns-root")
    local before = listing(root)
    local r = ok({ "dns", "setup", "--root", root, "--address", "127.0.0.1:7453" })
    assert.are.equal("systemd-resolved is not running here: nothing was changed.\n"
      .. "resolv.conf cannot name a port other than 53. With dnsmasq, add to /etc/dnsmasq.d/prisn.conf:\n\n"
      .. "  server=/prisn.local/127.0.0.1#7453\n\n"
      .. "or start the server as root, whose DNS is then on 127.0.0.153:53 (resolv.conf can name that).\n", r.stdout)
    r = ok({ "dns", "setup", "--root", root, "--address", "127.0.0.153:53" })
    assert.matches("\n  nameserver 127.0.0.153\n$", r.stdout)
    assert.matches("Remove the line 'nameserver 127.0.0.153' from /etc/resolv.conf.",
      ok({ "dns", "setup", "--root", root, "--address", "127.0.0.153:53", "--undo" }).stdout, 1, true)
    assert.are.equal(before, listing(root))
  end)

  it("says what is missing without a server or with a bad --address", function()
    local r = prisn({ "dns", "setup", "--root", h.tempdir("prisn-dns-root") })
    assert.are.equal(1, r.code)
    assert.matches("Error: no prisn server is running, so its DNS address is not known\n"
      .. "Hint: start the server ('prisn server start'), or name the address", r.stderr, 1, true)
    r = prisn({ "dns", "setup", "--address", "web:53" })
    assert.are.equal(2, r.code)
    assert.matches("Error: --address expects HOST:PORT, got 'web:53'", r.stderr, 1, true)
    r = prisn({ "dns", "setup", "--help" })
    assert.matches("prisn dns setup --undo", r.stdout, 1, true)
  end)
end)
