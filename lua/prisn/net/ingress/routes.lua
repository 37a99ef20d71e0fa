-- prisn.net.ingress.routes: the ingress's routing table, pure (no sockets).
--
--   local routes = require("prisn.net.ingress.routes")
--   local table_ = routes.build({ { host = "api.example.com", path = "/v1", key = "default/api",
--     backends = { { id = "api-1", host = "127.0.0.1", port = 40001 } } } })
--   local route = routes.match(table_, "API.example.com:8080", "/v1/users")  -- the route, or nil
--
-- A request goes to the route of its Host (compared without case and
-- without a port) whose path is the longest prefix of the request's path on
-- a segment boundary: "/v1" matches "/v1", "/v1/" and "/v1/x", never "/v10".
-- "/" (or no path) matches everything on that host. Two routes with the same
-- host and path are a caller's bug (the wiring keeps hosts unique): build
-- raises.
--
-- Not here: wildcard hosts, regular expressions, rewriting the path.
local address = require("prisn.net.address")

local M = {}

local is_ip = address.is_ip

--- A Host header's name as routes compare it: lower-case, no port, no
-- trailing dot ("API.Example.com.:8080" gives "api.example.com"); IPv6
-- literals keep their brackets off ("[::1]:80" gives "::1").
function M.normalize_host(host)
  if type(host) ~= "string" then return "" end
  host = host:lower()
  local v6 = host:match("^%[([^%]]*)%]")
  if v6 then return v6 end
  host = host:gsub(":%d*$", "")
  return (host:gsub("%.$", ""))
end

-- "/v1/" and "/v1" are the same prefix; "" is "/".
local function normalize_path(path)
  if path == nil or path == "" then return "/" end
  if #path > 1 then path = path:gsub("/+$", "") end
  if path == "" then return "/" end
  return path
end

local function check_backend(route_i, b, i)
  if type(b) ~= "table" or type(b.id) ~= "string" or b.id == "" then
    error(string.format("ingress: route %d: backend %d: id must be a non-empty string", route_i, i), 3)
  end
  local host = b.host == "localhost" and "127.0.0.1" or b.host
  if type(host) ~= "string" or not is_ip(host) then
    error(string.format("ingress: backend %s: host must be an IP address, got %s", b.id, tostring(b.host)), 3)
  end
  if math.type(b.port) ~= "integer" or b.port < 1 or b.port > 65535 then
    error(string.format("ingress: backend %s: port must be 1-65535, got %s", b.id, tostring(b.port)), 3)
  end
  return { id = b.id, host = host, port = b.port, key = b.id .. "@" .. host .. ":" .. b.port }
end

--- The routing table for `list` (see the top of this file): { [host] = {
-- routes sorted by path length, longest first } }, each route { host, path,
-- key, backends = { { id, host, port, key } } }. Raises on a malformed list.
function M.build(list)
  if type(list) ~= "table" then error("ingress: set_routes expects a list of routes", 3) end
  local by_host, seen = {}, {}
  for i, r in ipairs(list) do
    if type(r) ~= "table" or type(r.host) ~= "string" or r.host == "" then
      error(string.format("ingress: route %d: host must be a non-empty string", i), 3)
    end
    if r.path ~= nil and (type(r.path) ~= "string" or r.path:sub(1, 1) ~= "/") then
      error(string.format("ingress: route %d: path must start with /, got %s", i, tostring(r.path)), 3)
    end
    if type(r.backends) ~= "table" then
      error(string.format("ingress: route %d: backends must be a list", i), 3)
    end
    local host, path = M.normalize_host(r.host), normalize_path(r.path)
    local id = host .. path
    if seen[id] then error(string.format("ingress: route %d: %s%s is routed twice", i, host, path), 3) end
    seen[id] = true
    local backends = {}
    for j, b in ipairs(r.backends) do backends[j] = check_backend(i, b, j) end
    local route = { host = host, path = path, key = r.key or id, backends = backends, turn = 0 }
    by_host[host] = by_host[host] or {}
    table.insert(by_host[host], route)
  end
  for _, rs in pairs(by_host) do
    table.sort(rs, function(a, b) return #a.path > #b.path end)
  end
  return by_host
end

local function prefix_matches(prefix, path)
  if prefix == "/" then return true end
  if path:sub(1, #prefix) ~= prefix then return false end
  local after = path:sub(#prefix + 1, #prefix + 1)
  return after == "" or after == "/"
end

-- Host headers seen, normalized: a client sends the same few again and
-- again. Bounded: emptied when it grows past MEMO_MAX (a client making up
-- names cannot grow it).
local memo, memo_n, MEMO_MAX = {}, 0, 1024

local function normalized(host)
  local n = memo[host]
  if n then return n end
  n = M.normalize_host(host)
  if memo_n >= MEMO_MAX then memo, memo_n = {}, 0 end
  memo[host], memo_n = n, memo_n + 1
  return n
end

--- The route of `routes` (from build) for a request to Host `host` and path
-- `path`, or nil.
function M.match(routes, host, path)
  local rs = routes[type(host) == "string" and normalized(host) or ""]
  if not rs then return nil end
  path = path or "/"
  for _, r in ipairs(rs) do
    if prefix_matches(r.path, path) then return r end
  end
  return nil
end

--- Every backend key of `routes` (a set): what stays in service.
function M.backend_keys(routes)
  local keys = {}
  for _, rs in pairs(routes) do
    for _, r in ipairs(rs) do
      for _, b in ipairs(r.backends) do keys[b.key] = b end
    end
  end
  return keys
end

return M
