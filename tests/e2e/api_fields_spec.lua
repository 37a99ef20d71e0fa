-- Every number and duration the API takes, against the real server: NaN,
-- infinity, negative, huge, fractional where a whole number is meant, and
-- the wrong type each get 422 naming the field and its range (400 for what
-- is not JSON at all: NaN and Infinity literals), and nothing is stored.
-- HTTP versions other than 1.0 and 1.1 get 505.
local h = require("e2e.helper")
local wire = require("chaos.http_client")
local cjson = require("cjson")

-- JSON literals for the bad values (1e999 decodes to infinity).
local BAD_NUMBERS = { "-1", "1e308", "1e999", "-1e999", "2.5", "\"many\"", "true", "{}" }

describe("API numeric fields", function()
  local s, script

  setup(function()
    s = wire.start_server(h)
    local dir = h.tempdir("prisn-fields")
    assert(require("luv").fs_chmod(dir, tonumber("755", 8)))
    script = dir .. "/ok.sh"
    h.write(script, "#!/bin/sh\nexit 0\n", tonumber("755", 8))
  end)

  teardown(function()
    h.stop_server(s.env)
    h.cleanup()
  end)

  -- POSTs `json` (a string) and returns status, error message.
  local function post(path, json)
    local r = wire.request(s.tcp, wire.format("POST", path, { token = s.admin, body = json }))
    local ok, body = pcall(cjson.decode, r.responses[1] and r.responses[1].body or "")
    return r.status, ok and type(body) == "table" and body.error and body.error.message or nil
  end

  -- `base` is a valid body without the field; each bad value is spliced in
  -- as `"field": value`, or into `field` when it is a template with %s.
  local function refuses(path, base, field, expected, values)
    local template = field:find("%s", 1, true) and field or ('"' .. field .. '": %s')
    for _, literal in ipairs(values or BAD_NUMBERS) do
      local member = template:format(literal)
      local json = base == "{}" and ("{" .. member .. "}") or (base:gsub("}$", ", " .. member .. "}"))
      local status, message = post(path, json)
      assert.equal(422, status, member .. ": " .. tostring(message))
      assert.matches(expected, message, 1, false, member)
    end
  end

  local JOBS = "/api/v1/namespaces/default/jobs"
  local CRON = "/api/v1/namespaces/default/cronjobs"
  local DEPLOY = "/api/v1/namespaces/default/deployments"

  it("refuses bad numbers on jobs, cron jobs and deployments, naming the field and range", function()
    local job = string.format('{"script": "%s"}', script)
    local cron = string.format('{"script": "%s", "name": "c", "schedule": "0 0 1 1 *"}', script)
    local deploy = string.format('{"script": "%s", "name": "d", "replicas": 0}', script)
    local duration = { "-1", "1e308", "1e999", "0", "\"99999999999999999999d\"", "\"forever\"", "true" }
    for _, base in ipairs({ { JOBS, job }, { CRON, cron }, { DEPLOY, deploy } }) do
      local path, body = base[1], base[2]
      refuses(path, body, "timeout", "^timeout must be a duration from 1ms to 365d, like 30s, 5m or 1h30m, got ",
        duration)
      refuses(path, body, "grace", "^grace must be a duration from 1ms to 1h, like 30s, 5m or 1h30m, got ", duration)
      refuses(path, body, "memory", "^memory", { "-1", "1e308", "1e999", "2.5", "64", "\"9P\"", "true" })
      refuses(path, body, "cpu", "^cpu is a number of cores from 0%.01 to 1024, got ",
        { "-1", "1e308", "1e999", "0", "2000", "true" })
      refuses(path, body, "pids", "^pids must be a whole number from 1 to 4194304, got ",
        { "-1", "1e308", "1e999", "2.5", "0", "4194305" })
      refuses(path, body, "disk", "disk.* must be a size from 1M to 8P, got ",
        { "-1", "1e308", "1e999", "2.5", "\"lots\"", "\"9P\"", "true" })
    end
    refuses(CRON, cron, "keep_succeeded", "^keep_succeeded must be a whole number from 0 to 10000, got ")
    refuses(CRON, cron, "keep_failed", "^keep_failed must be a whole number from 0 to 10000, got ")
    refuses(DEPLOY, deploy, "port", "^port must be a whole number from 1 to 65535, got ")
    refuses(DEPLOY, (deploy:gsub(', "replicas": 0', "")), "replicas",
      "^replicas must be a whole number from 0 to 1000, got ")
    refuses(DEPLOY, deploy, "progress_deadline", "^progress_deadline must be a duration from 1ms to 1d, ", duration)
    refuses(DEPLOY, deploy, '"health": {"tcp": true, "interval": %s}', "^health: interval: ", duration)
    refuses(DEPLOY, deploy, '"health": {"tcp": true, "timeout": %s}', "^health: timeout: ", duration)
    refuses(DEPLOY, deploy, '"health": {"tcp": true, "start_grace": %s}', "^health: start_grace: ",
      { "-1", "1e308", "1e999", "\"2h\"" })
    refuses(DEPLOY, deploy, '"health": {"tcp": true, "failure_threshold": %s}', "^health: failure_threshold: "
      .. "expected a whole number from 1 to 1000, got ", { "-1", "1e308", "1e999", "2.5", "0" })

    -- NaN and Infinity are not JSON.
    for _, literal in ipairs({ "NaN", "Infinity", "-Infinity", "0x10" }) do
      local status = post(JOBS, (job:gsub("}$", ', "timeout": ' .. literal .. "}")))
      assert.equal(400, status, literal)
    end

    -- Nothing was stored.
    for _, path in ipairs({ JOBS, CRON, DEPLOY }) do
      local status, body = wire.api(s.tcp, "GET", path, s.admin)
      assert.equal(200, status)
      assert.same({}, body.items, path)
    end
  end)

  it("refuses bad numbers on scale, rollback and tokens", function()
    local status = wire.api(s.tcp, "POST", DEPLOY, s.admin, { script = script, name = "web", replicas = 0 })
    assert.equal(201, status)
    local scale = DEPLOY .. "/web/scale"
    for _, field in ipairs({ "replicas", "add", "remove" }) do
      refuses(scale, "{}", field, "^" .. field .. " must be a whole number from 0 to 1000, got ")
    end
    refuses(scale, "{}", "multiply", "^multiply must be a number from 0%.01 to 1000, got ",
      { "-1", "1e308", "1e999", "0", "\"2\"", "true" })
    refuses(scale, "{}", '"auto": {"min": %s}', "^auto%.min must be a whole number from 1 to 1000, got ")
    refuses(scale, "{}", '"auto": {"target_cpu": %s}', "^auto%.target_cpu must be a whole number from 1 to 100, got ")
    refuses(DEPLOY .. "/web/rollback", "{}", "revision", "^revision must be a whole number from 1 to ")
    refuses("/api/v1/tokens", '{"name": "t", "role": "view", "namespaces": ["a"]}', "expires_in",
      "^expires_in must be a duration from 1s to 3650d, like 30s, 5m or 1h30m, got ",
      { "-1", "1e308", "1e999", "0", "\"99999999999999999999d\"", "true" })
    local _, tokens = wire.api(s.tcp, "GET", "/api/v1/tokens", s.admin)
    assert.equal(1, #tokens.items, "no token was made")
    local _, web = wire.api(s.tcp, "GET", DEPLOY .. "/web", s.admin)
    assert.same({ 0, 1 }, { web.replicas, web.revision })
    -- A big but sane multiple stops at the most replicas there may be.
    wire.api(s.tcp, "POST", scale, s.admin, { replicas = 0 })
    local _, dry = wire.api(s.tcp, "POST", scale, s.admin, { add = 1, dry_run = true })
    assert.equal(1, dry.to)
  end)

  it("accepts the edges of each range", function()
    local status, job = wire.api(s.tcp, "POST", JOBS, s.admin, { script = script, timeout = "365d", grace = "1h",
      memory = "8P", cpu = 1024, pids = 4194304 })
    assert.equal(201, status, job and job.error and job.error.message)
    status = wire.api(s.tcp, "POST", "/api/v1/tokens", s.admin, { name = "t2", role = "view", namespaces = { "a" },
      expires_in = "3650d" })
    assert.equal(201, status)
  end)

  it("answers 505 to HTTP versions other than 1.0 and 1.1", function()
    for _, version in ipairs({ "9.9", "2.0", "1.2" }) do
      local r = wire.request(s.tcp, wire.format("GET", "/health", { version = version }))
      assert.equal(505, r.status, version)
      assert.equal("http_version_not_supported", cjson.decode(r.responses[1].body).error.code)
    end
    assert.equal(200, wire.request(s.tcp, wire.format("GET", "/health", { version = "1.0" })).status)
    assert.equal(200, wire.request(s.unix, wire.format("GET", "/health", { version = "1.1" })).status)
  end)
end)
