-- docs/API.md against the server's route table: every route has a section
-- headed "### METHOD PATTERN" whose "Role: `...`" line names the route's auth
-- level, and every such heading is a route. A route added without docs, or
-- docs left behind by a removed route, fails here.
--
-- There is no route-listing endpoint, so the table comes from the binary
-- itself: `prisn lua -e` loads the modules the server loads
-- (prisn.server.API_MODULES) and prints "METHOD PATTERN AUTH" per route. No
-- server is started.
local h = require("e2e.helper")
local read = h.read

local LIST_ROUTES = [[
for _, area in ipairs(require("prisn.server").API_MODULES) do
  for _, route in ipairs(require("prisn.server.api." .. area)) do
    print(route.method .. " " .. route.pattern .. " " .. (route.auth or "admin"))
  end
end
]]

-- { {method, pattern, auth}, ... } in the server's order.
local function routes()
  local r = h.prisn({ "lua", "-e", LIST_ROUTES })
  assert.equal(0, r.code, r.stderr)
  local list = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local method, pattern, auth = line:match("^(%u+) (/%S*) (%a+)$")
    assert(method, "unexpected line from the route listing: " .. line)
    list[#list + 1] = { method = method, pattern = pattern, auth = auth }
  end
  return list
end

-- The endpoint sections of docs/API.md: "METHOD PATTERN" -> the section's
-- text (up to the next heading of level 2 or 3).
local function sections(doc)
  local out, order = {}, {}
  local key, body
  local function flush()
    if key then out[key] = table.concat(body, "\n") end
  end
  for line in (doc .. "\n"):gmatch("([^\n]*)\n") do
    local heading = line:match("^###? (.*)$")
    if heading then
      flush()
      key, body = nil, nil
      local method, pattern = heading:match("^(%u+) (/%S*)$")
      if method then
        key, body = method .. " " .. pattern, {}
        assert(not out[key], "docs/API.md documents " .. key .. " twice")
        order[#order + 1] = key
      end
    elseif body then
      body[#body + 1] = line
    end
  end
  flush()
  return out, order
end

describe("docs/API.md", function()
  local list, documented, headings

  setup(function()
    list = routes()
    documented, headings = sections(read(h.source_dir .. "/docs/API.md"))
  end)

  teardown(function() h.cleanup() end)

  it("is checked against a route table that is not empty", function()
    assert.is_true(#list >= 20, "only " .. #list .. " routes listed")
    assert.is_true(#headings > 0, "docs/API.md has no '### METHOD /path' headings")
  end)

  it("documents every route, under '### METHOD PATTERN', with its role", function()
    local problems = {}
    for _, route in ipairs(list) do
      local key = route.method .. " " .. route.pattern
      local section = documented[key]
      if not section then
        problems[#problems + 1] = key .. ": no section headed '### " .. key .. "'"
      else
        local role = section:match("\nRole: `(%a+)`") or section:match("^Role: `(%a+)`")
        if role ~= route.auth then
          problems[#problems + 1] = string.format("%s: the route needs '%s', the section's Role: line says '%s'",
            key, route.auth, tostring(role))
        end
      end
    end
    assert.same({}, problems, "routes that docs/API.md does not document correctly")
  end)

  it("documents no endpoint the server does not have", function()
    local exists = {}
    for _, route in ipairs(list) do exists[route.method .. " " .. route.pattern] = true end
    local extra = {}
    for _, key in ipairs(headings) do
      if not exists[key] then extra[#extra + 1] = key end
    end
    assert.same({}, extra, "sections of docs/API.md for routes the server does not have")
  end)
end)
