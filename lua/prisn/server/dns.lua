-- prisn.server.dns: the records of prisn.local, built from the supervisor's
-- deployments and sent to the responder (prisn.net.dns), which runs in the
-- data plane (prisn.dataplane.dns) so that names resolve while the server
-- is away.
--
-- Names (the zone is prisn.local; NAME a deployment, NS its namespace):
--   NAME.NS.prisn.local          A (AAAA) -> the address the deployment's port
--                                listens on; SRV -> that port
--   _PORT._tcp.NAME.NS.prisn.local  SRV -> the same (PORT: the port's number)
--   N.NAME.NS.prisn.local        A 127.0.0.1; SRV -> instance N's own port
--                                (clients that balance themselves)
-- Only ready instances count (healthy, running, not draining: the proxy's
-- pool). A deployment with none still has its name, with no records: NODATA
-- rather than NXDOMAIN, so a client can tell "scaled to 0 or not ready" from
-- "no such deployment". A deployment without a port has no A record; its SRV
-- lists each ready instance's own port. Names of every namespace are
-- answered: DNS is discovery, not authorization (docs/SECURITY.md).
--
-- The address of a port bound on every interface (0.0.0.0, the default) is
-- the loopback one, 127.0.0.1: the DNS answers on loopback by default, so who
-- asks runs on this host. When the DNS itself listens on another address (for
-- other machines), that address is answered instead: it reaches this host
-- from wherever the question came. A port bound on one address answers that
-- address; on "::", both 127.0.0.1 and ::1.
--
-- The records are a table built whenever the supervisor says a deployment's
-- pool may have changed (Sup.on_pool_change) and sent to the data plane when
-- they changed; its lookup is a table read (prisn.dataplane.zone).
local uv = require("luv")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local dns = require("prisn.net.dns")
local isolation = require("prisn.exec.isolation")
local forward = require("prisn.net.dns.forward")
local zones = require("prisn.dataplane.zone")

local M = {}

local T = dns.wire.TYPE

M.ZONE = dns.DEFAULT_ZONE
M.DEFAULT_PORT = 7453 -- just past the API's 7433-7452
-- As root, the DNS first tries port 53 on a loopback address of its own
-- (systemd-resolved has 127.0.0.53): resolv.conf cannot name a port, so only
-- a DNS on 53 can be put in the workloads' resolv.conf.
M.ROOT_ADDRESS = "127.0.0.153:53"
M.RESOLV_CONF = "/etc/resolv.conf"

local function is_loopback(host)
  return host:match("^127%.") ~= nil or host == "::1"
end
M.is_loopback = is_loopback

local function is_wildcard(host)
  return host == nil or host == "0.0.0.0" or host == "::"
end

--- The addresses a port bound on `host` (nil: 0.0.0.0) is reached at, for a
-- DNS listening on `dns_host`: a list of { type, data }.
function M.service_addresses(host, dns_host)
  local out = {}
  if is_wildcard(host) then
    local v4 = dns_host and dns_host:find("^%d") and not is_wildcard(dns_host) and not is_loopback(dns_host)
      and dns_host or "127.0.0.1"
    out[1] = { type = T.A, data = v4 }
    if host == "::" then
      local v6 = dns_host and dns_host:find(":", 1, true) and not is_wildcard(dns_host)
        and not is_loopback(dns_host) and dns_host or "::1"
      out[2] = { type = T.AAAA, data = v6 }
    end
  elseif host:find(":", 1, true) then
    out[1] = { type = T.AAAA, data = host }
  else
    out[1] = { type = T.A, data = host }
  end
  return out
end

--- Whether an instance serves: what the supervisor puts in the proxy's pool
-- (prisn.server.supervisor.serving).
local function ready(inst)
  return (inst.healthy or (inst.recovering and inst.adopted)) and inst.pid and not inst.removing
end

--- The records of deployment `d` (the supervisor's: ns, name, row.port,
-- row.host, instances): a table name -> list of { type, data }. `dns_host`:
-- where the DNS listens (see service_addresses).
function M.records(d, zone, dns_host)
  local base = (d.name .. "." .. d.ns .. "." .. zone):lower()
  local port = d.row and d.row.port
  local out = { [base] = {} }
  local list = {}
  for _, inst in pairs(d.instances or {}) do
    if ready(inst) then list[#list + 1] = inst end
  end
  table.sort(list, function(a, b) return a.number < b.number end)
  if port then out["_" .. port .. "._tcp." .. base] = {} end
  if #list == 0 then return out end
  if port then
    for _, rr in ipairs(M.service_addresses(d.row.host, dns_host)) do table.insert(out[base], rr) end
    local srv = { type = T.SRV, data = { priority = 0, weight = 0, port = port, target = base } }
    table.insert(out[base], srv)
    table.insert(out["_" .. port .. "._tcp." .. base], srv)
  end
  for _, inst in ipairs(list) do
    local own = math.tointeger(inst.number) .. "." .. base
    local srv = { type = T.SRV, data = { priority = 0, weight = 0, port = inst.port, target = own } }
    out[own] = { { type = T.A, data = "127.0.0.1" }, srv }
    if not port then table.insert(out[base], srv) end
  end
  return out
end

-- The feeder: the zone's names, kept per deployment --------------------------

local Feeder = {}
Feeder.__index = Feeder

--- An empty set of records for `zone` (a prisn.dataplane.zone); dns_host as
-- in records. What the data plane holds, for specs and tools in one process.
function M.feeder(zone_name, dns_host)
  return setmetatable({ zone = zones.new(zone_name), zone_name = zone_name, dns_host = dns_host }, Feeder)
end

--- Puts in the records of deployment `d` as it is now (none once deleted).
function Feeder:update(d)
  self.zone:set(d.ns .. "/" .. d.name, not d.deleted and M.records(d, self.zone_name, self.dns_host) or nil)
end

--- The records of `name` (lower case), {} for a name that only has names
-- below it, nil for none: the responder's lookup.
function Feeder:lookup(name)
  return self.zone:lookup(name)
end

-- Starting it in the server --------------------------------------------------

--- "HOST:PORT" (or "[V6]:PORT") as host and port, or nil.
function M.parse_address(text)
  local host, port = tostring(text):match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = tostring(text):match("^([%d%.]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  if not (dns.wire.ipv4_bytes(host) or dns.wire.ipv6_bytes(host)) then return nil end
  return host, math.tointeger(port)
end

--- The addresses to try, in order, when --dns is not given.
function M.default_addresses(uid)
  local list = {}
  if uid == 0 then list[1] = M.ROOT_ADDRESS end
  list[#list + 1] = "127.0.0.1:" .. M.DEFAULT_PORT
  return list
end

--- The host's resolvers (resolv.conf at `path`), without the address the
-- DNS answers on when it is on port 53.
function M.upstreams(path, host, port)
  local skip = {}
  if port == 53 then skip[host] = true end
  return forward.resolvers(fs.read_file(path or M.RESOLV_CONF), skip)
end

M.WORKLOAD_RESOLV_CONF = isolation.WORKLOAD_RESOLV_CONF

--- The resolv.conf text for workloads of a DNS on `host` (port 53), from
-- the host's resolv.conf text: prisn's DNS first (it answers prisn.local and
-- forwards the rest), then the host's own nameservers (glibc reads three), a
-- fallback while prisn's DNS is away; the host's search and options lines.
function M.workload_resolv_conf(host, host_text)
  local lines = { "# Written by prisn for its workloads: prisn's DNS first (prisn.local, and it forwards",
    "# the rest), then the host's own resolvers.", "nameserver " .. host }
  local count = 1
  for _, u in ipairs(forward.resolvers(host_text, { [host] = true })) do
    if count < 3 then
      lines[#lines + 1] = "nameserver " .. u.host
      count = count + 1
    end
  end
  for line in (host_text or ""):gmatch("[^\n]+") do
    if line:match("^%s*search%s") or line:match("^%s*domain%s") or line:match("^%s*options%s") then
      lines[#lines + 1] = line
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Writes the workloads' resolv.conf into `home` when the DNS on host:port
-- can be named in one (port 53: resolv.conf has no ports). Returns its path,
-- or nil and why not.
local function write_workload_resolv_conf(home, host, port, resolv_conf)
  local path = home .. "/" .. M.WORKLOAD_RESOLV_CONF
  if port ~= 53 then
    uv.fs_unlink(path)
    return nil, "the DNS is not on port 53, and resolv.conf cannot name a port"
  end
  local ok, err = fs.write_atomic(path, M.workload_resolv_conf(host, fs.read_file(resolv_conf or M.RESOLV_CONF)),
    tonumber("644", 8))
  if not ok then return nil, "cannot write " .. path .. ": " .. tostring(err) end
  return path
end

--- Sends the records of deployment `d` (none once deleted) to the data
-- plane `dp` (prisn.server.dataplane); dns_host as in records.
function M.send_records(dp, d, dns_host)
  dp:set_dns_records(d.ns .. "/" .. d.name, not d.deleted and M.records(d, M.ZONE, dns_host) or nil)
end

--- Starts the DNS for `server` (its home, supervisor, log, dataplane: the
-- responder runs in the data plane, which outlives the server).
-- opts: address ("off", "HOST:PORT" or nil for the defaults), forward (true,
-- false or nil: on for a loopback address), resolv_conf (a path). Returns
-- { responder, feeder, address, host, port, upstreams, resolv_conf (the
-- workloads' resolv.conf, or nil) } or nil when off;
-- raises when an address asked for cannot be had; with the defaults, a
-- failure is a warning and the server goes on without DNS.
function M.start(server, opts)
  opts = opts or {}
  if opts.address == "off" then
    uv.fs_unlink(server.home .. "/" .. M.WORKLOAD_RESOLV_CONF)
    server.log:info("DNS off (--dns off)")
    server.dataplane:set_dns(nil) -- one an earlier server had started stops
    return nil
  end
  local candidates = opts.address and { opts.address } or M.default_addresses(uv.getuid())
  local failures = {}
  for _, address in ipairs(candidates) do
    local host, port = M.parse_address(address)
    if not host then
      errors.usage("--dns expects HOST:PORT or off, got '" .. tostring(address) .. "'", "e.g. --dns 127.0.0.1:7453")
    end
    local forwarding = opts.forward
    if forwarding == nil then forwarding = is_loopback(host) end
    local upstreams = forwarding and M.upstreams(opts.resolv_conf, host, port) or {}
    local dp = server.dataplane
    local bound, err = dp:call_at_start({ kind = "dns", op = "listen", host = host, port = port, zone = M.ZONE,
      forward = upstreams })
    if bound then
      dp.dns_listen = { host = host, port = port, zone = M.ZONE, forward = upstreams }
      local sup = server.supervisor
      sup.on_pool_change[#sup.on_pool_change + 1] = function(d)
        errors.call("dns records", M.send_records, function(e) server.log:error("dns: %s", tostring(e)) end,
          dp, d, host)
      end
      for _, d in pairs(sup.deployments) do M.send_records(dp, d, host) end
      local names = {}
      for _, u in ipairs(upstreams) do names[#names + 1] = u.host end
      server.log:info("DNS for %s on %s (udp, tcp); %s", M.ZONE, address,
        #names > 0 and ("names outside it forwarded to " .. table.concat(names, ", "))
        or "names outside it refused")
      local resolv, why = write_workload_resolv_conf(server.home, host, port, opts.resolv_conf)
      if resolv then
        server.log:info("workloads at isolation 1 and 2 ask it first (their /etc/resolv.conf is %s)", resolv)
      else
        server.log:info("workloads keep the host's resolv.conf: %s", why)
      end
      return { address = address, host = host, port = port, upstreams = upstreams, resolv_conf = resolv }
    end
    local code = err.code
    err = err.message
    if opts.address then
      errors.raise(code or "EADDRINUSE", err, { hint = "choose another address with --dns HOST:PORT, or --dns off" })
    end
    failures[#failures + 1] = err
  end
  uv.fs_unlink(server.home .. "/" .. M.WORKLOAD_RESOLV_CONF)
  server.log:warn("no DNS: %s (start with --dns HOST:PORT to choose an address)", table.concat(failures, "; "))
  server.dataplane:set_dns(nil)
  return nil
end

return M
