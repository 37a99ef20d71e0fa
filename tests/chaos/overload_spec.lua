-- Overload: jobs submitted ten times faster than the server runs them. Once
-- its queue bound is reached the server answers 429 with Retry-After, the
-- queue never grows past the bound, /health keeps answering within
-- DEADLINE_MS, and every job it accepted runs to the end, once.
--
-- The server runs RUNNING jobs at once, each sleeping JOB_S seconds: it
-- finishes RUNNING / JOB_S jobs a second, and is offered ten times that.
-- PRISN_CHAOS_LONG=1: a minute of it instead of 6 s. Figures are printed.
local h = require("e2e.helper")
local wire = require("chaos.http_client")
local uv = require("luv")
local cjson = require("cjson")

local LONG = os.getenv("PRISN_CHAOS_LONG") == "1"
local DEADLINE_MS = 500
local RUNNING, JOB_S, MAX_QUEUED = 2, 0.2, 20
local RATE = 10 * RUNNING / JOB_S -- submissions a second
local SECONDS = LONG and 60 or 6

local function say(fmt, ...)
  io.stdout:write(string.format("[overload] " .. fmt .. "\n", ...))
  io.stdout:flush()
end

local function queue_depth(s)
  local r = wire.request(s.unix, wire.format("GET", "/metrics", { token = s.admin }))
  local body = r.responses[1] and r.responses[1].body or ""
  return tonumber(body:match("\nprisn_queue_depth (%d+)"))
end

describe("overload at ten times the job rate", function()
  local s

  after_each(function()
    if s then h.stop_server(s.env) end
    s = nil
    h.cleanup()
  end)

  it("answers 429 past the queue bound, stays responsive and loses no accepted job", function()
    s = wire.start_server(h, { PRISN_MAX_RUNNING_JOBS = tostring(RUNNING),
      PRISN_MAX_QUEUED_JOBS = tostring(MAX_QUEUED) })
    -- Uploaded as a bundle: an edit token's job runs a bundle, never a path
    -- on the server (admission).
    local dir = h.tempdir("prisn-overload")
    h.write(dir .. "/work.sh", string.format("#!/bin/sh\nsleep %g\necho done\n", JOB_S),
      tonumber("755", 8))
    local token = wire.token(h, s, "load", "edit", "load")
    local submit = wire.format("POST", "/api/v1/namespaces/load/jobs", { token = token,
      body = cjson.encode({ bundle = wire.upload(s.tcp, token, dir), entry = "work.sh" }) })

    local accepted, statuses, retry_after_missing, in_flight = {}, {}, 0, 0
    local max_depth, health_max_ms, health_n, health_failures = 0, 0, 0, {}
    local t0 = uv.now()
    local submitting = true
    local ticker = uv.new_timer()
    local sent = 0
    -- Paced: one submission every 1000/RATE ms, whatever the answers take.
    ticker:start(0, math.floor(1000 / RATE), function()
      if uv.now() - t0 >= SECONDS * 1000 then
        submitting = false
        ticker:stop()
        return
      end
      sent = sent + 1
      in_flight = in_flight + 1
      wire.start(s.tcp, submit, { timeout_ms = 5000 }, function(r)
        in_flight = in_flight - 1
        local status = r.status or (r.timed_out and "timeout") or "closed"
        statuses[status] = (statuses[status] or 0) + 1
        if r.status == 201 then
          accepted[#accepted + 1] = cjson.decode(r.responses[1].body).id
        elseif r.status == 429 and r.responses[1].headers["retry-after"] ~= "1" then
          retry_after_missing = retry_after_missing + 1
        end
      end)
    end)
    -- /health every 100 ms over TCP, and the queue's depth from /metrics.
    local prober = uv.new_timer()
    local probing = false
    prober:start(100, 100, function()
      if probing then return end
      probing = true
      wire.start(s.tcp, wire.format("GET", "/health"), { timeout_ms = 3000 }, function(r)
        probing = false
        health_n = health_n + 1
        health_max_ms = math.max(health_max_ms, r.ms)
        if r.status ~= 200 or r.ms > DEADLINE_MS then
          health_failures[#health_failures + 1] = string.format("%s after %.0f ms", tostring(r.status), r.ms)
        end
      end)
    end)
    local depth_timer = uv.new_timer()
    depth_timer:start(250, 250, function()
      wire.start(s.unix, wire.format("GET", "/metrics", { token = s.admin }), { timeout_ms = 3000 }, function(r)
        local d = r.responses[1] and tonumber(r.responses[1].body:match("\nprisn_queue_depth (%d+)"))
        if d then max_depth = math.max(max_depth, d) end
      end)
    end)
    wire.wait(function() return not submitting and in_flight == 0 end, SECONDS * 1000 + 10000)
    local submit_s = (uv.now() - t0) / 1000

    -- Every accepted job ends, and ends well.
    local pending = true
    local drain_deadline = uv.now() + (MAX_QUEUED + RUNNING) * JOB_S * 1000 * 5 + 10000
    while pending and uv.now() < drain_deadline do
      pending = (queue_depth(s) or 1) > 0
      if not pending then
        local _, list = wire.api(s.unix, "GET", "/api/v1/namespaces/load/jobs?limit=0", s.admin)
        for _, job in ipairs(list.items) do
          if job.state == "queued" or job.state == "running" or job.state == "pending" then pending = true end
        end
      end
      if pending then wire.wait(function() return false end, 200) end
    end
    prober:close(); depth_timer:close(); ticker:close()
    local _, list = wire.api(s.unix, "GET", "/api/v1/namespaces/load/jobs?limit=0", s.admin)
    local by_id, states = {}, {}
    for _, job in ipairs(list.items) do
      by_id[job.id] = job
      states[job.state] = (states[job.state] or 0) + 1
    end
    local lost = 0
    for _, id in ipairs(accepted) do
      if not by_id[id] or by_id[id].state ~= "succeeded" then lost = lost + 1 end
    end

    local codes = {}
    for status, n in pairs(statuses) do codes[#codes + 1] = string.format("%s: %d", tostring(status), n) end
    table.sort(codes)
    say("%d submissions in %.1f s (%d/s offered, %d/s capacity): %s", sent, submit_s, RATE, RUNNING / JOB_S,
      table.concat(codes, ", "))
    say("queue bound %d: deepest seen %d; %d accepted, %d recorded, %d not succeeded", MAX_QUEUED, max_depth,
      #accepted, #list.items, lost)
    say("/health: %d probes, max latency %.1f ms, %d over %d ms or failed", health_n, health_max_ms,
      #health_failures, DEADLINE_MS)

    assert.is_true((statuses[429] or 0) > 0, "the queue bound was reached")
    assert.equal(0, retry_after_missing, "every 429 says Retry-After: 1")
    assert.same({ 201, 429 }, (function()
      local seen = {}
      for status in pairs(statuses) do seen[#seen + 1] = status end
      table.sort(seen, function(a, b) return tostring(a) < tostring(b) end)
      return seen
    end)())
    assert.is_true(max_depth <= MAX_QUEUED, "the queue stayed bounded")
    assert.same({}, health_failures)
    assert.is_true(health_n >= SECONDS * 5, "/health was probed throughout")
    assert.equal(#accepted, #list.items, "a refused submission records nothing")
    assert.equal(0, lost, "every accepted job finished, succeeded")
    assert.same({ succeeded = #accepted }, states)
  end)
end)
