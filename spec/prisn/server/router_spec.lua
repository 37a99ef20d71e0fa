local router = require("prisn.server.router")

describe("prisn.server.router", function()
  local r
  before_each(function()
    r = router.new()
    local h = function() end
    r:add({ method = "GET", pattern = "/health", auth = "none", handler = h })
    r:add({ method = "GET", pattern = "/api/v1/namespaces/{ns}/jobs", auth = "view", handler = h })
    r:add({ method = "POST", pattern = "/api/v1/namespaces/{ns}/jobs", auth = "edit", handler = h })
    r:add({ method = "GET", pattern = "/api/v1/namespaces/{ns}/jobs/{id}", auth = "view", handler = h })
  end)

  it("matches literal and placeholder segments", function()
    local route, params = r:match("GET", "/api/v1/namespaces/ns-a/jobs/06h1")
    assert.equal("/api/v1/namespaces/{ns}/jobs/{id}", route.pattern)
    assert.same({ ns = "ns-a", id = "06h1" }, params)
    assert.equal("edit", (r:match("POST", "/api/v1/namespaces/x/jobs")).auth)
  end)

  it("decodes percent-escapes in a segment but never lets one span segments", function()
    local _, params = r:match("GET", "/api/v1/namespaces/a%2Fb/jobs")
    assert.same({ ns = "a/b" }, params)
    assert.same({ nil, "not_found" }, { r:match("GET", "/api/v1/namespaces/a/b/jobs") })
    assert.same({ nil, "not_found" }, { r:match("GET", "/api/v1/namespaces/%zz/jobs") })
  end)

  it("tells a wrong method from a wrong path", function()
    assert.same({ nil, "method_not_allowed", { "GET", "POST" } },
      { r:match("DELETE", "/api/v1/namespaces/x/jobs") })
    assert.same({ nil, "not_found" }, { r:match("GET", "/nope") })
  end)

  it("answers HEAD with the GET route", function()
    assert.equal("/health", (r:match("HEAD", "/health")).pattern)
  end)
end)
