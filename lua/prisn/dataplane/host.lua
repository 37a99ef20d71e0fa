-- prisn.dataplane.host: the registry of the data plane's services and the
-- dispatch of control-protocol requests to them.
--
-- A service is a module with new(host) returning an object whose methods
-- op_<op>(msg) answer requests of its kind (a result table, or nil,
-- message, code). Optional methods the host calls on every service that
-- has them: tick() (every TICK_MS; an event table to send every connected
-- server, or nil), snapshot() (its state, to hand to the process that
-- replaces this one at an upgrade), listeners() (its listening sockets, {
-- { name, fd } }), adopt(snapshot, fds) (the new process takes them),
-- stop_accepting(done) (the old one lets go), close(done).
--
-- Adding a service (an ingress, log pumps) is a module and a line in
-- SERVICES; the server then sends requests of that kind. The host's own
-- kind, "host", answers hello (pid, version, the services it has) and
-- metrics (the Prometheus text of the data plane's metrics: the proxies',
-- the DNS's); upgrade and stop are the process's (prisn.dataplane).
local M = {}

M.TICK_MS = 100

-- kind -> module, in the order they start (and are handed over).
M.SERVICES = {
  { kind = "ports", module = "prisn.dataplane.ports" },
  { kind = "dns", module = "prisn.dataplane.dns" },
  { kind = "logs", module = "prisn.dataplane.logs" },
  { kind = "ingress", module = "prisn.dataplane.ingress" },
}

local Host = {}
Host.__index = Host

--- A host: opts log, metrics (a prisn.metrics registry), version, pid,
-- services (a list like SERVICES with `module` a table, for specs; default
-- the SERVICES, required here). Creates every service.
function M.new(opts)
  local self = setmetatable({ log = opts.log, metrics = opts.metrics, version = opts.version, pid = opts.pid,
    services = {}, order = {} }, Host)
  for _, entry in ipairs(opts.services or M.SERVICES) do
    local module = type(entry.module) == "string" and require(entry.module) or entry.module
    self.services[entry.kind] = module.new(self)
    self.order[#self.order + 1] = entry.kind
  end
  return self
end

-- The host's own requests.
local HOST_OPS = {
  hello = function(self)
    return { pid = self.pid, version = self.version, services = self.order }
  end,
  metrics = function(self)
    return { text = self.metrics and self.metrics:render() or "" }
  end,
}

--- Answers request `msg`: the result table, or nil, message, code. A bug in
-- a service is an error reply, never the end of the process.
function Host:handle(msg)
  local kind, op = msg.kind, msg.op
  if type(op) ~= "string" then return nil, "a request needs an op", "invalid" end
  if kind == "host" then
    local fn = HOST_OPS[op]
    if not fn then return nil, "the data plane has no host op " .. op, "unknown_op" end
    return fn(self, msg)
  end
  local service = self.services[kind]
  if not service then return nil, "the data plane has no service " .. tostring(kind), "unknown_kind" end
  local fn = service["op_" .. op]
  if not fn then return nil, "the data plane's " .. kind .. " has no op " .. op, "unknown_op" end
  local ok, result, err, code = pcall(fn, service, msg)
  if not ok then
    if self.log then self.log:error("%s %s: %s", kind, op, tostring(result)) end
    return nil, tostring(result), "internal"
  end
  return result, err, code
end

--- The events the services have now (tick), each with its kind.
function Host:tick()
  local out = {}
  for _, kind in ipairs(self.order) do
    local s = self.services[kind]
    if s.tick then
      local ev = s:tick()
      if ev then
        ev.kind = kind
        out[#out + 1] = ev
      end
    end
  end
  return out
end

--- Every service's snapshot and listening sockets, for an upgrade:
-- snapshot = { [kind] = ... }, fds = list of { kind, name, fd }.
function Host:handover()
  local snapshot, fds = {}, {}
  for _, kind in ipairs(self.order) do
    local s = self.services[kind]
    if s.snapshot then snapshot[kind] = s:snapshot() end
    if s.listeners then
      for _, l in ipairs(s:listeners()) do fds[#fds + 1] = { kind = kind, name = l.name, fd = l.fd } end
    end
  end
  return snapshot, fds
end

--- Takes over a snapshot; `fds`: kind -> name -> fd (this process's).
function Host:adopt(snapshot, fds)
  for _, kind in ipairs(self.order) do
    local s = self.services[kind]
    if s.adopt and snapshot[kind] then s:adopt(snapshot[kind], fds[kind] or {}) end
  end
end

-- Calls method(service, one) on each service that has it; done() after all.
local function each(self, method, done)
  local pending = 1
  local function one()
    pending = pending - 1
    if pending == 0 and done then done() end
  end
  for _, kind in ipairs(self.order) do
    local s = self.services[kind]
    if s[method] then
      pending = pending + 1
      s[method](s, one)
    end
  end
  one()
end

--- Lets go of the listening sockets; done() once open connections ended.
function Host:stop_accepting(done) each(self, "stop_accepting", done) end

--- Closes every service; done() after.
function Host:close(done) each(self, "close", done) end

return M
