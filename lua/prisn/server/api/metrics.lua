-- /metrics: the Prometheus text exposition of the server's metrics. The
-- figures cover every namespace, so they need a cluster-wide token (any
-- role: a scraper's view token created with --namespace '*' will do). The
-- proxies' and the DNS's figures live in the data plane (prisn.dataplane),
-- which is asked for its text and appended.
local async = require("prisn.async")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local metrics = require("prisn.metrics")

return {
  { method = "GET", pattern = "/metrics", auth = "view", handler = function(req)
    if not auth.allows_namespace(req.token, "*") then
      api.fail(403, "forbidden", "the metrics cover every namespace: they need a cluster-wide token",
        "scrape with a token made by 'prisn token create NAME --role view --namespace \"*\"'")
    end
    local text = req.server.metrics_registry:render()
    local dp = req.server.dataplane
    if dp then text = text .. async.wait(function(cb) dp:metrics(cb) end) end
    return 200, text, { ["Content-Type"] = metrics.CONTENT_TYPE }
  end },
}
