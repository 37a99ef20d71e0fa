-- Chaos: `kill -9` of the server at random instants (a fixed seed, so a run
-- can be repeated: PRISN_CHAOS_SEED) while jobs are submitted and services
-- run, and a restart each time. Before some kills the server stalls first
-- (SIGSTOP: reports pile up unread), or the old job host's runners that do
-- not hold a job yet are held back until the new server has recovered (a
-- busy machine), or a service instance dies while the server is down.
--
-- Each job's script appends its tag to one file, so what ran is counted:
--   lost        jobs accepted (201) or recorded that never ran (and any
--               of them that did not succeed is counted as failed)
--   duplicated  jobs that ran more than once
--   stuck       jobs not finished within a deadline after the last restart
-- all three must be 0. Every instance is re-adopted or restarted at each
-- recovery and runs at the end (with its limits, where cgroups work). After
-- `delete` and `server stop`, no process of the test's PRISN_HOME (by
-- environ or cgroup) and no cgroup of it are left.
--
-- About a minute; PRISN_CHAOS_LONG=1 for many more kills.
local h = require("e2e.helper")
local read, write, alive = h.read, h.write, h.alive
local sleep, wait_for, stat_fields = h.sleep, h.wait_for, h.stat_fields
local cjson = require("cjson")
local uv = require("luv")

local LONG = os.getenv("PRISN_CHAOS_LONG") == "1"
local KILLS = LONG and 300 or 40
local SEED = tonumber(os.getenv("PRISN_CHAOS_SEED") or "") or 20261207
local BURST = 6          -- jobs submitted at once before each kill
local DEADLINE_MS = 30000 -- for every job to finish after the last restart

