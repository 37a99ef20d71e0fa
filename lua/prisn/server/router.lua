-- prisn.server.router: maps a method and a path to a route.
--
-- Patterns are literal segments and {name} placeholders, one segment each:
-- "/api/v1/namespaces/{ns}/jobs/{id}". Matching is by segments (no regular
-- expressions), so a route table of hundreds of entries stays cheap and a
-- placeholder can never swallow a "/". A path that matches a pattern with
-- another method gives "method_not_allowed" and the methods that would do.
local M = {}

local Router = {}
Router.__index = Router

local function split(path)
  local segments = {}
  for segment in path:gmatch("[^/]+") do segments[#segments + 1] = segment end
  return segments
end

-- Percent-decoding of one path segment; nil when it is malformed.
local function unescape(segment)
  if segment:find("%%[^%x]") or segment:find("%%%x?$") then return nil end
  return (segment:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end
M.unescape = unescape

--- A new, empty router.
function M.new()
  return setmetatable({ routes = {} }, Router)
end

--- Adds a route. `route` = { method, pattern, auth ("none"|"view"|"edit"|
-- "admin"), handler, name (for metrics; default the pattern) }.
function Router:add(route)
  assert(type(route.method) == "string" and type(route.pattern) == "string", "route needs method and pattern")
  assert(type(route.handler) == "function", "route needs a handler: " .. route.pattern)
  route.segments = split(route.pattern)
  -- Each segment's placeholder name, or false for a literal: read once here,
  -- not per request and route (13 of a GET's 300 us were the matching).
  route.placeholders = {}
  for i, pattern in ipairs(route.segments) do route.placeholders[i] = pattern:match("^{([%w_]+)}$") or false end
  route.name = route.name or route.pattern
  route.auth = route.auth or "admin"
  self.routes[#self.routes + 1] = route
end

-- The params of `route` for a path of `segments`, or nil. Literals are
-- compared first, so a route that does not match costs no unescaping and
-- no table.
local function match_segments(route, segments)
  local route_segments, placeholders = route.segments, route.placeholders
  local n = #segments
  if #route_segments ~= n then return nil end
  for i = 1, n do
    if not placeholders[i] and route_segments[i] ~= segments[i] then return nil end
  end
  local params = {}
  for i = 1, n do
    local name = placeholders[i]
    if name then
      local value = unescape(segments[i])
      if not value or value == "" then return nil end
      params[name] = value
    end
  end
  return params
end

--- Finds the route for `method` and `path` (without the query string).
-- Returns route, params; or nil, "not_found"; or nil, "method_not_allowed",
-- allowed (a sorted list of methods).
function Router:match(method, path)
  local segments = split(path)
  local allowed, seen = {}, {}
  for _, route in ipairs(self.routes) do
    local params = match_segments(route, segments)
    if params then
      if route.method == method or (method == "HEAD" and route.method == "GET") then
        return route, params
      end
      if not seen[route.method] then
        seen[route.method] = true
        allowed[#allowed + 1] = route.method
      end
    end
  end
  if #allowed > 0 then
    table.sort(allowed)
    return nil, "method_not_allowed", allowed
  end
  return nil, "not_found"
end

return M
