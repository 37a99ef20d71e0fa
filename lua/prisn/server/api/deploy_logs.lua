-- Deployment logs: GET /api/v1/namespaces/{ns}/deployments/{name}/logs.
--
-- The output of a deployment's instances (prisn.deploy_logs), merged in
-- time order and streamed as NDJSON, one line of output per JSON line:
--
--   {"instance":"api-3","stream":"stdout","time_ms":1795718760123,"data":"GET / 200\n"}
--
-- Query: since (a duration back from now like 1h, or an ISO 8601 time),
-- tail (the last N lines, after merging), instance (a number: only that
-- instance), follow=1 (then keep sending new lines, polled every 100 ms,
-- including instances created later, until the client goes away, the
-- deployment is deleted or the server stops; the last line is then
-- {"end":true,"reason":"deleted"|"server_stopping"}).
local uv = require("luv")
local deploy_logs = require("prisn.deploy_logs")
local api = require("prisn.server.api")
local deployments = require("prisn.store.deployments")

-- Whether the deployment still exists is checked every this many polls.
local CHECK_EVERY = 10

local function options(req)
  local opts, err, hint = deploy_logs.options(req.query)
  if not opts then api.fail(400, "bad_request", err, hint) end
  return opts
end

local function find(req)
  local ns, name = req.params.ns, req.params.name
  if not deployments.valid_name(name) or not deployments.get(req.server.db, ns, name) then
    api.fail(404, "not_found", string.format("deployment '%s' not found in namespace '%s'", name, ns),
      "list the deployments with 'prisn get deploy -n " .. ns .. "'")
  end
end

-- 404 for an instance the deployment never had (neither a record nor a log).
local function check_instance(req, number)
  local ns, name = req.params.ns, req.params.name
  if uv.fs_stat(deploy_logs.instance_path(req.server.home, ns, name, number)) then return end
  local names = {}
  local seen = {}
  for _, inst in ipairs(deployments.instances(req.server.db, ns, name)) do
    if inst.number == number then return end
    seen[inst.number] = true
    names[#names + 1] = deploy_logs.instance_name(name, inst.number)
  end
  for _, inst in ipairs(deploy_logs.instances(req.server.home, ns, name)) do
    if not seen[inst.number] then names[#names + 1] = deploy_logs.instance_name(name, inst.number) end
  end
  api.fail(404, "not_found", string.format("deployment '%s' has no instance %s", name,
    deploy_logs.instance_name(name, number)),
    #names > 0 and ("its instances with logs or records: " .. table.concat(names, ", "))
      or "the deployment has no instances yet")
end

local function stream_logs(req, opts)
  local server, ns, name = req.server, req.params.ns, req.params.name
  local follower = deploy_logs.follower(server.home, ns, name, { instance = opts.instance })
  return api.log_stream(server, {
    follow = opts.follow,
    poll = function(final) return follower:poll(final) end,
    first = function(lines) return deploy_logs.select(lines, opts) end,
    keep = function(l) return not opts.since or l.time_ms >= opts.since end,
    encode = function(l) return { instance = l.instance, stream = l.stream, time_ms = l.time_ms, data = l.data } end,
    tick = function(polls)
      if polls % CHECK_EVERY == 0 and not deployments.get(server.db, ns, name) then return "deleted" end
    end,
  })
end

return {
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/deployments/{name}/logs", auth = "view",
    handler = function(req)
      find(req)
      local opts = options(req)
      if opts.instance then check_instance(req, opts.instance) end
      return 200, stream_logs(req, opts)
    end },
}