local function all_pids()
  local list = {}
  for _, entry in ipairs(require("prisn.fs").list_dir("/proc")) do
    local pid = entry.name:match("^%d+$") and tonumber(entry.name)
    if pid then list[#list + 1] = pid end
  end
  return list
end

-- Why cgroup limits are not part of the run here, or nil.
local function no_cgroups_reason()
  if uv.getuid() ~= 0 then return "not root" end
  local layout = require("prisn.core.cgroup").detect()
  for _, c in ipairs({ "memory", "cpu" }) do
    if not layout or not layout[c] then return "no cgroup hierarchy carries " .. c end
  end
  return nil
end

describe("chaos: kill -9 of the server", function()
  local env, home, dir

  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("loses, duplicates and strands no job, and leaves nothing behind", function()
    math.randomseed(SEED)
    env = h.env({ PRISN_MAX_RUNNING_JOBS = "8", PRISN_STOP_GRACE_SECONDS = "2" })
    home = env.PRISN_HOME
    dir = h.tempdir("prisn-chaos")
    local out = dir .. "/ran"
    write(out, "")
    local job_script = write(dir .. "/job.sh", "echo \"$1\" >> " .. out .. "\n")
    write(dir .. "/svc.sh", "while :; do echo tick; sleep 0.5; done\n")
    local cgroups_reason = no_cgroups_reason()
    io.stderr:write("  [chaos/kill9] seed " .. SEED .. (LONG and ", long" or "") .. "; service limits: "
      .. (cgroups_reason and ("off (" .. cgroups_reason .. ")") or "cgroups") .. "\n")

    local function prisn(args)
      local r = h.prisn(args, { env = env })
      assert.equal(0, r.code, table.concat(args, " ") .. ": " .. r.stderr)
      return r
    end
    local function server_pid()
      local info = read(home .. "/server.json")
      return info and math.tointeger(cjson.decode(info).pid)
    end

    prisn({ "server", "start", "-q" })
    local token = assert(read(home .. "/admin.token")):match("%S+")
    local socket = home .. "/prisn.sock"
    local limits = cgroups_reason and {} or { "--cpu", "0.5", "--memory", "64M" }
    local web = { "deploy", dir .. "/svc.sh", "--name", "web", "-r", "2", "--isolation", "0" }
    for _, a in ipairs(limits) do web[#web + 1] = a end
    prisn(web)
    prisn({ "deploy", dir .. "/svc.sh", "--name", "worker", "--isolation", "0" })
    local INSTANCES = 3

    -- Submissions, straight over the socket so that a burst is in flight
    -- at once: tag -> job id once the server said 201.
    local accepted, submitted, in_flight, refused = {}, 0, 0, 0
    local function submit(tag)
      submitted = submitted + 1
      in_flight = in_flight + 1
      local pipe = uv.new_pipe(false)
      local chunks = {}
      local function done()
        if pipe:is_closing() then return end
        pipe:close()
        in_flight = in_flight - 1
        local resp = table.concat(chunks)
        local status = tonumber(resp:match("^HTTP/1%.1 (%d+)"))
        if status == 201 then
          accepted[tag] = assert(resp:match('"id":%s*"(%w+)"'), resp)
        elseif status then
          refused = refused + 1
        end
      end
      pipe:connect(socket, function(err)
        if err then return done() end
        local body = cjson.encode({ script = job_script, args = { tag }, isolation = 0 })
        pipe:write(string.format("POST /api/v1/namespaces/default/jobs HTTP/1.1\r\nHost: prisn\r\n"
          .. "Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
          .. "Connection: close\r\n\r\n%s", token, #body, body))
        pipe:read_start(function(rerr, data)
          if data and not rerr then
            chunks[#chunks + 1] = data
            local resp = table.concat(chunks)
            local head, rest = resp:match("^(.-\r\n\r\n)(.*)$")
            local length = head and tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)"))
            if length and #rest >= length then done() end
          else
            done()
          end
        end)
      end)
    end

    -- The old job host's forks that hold no job yet (its group, not yet
    -- in a session of their own).
    local function host_forks()
      local host = tonumber(read(home .. "/run/job-host.pid") or "")
      local list = {}
      if not host then return list end
      for _, pid in ipairs(all_pids()) do
        local f = stat_fields(pid)
        if f and tonumber(f[3]) == host and pid ~= host and f[1] ~= "Z" then list[#list + 1] = pid end
      end
      return list
    end

    local function instance_pids()
      local pids = {}
      for _, inst in ipairs(cjson.decode(prisn({ "get", "instances", "-o", "json" }).stdout)) do
        if inst.pid then pids[#pids + 1] = math.tointeger(inst.pid) end
      end
      return pids
    end

    local kills, stalls, held_back, instances_killed, n = 0, 0, 0, 0, 0
    local started = uv.now()
    for k = 1, KILLS do
      local held = {}
      if math.random() < 0.3 then
        -- The machine holds the job host's idle runner back: the next job is
        -- handed to it, and it goes on only once a new server has recovered.
        if #host_forks() == 0 then
          n = n + 1
          submit("j" .. n)
          wait_for(function() return #host_forks() > 0 end, 1000)
        end
        held = host_forks()
        for _, p in ipairs(held) do uv.kill(p, "sigstop") end
        held_back = held_back + #held
      end
      for _ = 1, BURST do
        n = n + 1
        submit("j" .. n)
      end
      -- A random instant, with submissions going on: some are in flight
      -- when the server dies (refused, or accepted and the answer lost).
      local until_ms = uv.now() + math.random(0, 150)
      while uv.now() < until_ms do
        n = n + 1
        submit("j" .. n)
        sleep(math.random(0, 25))
      end
      local pid = server_pid()
      if math.random() < 0.3 then
        -- The server stalls first: runners' reports wait unread in the pipe.
        uv.kill(pid, "sigstop")
        stalls = stalls + 1
        sleep(math.random(5, 60))
      end
      uv.kill(pid, "sigkill")
      kills = kills + 1
      assert.is_true(wait_for(function() return not alive(pid) end), "the server survived SIGKILL")
      if math.random() < 0.3 then
        -- An instance dies while nobody watches.
        local victims = {}
        local ok_open, db = pcall(require("prisn.store").open, home)
        if ok_open then
          for _, name in ipairs({ "web", "worker" }) do
            for _, row in ipairs(require("prisn.store.deployments").instances(db, "default", name)) do
              victims[#victims + 1] = row.pid and math.tointeger(row.pid)
            end
          end
          db:close()
        end
        local victim = victims[math.random(1, math.max(1, #victims))]
        if victim and alive(victim) then
          uv.kill(-victim, "sigkill")
          instances_killed = instances_killed + 1
        end
      end
      prisn({ "server", "start", "-q" })
      -- Held back until the new server has recovered: then they go on.
      for _, p in ipairs(held) do uv.kill(p, "sigcont") end
      if k < KILLS then sleep(math.random(50, 400)) end
    end
    -- A last burst into the server that stays.
    for _ = 1, BURST do
      n = n + 1
      submit("j" .. n)
    end
    assert.is_true(wait_for(function() return in_flight == 0 end, 10000), "submissions never answered")

    -- Every job of the server (accepted or not: a 201 lost with the server)
    -- finished by the deadline.
    local all
    local function unfinished()
      local r = h.prisn({ "get", "jobs", "--limit", "0", "-o", "json" }, { env = env })
      assert.equal(0, r.code, r.stderr)
      all = cjson.decode(r.stdout)
      local list = {}
      for _, j in ipairs(all) do
        if j.state ~= "succeeded" and j.state ~= "failed" then list[#list + 1] = j end
      end
      return list
    end
    wait_for(function() return #unfinished() == 0 end, DEADLINE_MS)
    local stuck = unfinished()
    local counts = {}
    for line in (read(out) or ""):gmatch("[^\n]+") do counts[line] = (counts[line] or 0) + 1 end
    local by_id = {}
    for _, j in ipairs(all) do by_id[j.id] = j end
    -- Lost: accepted, or recorded (an answer lost with the server), and
    -- never ran.
    local lost, duplicated, n_accepted, failures = {}, {}, 0, {}
    local to_check = {}
    for tag, id in pairs(accepted) do
      n_accepted = n_accepted + 1
      to_check[id] = tag
    end
    for _, j in ipairs(all) do to_check[j.id] = j.args and j.args[1] or to_check[j.id] end
    for id, tag in pairs(to_check) do
      local j = by_id[id]
      if (counts[tag] or 0) == 0 then lost[#lost + 1] = tag .. "=" .. id .. ":" .. (j and j.state or "missing") end
      if j and j.state == "failed" then failures[#failures + 1] = id .. ":" .. tostring(j.reason) end
    end
    for tag, c in pairs(counts) do
      if c > 1 then duplicated[#duplicated + 1] = tag .. "x" .. c end
    end
    local states = {}
    for _, j in ipairs(all) do
      local key = j.state .. "/" .. tostring(j.reason)
      states[key] = (states[key] or 0) + 1
    end
    local state_list = {}
    for key, c in pairs(states) do state_list[#state_list + 1] = key .. " " .. c end
    table.sort(state_list)

    -- Recovery lines: every restart re-adopted or restarted every instance.
    local recoveries = {}
    local log = read(home .. "/server.log") or ""
    for a, r in log:gmatch("recovery: (%d+) instance%(s%) re%-adopted, (%d+) restarted") do
      recoveries[#recoveries + 1] = { tonumber(a), tonumber(r) }
    end
    local adopted, restarted = 0, 0
    for _, rec in ipairs(recoveries) do adopted, restarted = adopted + rec[1], restarted + rec[2] end
    local running = 0
    wait_for(function()
      running = 0
      for _, inst in ipairs(cjson.decode(prisn({ "get", "instances", "-o", "json" }).stdout)) do
        if inst.state == "running" then running = running + 1 end
      end
      return running == INSTANCES
    end, 15000)

    io.stderr:write(string.format("  [chaos/kill9] %d kills (%d after a stall, %d runners held back, %d instances "
      .. "killed meanwhile) in %.1f s; jobs: %d submitted, %d accepted, %d refused, %d recorded; lost %d, "
      .. "duplicated %d, stuck %d, failed %d\n", kills, stalls, held_back, instances_killed,
      (uv.now() - started) / 1000, submitted, n_accepted, refused, #all, #lost, #duplicated, #stuck, #failures))
    io.stderr:write("  [chaos/kill9] job states: " .. table.concat(state_list, ", ") .. "\n")
    io.stderr:write(string.format("  [chaos/kill9] instances at %d recoveries: %d re-adopted, %d restarted; "
      .. "%d/%d running at the end\n", #recoveries, adopted, restarted, running, INSTANCES))

    assert.same({}, lost, "lost jobs")
    assert.same({}, duplicated, "jobs that ran more than once")
    assert.equal(0, #stuck, "jobs not finished " .. DEADLINE_MS .. " ms after the last restart")
    assert.same({}, failures, "accepted jobs that did not succeed")
    assert.equal(kills, #recoveries, "a restart without instance recovery")
    for i, rec in ipairs(recoveries) do
      assert.equal(INSTANCES, rec[1] + rec[2], "recovery " .. i .. " left instances out")
    end
    assert.equal(INSTANCES, running, "instances running at the end")
    if not cgroups_reason then
      assert.is_nil((read(home .. "/server.log") or ""):find("not enforced", 1, true), "a limit was not enforced")
    end

    -- The end: nothing of this home may be left.
    local tag = require("prisn.core.crypto").to_hex(require("prisn.core.crypto").hash(home)):sub(1, 8)
    local last_pids = instance_pids()
    prisn({ "delete", "deploy", "web", "--yes" })
    prisn({ "delete", "deploy", "worker", "--yes" })
    prisn({ "server", "stop" })
    local orphans = {}
    local function scan()
      orphans = {}
      for _, pid in ipairs(all_pids()) do
        local f = stat_fields(pid)
        if f and f[1] ~= "Z" then
          local environ = read("/proc/" .. pid .. "/environ") or ""
          local cgroup = read("/proc/" .. pid .. "/cgroup") or ""
          if environ:find("PRISN_HOME=" .. home .. "\0", 1, true) or cgroup:find("svc-" .. tag .. "-", 1, true) then
            orphans[#orphans + 1] = pid .. " " .. (read("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
          end
        end
      end
      return #orphans == 0
    end
    wait_for(scan, 3000)
    for _, p in ipairs(last_pids) do
      if alive(p) then orphans[#orphans + 1] = p .. " (an instance)" end
    end
    local leftovers = {}
    local layout = require("prisn.core.cgroup").detect() or {}
    local mounts = {}
    for _, c in ipairs({ "memory", "cpu", "pids", "cpuacct" }) do
      local mount = layout[c] and layout[c].mount
      if mount and not mounts[mount] then
        mounts[mount] = true
        for _, entry in ipairs(require("prisn.fs").list_dir(mount .. "/prisn")) do
          if entry.name:find("svc-" .. tag .. "-", 1, true) == 1 or (entry.name:match("^job%-(%w+)$")
            and by_id[entry.name:match("^job%-(%w+)$")]) then
            leftovers[#leftovers + 1] = mount .. "/prisn/" .. entry.name
          end
        end
      end
    end
    io.stderr:write(string.format("  [chaos/kill9] after delete and stop: %d orphan process(es), %d leftover "
      .. "cgroup(s)\n", #orphans, #leftovers))
    -- Whatever is left is killed by pid, so a failure leaves nothing either.
    for _, o in ipairs(orphans) do uv.kill(tonumber(o:match("^%d+")), "sigkill") end
    assert.same({}, orphans, "orphan processes")
    assert.same({}, leftovers, "leftover cgroups")
  end)
end)
