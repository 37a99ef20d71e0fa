-- prisn.server.tls: the API's certificates, made on the server's first start
-- the way k3s does it: a small CA of its own and a server certificate signed
-- by it for every name a client may use.
--
--   $PRISN_HOME/tls/ca.key      the CA's key (0600); never leaves the machine
--   $PRISN_HOME/tls/ca.crt      the CA certificate (10 years)
--   $PRISN_HOME/tls/server.key  the server's key (0600)
--   $PRISN_HOME/tls/server.crt  the server certificate (1 year) then the CA
--   $PRISN_HOME/ca.crt          a copy of the CA certificate: what clients
--                               trust (`curl --cacert $PRISN_HOME/ca.crt`)
--
-- The server certificate names localhost, 127.0.0.1, ::1, the host name and
-- the --listen address (every interface address when it listens on all). It
-- is made again — same CA, so pinned clients keep working — when a name is
-- missing, when it expires within 30 days, or when it is deleted; the CA is
-- made again only when its files are gone (then every client must pin the
-- new fingerprint). Clients pin the CA's SHA-256 fingerprint.
local uv = require("luv")
local fs = require("prisn.fs")
local errors = require("prisn.error")
local tls = require("prisn.net.tls")

local M = {}

M.DIR = "tls"
M.CA_FILE = "ca.crt"
M.RENEW_DAYS = 30
M.MAX_NAMES = 16

local PRIVATE = tonumber("600", 8)
local PUBLIC = tonumber("644", 8)

local function write(path, text, mode)
  local ok, err, code = fs.write_atomic(path, text, mode)
  if not ok then
    errors.raise(code or "EIO", "cannot write " .. path .. ": " .. tostring(err),
      { hint = "check that PRISN_HOME is writable" })
  end
end

local function is_wildcard(host)
  return host == "0.0.0.0" or host == "::" or host == ""
end

--- The names the server certificate must hold for a server listening on
-- `host`: loopback names, the host name, and host itself (or, for a
-- wildcard, the machine's interface addresses). At most M.MAX_NAMES.
function M.names(host)
  local list, seen = {}, {}
  local function add(name)
    if name and name ~= "" and not seen[name:lower()] and #list < M.MAX_NAMES then
      seen[name:lower()] = true
      list[#list + 1] = name
    end
  end
  for _, name in ipairs({ "localhost", "127.0.0.1", "::1" }) do add(name) end
  local hostname = uv.os_gethostname()
  if hostname and hostname:match("^[%w.-]+$") then add(hostname) end
  if host and not is_wildcard(host) then
    add(host)
  elseif host then
    for _, addrs in pairs(uv.interface_addresses() or {}) do
      for _, a in ipairs(addrs) do
        if not a.internal and not a.ip:lower():match("^fe80:") then add(a.ip) end
      end
    end
  end
  return list
end

local function read_pair(dir, name)
  local cert, key = fs.read_file(dir .. "/" .. name .. ".crt"), fs.read_file(dir .. "/" .. name .. ".key")
  if cert and key then return { cert = cert, key = key } end
  return nil
end

-- Why the server certificate must be made again, or nil when it is fine.
local function stale(server, ca_fingerprint, names)
  if not server then return "none yet" end
  local info = tls.cert_info(server.cert)
  if not info then return "it does not parse" end
  if info.not_after - os.time() < M.RENEW_DAYS * 86400 then return "it expires within " .. M.RENEW_DAYS .. " days" end
  local chain_ca = tls.cert_info(server.cert:match("%-%-%-%-%-END CERTIFICATE%-%-%-%-%-\n(.*)$") or "")
  if not chain_ca or chain_ca.fingerprint ~= ca_fingerprint then return "it is not signed by the current CA" end
  for _, name in ipairs(names) do
    if not tls.covers(info, name) then return "it does not name " .. name end
  end
  if not tls.load_pair(server.cert, server.key) then return "its key does not match" end
  return nil
end

--- Makes sure $PRISN_HOME/tls holds a CA and a server certificate for
-- `names` (M.names). Returns { pair = a loaded pair, ca_fingerprint,
-- ca_file, created = what was made ("ca", "server" or nil), why }.
-- Raises a prisn.error when the files cannot be written or the CA is broken.
function M.ensure(home, names)
  local dir = home .. "/" .. M.DIR
  fs.mkdir_p(dir, tonumber("700", 8))
  local created, why
  local ca = read_pair(dir, "ca")
  if not ca then
    ca = assert(tls.new_ca())
    write(dir .. "/ca.key", ca.key, PRIVATE)
    write(dir .. "/ca.crt", ca.cert, PUBLIC)
    created = "ca"
  end
  local ca_info = tls.cert_info(ca.cert)
  if not ca_info or not ca_info.ca then
    errors.raise("bad_ca", dir .. "/ca.crt is not a CA certificate",
      { hint = "remove " .. dir .. " to make a new CA (clients must then pin the new fingerprint)" })
  end
  local server = read_pair(dir, "server")
  why = stale(server, ca_info.fingerprint, names)
  if why then
    local leaf, err = tls.new_leaf(names, ca, { common_name = names[1] })
    if not leaf then errors.raise("EIO", "cannot make the server certificate: " .. tostring(err)) end
    server = { cert = leaf.cert .. ca.cert, key = leaf.key }
    write(dir .. "/server.key", server.key, PRIVATE)
    write(dir .. "/server.crt", server.cert, PUBLIC)
    created = created or "server"
  end
  local ca_file = home .. "/" .. M.CA_FILE
  if fs.read_file(ca_file) ~= ca.cert then write(ca_file, ca.cert, PUBLIC) end
  local pair, perr = tls.load_pair(server.cert, server.key)
  if not pair then errors.raise("bad_certificate", dir .. "/server.crt: " .. tostring(perr)) end
  return { pair = pair, ca_fingerprint = ca_info.fingerprint, ca_file = ca_file, created = created,
    why = why, names = names }
end

--- The SHA-256 fingerprint of $PRISN_HOME/ca.crt, or nil when there is none.
function M.local_fingerprint(home)
  local pem = fs.read_file(home .. "/" .. M.CA_FILE)
  local info = pem and tls.cert_info(pem)
  return info and info.fingerprint or nil, pem
end

return M
