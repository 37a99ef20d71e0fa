-- A small system in one file: an HTTP API with 2 replicas, a worker, and a
-- nightly report. `prisn deploy -f prisn.lua` creates or updates all three;
-- run it again after a change and only what changed gets a new revision.
-- The manifest is Lua evaluated in a sandbox: os.getenv is there, so one
-- file serves several machines (docs/MANIFEST.md).
local port = tonumber(os.getenv("API_PORT") or "8080")

deployment {
  name = "shop-api",
  script = "api.py",
  port = port,
  replicas = 2,
  env = { GREETING = "hello" },
  health = { http = "/healthz", interval = "2s", start_grace = "10s" },
}

deployment {
  name = "shop-worker",
  script = "worker.py",
  replicas = 1,
  env = { INTERVAL = 5 },
  health = "none",
  restart = "always",
}

cron {
  name = "shop-report",
  script = "report.sh",
  every = "day at 06:00",
  timezone = "UTC",
  timeout = "5m",
}
