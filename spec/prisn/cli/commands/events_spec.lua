-- `prisn events`, parsed as from a command line and run against a fake
-- prisn.client: the request it makes, the table it prints, -o json, and the
-- usage errors it raises before asking the server anything.
local clock = require("prisn.clock")
local cli = require("prisn.cli")
local declaration = require("prisn.cli.declaration")
local errors = require("prisn.error")
local output = require("prisn.output")
local parse = require("prisn.cli.parse")
local commands = require("prisn.cli.commands.events")

local root = { name = "prisn", summary = "s", flags = cli.GLOBAL_FLAGS, subcommands = commands }

describe("prisn events", function()
  local saved_client, requests, answer

  before_each(function()
    saved_client = package.loaded["prisn.client"]
    requests, answer = {}, { items = output.array({}) }
    package.loaded["prisn.client"] = {
      namespace = function(ctx) return ctx.globals.namespace or "default" end,
      connect = function()
        return { request = function(_, method, path)
          requests[#requests + 1] = method .. " " .. path
          return answer
        end }
      end,
    }
  end)

  after_each(function()
    package.loaded["prisn.client"] = saved_client
  end)

  -- Runs `prisn <words>`; returns the exit status and what it printed.
  local function run(words)
    local parsed = parse.parse(root, words)
    local buffer = {}
    local stdout = { write = function(_, s) buffer[#buffer + 1] = s end }
    local ctx = { args = parsed.args, flags = parsed.flags, globals = parsed.globals, command = parsed.command,
      path = parsed.path, out = output.writer({ format = parsed.globals.output, stdout = stdout }) }
    local status = parsed.command.handler(ctx)
    return status, table.concat(buffer)
  end

  local function usage_error(words)
    local ok, err = pcall(run, words)
    assert.is_false(ok)
    assert.is_true(errors.is(err), tostring(err))
    assert.equal("usage", err.code)
    assert.same({}, requests)
    return err
  end

  it("is a valid, documented command", function()
    assert.same({ true }, { declaration.check(commands[1]) })
    assert.truthy(commands[1].description)
    for _, ex in ipairs(commands[1].examples) do assert.truthy(ex[1]:find("prisn events", 1, true) == 1) end
  end)

  it("asks for the default namespace's newest 100 events", function()
    local status, out = run({ "events" })
    assert.equal(0, status)
    assert.same({ "GET /api/v1/namespaces/default/events?limit=100" }, requests)
    assert.equal("No events found in namespace 'default'.\n", out)
  end)

  it("passes since, for, action and limit, escaped, to the namespace asked for", function()
    run({ "events", "-n", "ops", "--since", "1h30m", "--for", "job/01kaxq3v2m7r", "--action", "job.",
      "--limit", "5" })
    assert.same({ "GET /api/v1/namespaces/ops/events?limit=5&since=1h30m&for=job%2F01kaxq3v2m7r&action=job." },
      requests)
    requests = {}
    run({ "events", "--since", "2026-11-26T18:46:00+02:00" })
    assert.same({ "GET /api/v1/namespaces/default/events?limit=100&since=2026-11-26T18%3A46%3A00%2B02%3A00" },
      requests)
  end)

  it("asks the cluster-wide route with -A", function()
    run({ "events", "-A" })
    assert.same({ "GET /api/v1/events?limit=100" }, requests)
  end)

  it("prints a table with local short times, NAMESPACE only with -A", function()
    local now = os.time()
    local ms = (now - 60) * 1000
    answer = { items = output.array({
      { id = "01kaxq3v2m7r", time = clock.iso_time(ms), namespace = "a", actor = "token:dev",
        action = "job.created", object = "job/01kaxq3v2m7r", message = "backup.py queued" },
      { id = "01kaxq3v2m7s", time = clock.iso_time(ms), namespace = output.null, actor = "system",
        action = "server.started", object = output.null, message = output.null },
    }) }
    local shown = os.date("%H:%M:%S", now - 60)
    if os.date("%Y-%m-%d", now - 60) ~= os.date("%Y-%m-%d", now) then shown = os.date("%b %d %H:%M:%S", now - 60) end
    local _, out = run({ "events" })
    assert.equal(output.render(output.array({
      { time = shown, actor = "token:dev", action = "job.created", object = "job/01kaxq3v2m7r",
        message = "backup.py queued" },
      { time = shown, actor = "system", action = "server.started", object = output.null, message = output.null },
    }), "text", { columns = {
      { key = "time", header = "TIME" }, { key = "actor", header = "ACTOR" }, { key = "action", header = "ACTION" },
      { key = "object", header = "OBJECT" }, { key = "message", header = "MESSAGE" } } }), out)
    assert.matches("^TIME +ACTOR +ACTION +OBJECT +MESSAGE\n", out)
    _, out = run({ "events", "-A" })
    assert.matches("^TIME +NAMESPACE +ACTOR +ACTION +OBJECT +MESSAGE\n", out)
  end)

  it("shows older days with the date", function()
    answer = { items = output.array({ { id = "01kaxq3v2m7r", time = "2001-02-03T04:05:06.000Z", namespace = "a",
      actor = "system", action = "job.started", object = "job/1", message = output.null } }) }
    local _, out = run({ "events" })
    assert.truthy(out:find(os.date("%Y-%m-%d %H:%M", 981173106), 1, true), out)
  end)

  it("emits the API's events as JSON", function()
    answer = { items = output.array({ { id = "01kaxq3v2m7r", time = "2026-11-26T18:46:00.000Z", namespace = "a",
      actor = "system", action = "job.started", object = "job/1", message = output.null } }) }
    local _, out = run({ "events", "-o", "json" })
    assert.equal(output.render(answer.items, "json"), out)
    answer = { items = output.array({}) }
    _, out = run({ "events", "-o", "json" })
    assert.equal("[]\n", out)
  end)

  it("refuses a bad since, for or limit before asking the server", function()
    local err = usage_error({ "events", "--since", "soon" })
    assert.equal("--since: 'soon' is neither a duration (like 30m, 1h, 7d) nor a time (like 2026-11-26T18:46:00Z)",
      err.message)
    err = usage_error({ "events", "--for", "01kaxq3v2m7r" })
    assert.equal("--for: '01kaxq3v2m7r' is not KIND/NAME", err.message)
    err = usage_error({ "events", "--limit", "0" })
    assert.equal("--limit must be from 1 to 1000, got 0", err.message)
  end)

  it("lets the client's error through when the server refuses", function()
    package.loaded["prisn.client"] = { namespace = function() return "ops" end, connect = function()
      return { request = function() errors.raise("forbidden", "this token may not read namespace 'ops'") end }
    end }
    local ok, err = pcall(run, { "events", "-n", "ops" })
    assert.is_false(ok)
    assert.equal("forbidden", err.code)
  end)
end)
