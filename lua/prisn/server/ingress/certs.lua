-- prisn.server.ingress.certs: the certificate the ingress's TLS listener
-- shows for each host name (SNI), and keeping it current.
--
-- Where a host name's certificate comes from is a setting of the
-- deployments routed from it (prisn deploy --host NAME ...):
--   --tls-cert FILE --tls-key FILE  PEM files on the server (an admin's)
--   --tls-secret NAME               a secret of the deployment's namespace,
--                                   keys TLS_CERT and TLS_KEY
--   neither                         a self-signed certificate for the name,
--                                   made once and kept in
--                                   $PRISN_HOME/tls/ingress/NAME.{crt,key}
-- When several deployments share a host name (other paths), the first by
-- path that names a source decides. A name no route has gets the default:
-- a self-signed certificate for "prisn-ingress" (the request then gets 404).
--
-- The sources are set from the supervisor's deployments whenever the routes
-- are (set_sources). Every name's certificate is loaded then (load_all) and
-- its PEM texts sent to the data plane, which serves TLS (#19); check() (a timer,
-- every POLL_MS) reloads a file whose mtime, size or inode changed and a
-- secret whose updated_at did, so a renewed certificate is served without
-- a restart. A source that cannot be loaded (a missing file, a key that
-- does not match) is logged, shown in `prisn describe deploy` (tls.error),
-- and the name gets its self-signed certificate meanwhile: a handshake
-- never fails for want of a certificate.
local uv = require("luv")
local fs = require("prisn.fs")
local tls = require("prisn.net.tls")
local stored_secrets = require("prisn.store.secrets")

local M = {}

M.POLL_MS = 2000
M.DEFAULT_NAME = "prisn-ingress"

local Certs = {}
Certs.__index = Certs

--- The certificate source of each host name of the supervisor's
-- deployments: name -> { kind = "file", cert, key } | { kind = "secret",
-- ns, name } | { kind = "self-signed" }, with `id` saying which.
function M.sources(deployments)
  local by_name = {}
  for _, d in pairs(deployments) do
    local row = d.row or {}
    if not d.deleted and row.hostname then
      local list = by_name[row.hostname] or {}
      by_name[row.hostname] = list
      list[#list + 1] = { ns = d.ns, row = row }
    end
  end
  local out = {}
  for name, rows in pairs(by_name) do
    table.sort(rows, function(a, b) return (a.row.path or "/") < (b.row.path or "/") end)
    local source = { kind = "self-signed" }
    for _, r in ipairs(rows) do
      if r.row.tls_cert and r.row.tls_key then
        source = { kind = "file", cert = r.row.tls_cert, key = r.row.tls_key }
        break
      end
      if r.row.tls_secret then
        source = { kind = "secret", ns = r.ns, name = r.row.tls_secret }
        break
      end
    end
    source.id = table.concat({ source.kind, source.cert or "", source.key or "", source.ns or "", source.name or "" },
      "\0")
    out[name] = source
  end
  return out
end

--- Takes the current sources (M.sources); a name whose source changed is
-- loaded again when next asked for.
function Certs:set_sources(sources)
  self.sources = sources
  for name, entry in pairs(self.entries) do
    if not sources[name] or sources[name].id ~= entry.source.id then self.entries[name] = nil end
  end
end

-- What a source's current version is: files by mtime, size and inode, a
-- secret by its updated_at. A change means: load it again.
local function stamp_of(self, source)
  if source.kind == "file" then
    local parts = {}
    for _, path in ipairs({ source.cert, source.key }) do
      local st = uv.fs_stat(path)
      parts[#parts + 1] = st and string.format("%d.%09d/%d/%d", st.mtime.sec, st.mtime.nsec, st.size, st.ino) or "-"
    end
    return "file " .. source.cert .. " " .. source.key .. " " .. table.concat(parts, " ")
  elseif source.kind == "secret" then
    local info = stored_secrets.describe(self.db, source.ns, source.name)
    return "secret " .. source.ns .. "/" .. source.name .. " " .. tostring(info and info.updated_at)
  end
  return "self-signed"
end

-- A self-signed pair for `name`, kept in $PRISN_HOME/tls/ingress so that a
-- restart shows the same certificate. Returns { cert, key } or nil, err.
function Certs:self_signed(name)
  local dir = self.home .. "/tls/ingress"
  local cert = fs.read_file(dir .. "/" .. name .. ".crt")
  local key = fs.read_file(dir .. "/" .. name .. ".key")
  if cert and key then return { cert = cert, key = key } end
  local made, err = tls.new_leaf({ name })
  if not made then return nil, err end
  if fs.mkdir_p(dir, tonumber("700", 8)) then
    fs.write_atomic(dir .. "/" .. name .. ".key", made.key, tonumber("600", 8))
    fs.write_atomic(dir .. "/" .. name .. ".crt", made.cert, tonumber("644", 8))
  end
  return made
end

-- The PEM texts of `source`, or nil and why not.
function Certs:pem_of(source, hostname)
  if source.kind == "file" then
    local cert, err = fs.read_file(source.cert)
    if not cert then return nil, "cannot read " .. source.cert .. ": " .. tostring(err) end
    local key, kerr = fs.read_file(source.key)
    if not key then return nil, "cannot read " .. source.key .. ": " .. tostring(kerr) end
    return { cert = cert, key = key }
  elseif source.kind == "secret" then
    local values = stored_secrets.get(self.db, self.keyring, source.ns, source.name)
    if not values then return nil, "secret " .. source.name .. " not found in namespace " .. source.ns end
    if not (values.TLS_CERT and values.TLS_KEY) then
      return nil, "secret " .. source.name .. " has no TLS_CERT and TLS_KEY keys"
    end
    return { cert = values.TLS_CERT, key = values.TLS_KEY }
  end
  return self:self_signed(hostname)
end

-- Loads `hostname`'s certificate from `source` into an entry: { pair, info,
-- source, stamp, error }; a failure falls back to the self-signed one.
function Certs:load(hostname, source)
  local entry = { source = source, stamp = stamp_of(self, source) }
  local pem, err = self:pem_of(source, hostname)
  local pair, perr
  if pem then pair, perr = tls.load_pair(pem.cert, pem.key) end
  if not pair then
    entry.error = err or perr
    self.log:error("ingress: the certificate of %s (%s): %s; serving a self-signed one", hostname, source.kind,
      tostring(entry.error))
    pem = self:self_signed(hostname)
    pair = pem and tls.load_pair(pem.cert, pem.key)
  end
  entry.pair, entry.pem = pair, pair and pem or nil
  self.version = self.version + 1
  entry.info = pem and tls.cert_info(pem.cert) or nil
  if entry.info and source.kind ~= "self-signed" and not tls.covers(entry.info, hostname) then
    entry.warning = "the certificate does not name " .. hostname
  end
  return entry
end

--- The pair to show a client that asked for `name` (SNI), or nil for the
-- default.
function Certs:pair(name)
  if type(name) ~= "string" then return nil end
  name = name:lower()
  local source = self.sources[name]
  if not source then return nil end
  local entry = self.entries[name]
  if not entry then
    entry = self:load(name, source)
    self.entries[name] = entry
  end
  return entry.pair
end

--- What `prisn describe deploy` shows of `hostname`'s certificate: {
-- subject, not_after, fingerprint, self_signed, error, warning }, or nil
-- before a client asked for it (with `load`: loaded now, so describe shows
-- what will be served).
function Certs:info(hostname, load)
  local entry = self.entries[hostname]
  if not entry then
    if not load or not self:pair(hostname) then return nil end
    entry = self.entries[hostname]
  end
  local info = entry.info or {}
  return { subject = info.subject, not_after = info.not_after and os.date("!%Y-%m-%dT%H:%M:%SZ", info.not_after),
    fingerprint = info.fingerprint, self_signed = info.self_signed, error = entry.error, warning = entry.warning }
end

--- Reloads every certificate whose source changed (or went away); then
-- on_change() when one did (the server sends the data plane the new PEMs).
function Certs:check()
  local before = self.version
  for name, entry in pairs(self.entries) do
    local source = entry.source
    if stamp_of(self, source) ~= entry.stamp then
      self.entries[name] = self:load(name, source)
      self.log:info("ingress: certificate of %s reloaded (%s)", name, source.kind)
    end
  end
  if self.version ~= before and self.on_change then self.on_change() end
end

--- Loads every host name's certificate not loaded yet: the data plane
-- serves TLS from PEMs it was sent, so none can wait for a first client.
function Certs:load_all()
  for name, source in pairs(self.sources) do
    if not self.entries[name] then self.entries[name] = self:load(name, source) end
  end
end

--- The PEM texts the data plane serves: name -> { cert, key }.
function Certs:pems()
  local out = {}
  for name, entry in pairs(self.entries) do
    if entry.pem then out[name] = { cert = entry.pem.cert, key = entry.pem.key } end
  end
  return out
end

--- The default pair (names no route has).
function Certs:default_pair()
  if not self.default then
    local pem = self:default_pem()
    self.default = assert(tls.load_pair(pem.cert, pem.key))
  end
  return self.default
end

--- The default pair's PEM texts { cert, key }.
function Certs:default_pem()
  if not self.default_texts then self.default_texts = assert(self:self_signed(M.DEFAULT_NAME)) end
  return { cert = self.default_texts.cert, key = self.default_texts.key }
end

function Certs:close()
  if self.timer and not self.timer:is_closing() then self.timer:close() end
end

--- Certificates for the ingress of `server` (home, db, keyring, log,
-- supervisor). opts.poll_ms: how often sources are checked (POLL_MS).
function M.new(server, opts)
  opts = opts or {}
  local self = setmetatable({ home = server.home, db = server.db, keyring = server.keyring, log = server.log,
    entries = {}, sources = {}, version = 0 }, Certs)
  local poll = opts.poll_ms or M.POLL_MS
  self.timer = uv.new_timer()
  self.timer:start(poll, poll, function()
    local ok, err = pcall(self.check, self)
    if not ok then self.log:error("ingress: checking certificates: %s", tostring(err)) end
  end)
  self.timer:unref()
  return self
end

return M
