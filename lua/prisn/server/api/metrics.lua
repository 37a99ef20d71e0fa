-- /metrics: the Prometheus text exposition of the server's metrics.
local metrics = require("prisn.metrics")

return {
  { method = "GET", pattern = "/metrics", auth = "view", handler = function(req)
    return 200, req.server.metrics_registry:render(), { ["Content-Type"] = metrics.CONTENT_TYPE }
  end },
}
