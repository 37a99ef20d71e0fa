-- One bad value, every way a workload spec comes in: the flags of `prisn
-- run`, `prisn deploy` and `prisn cron`, the API (POST .../jobs, POST
-- .../deployments, POST .../cronjobs) and a manifest (`prisn deploy -f`).
-- Each field is declared once (prisn.exec.workload), so each way refuses
-- the value with the same rule, naming the field as that way spells it
-- (--cpu, cpu, deployments[1].cpu), and nothing is stored.
local h = require("e2e.helper")
local wire = require("chaos.http_client")
local cjson = require("cjson")

-- field, value as a flag, as JSON, as Lua; the rule said of it; the hint
-- with the example spelled for flags, the API and a manifest.
local CASES = {
  { "cpu", "0", "0", "0", "is a number of cores from 0.01 to 1024, got 0",
    { "for half a core: --cpu 0.5", 'for half a core: "cpu": 0.5' } },
  { "pids", "0", "0", "0", "must be a whole number from 1 to 4194304, got 0",
    { "the script itself counts: --pids 100", 'the script itself counts: "pids": 100' } },
  { "isolation", "7", "7", "7", "must be 0, 1, 2 or 3, got 7",
    { "0 none, 1 process (default), 2 filesystem, 3 network",
      "0 none, 1 process (default), 2 filesystem, 3 network" } },
  { "memory", "64", "64", "64", "must be a size from 1M to 8P, got 64",
    { "sizes without a unit are bytes: write --memory 256M",
      'sizes without a unit are bytes: write "memory": "256M"' } },
  { "disk", "64", "64", "64", "must be a size from 1M to 8P, got 64",
    { "sizes without a unit are bytes: write --disk 100M", 'sizes without a unit are bytes: write "disk": "100M"' } },
}

describe("a workload field's bad value", function()
  local s, dir, script

  setup(function()
    s = wire.start_server(h)
    dir = h.tempdir("prisn-fields")
    assert(require("luv").fs_chmod(dir, tonumber("755", 8)))
    script = dir .. "/ok.sh"
    h.write(script, "#!/bin/sh\nexit 0\n", tonumber("755", 8))
  end)

  teardown(function()
    h.stop_server(s.env)
    h.cleanup()
  end)

  local function prisn(args)
    return h.prisn(args, { env = s.env })
  end

  -- POSTs `json` (a string) to `path`; returns status, error message, hint.
  local function post(path, json)
    local r = wire.request(s.tcp, wire.format("POST", path, { token = s.admin, body = json }))
    local ok, body = pcall(cjson.decode, r.responses[1] and r.responses[1].body or "")
    local err = ok and type(body) == "table" and body.error or {}
    return r.status, err.message, err.hint
  end

  local NS = "/api/v1/namespaces/default"

  it("gets the same rule from every command, the API and a manifest", function()
    for _, case in ipairs(CASES) do
      local field, flag_value, json_value, lua_value, rule, hints = table.unpack(case)
      local flag = { "--" .. field, flag_value }
      local expected = "Error: --" .. field .. " " .. rule .. "\nHint: " .. hints[1] .. "\n"
      for _, args in ipairs({ { "run", script }, { "deploy", script }, { "cron", script, "0 * * * *" } }) do
        local r = prisn({ args[1], flag[1], flag[2], table.unpack(args, 2) })
        assert.equal(2, r.code, args[1] .. " " .. flag[1] .. ": " .. r.stderr)
        assert.equal(expected, r.stderr, args[1] .. " " .. flag[1])
      end
      local bodies = {
        { NS .. "/jobs", string.format('{"script": "%s", "%s": %s}', script, field, json_value) },
        { NS .. "/deployments", string.format('{"script": "%s", "name": "web", "%s": %s}', script, field, json_value) },
        { NS .. "/cronjobs", string.format('{"script": "%s", "name": "c", "schedule": "0 0 1 1 *", "%s": %s}', script,
          field, json_value) },
      }
      for _, b in ipairs(bodies) do
        local status, message, hint = post(b[1], b[2])
        assert.equal(422, status, b[2])
        assert.equal(field .. " " .. rule, message, b[2])
        assert.equal(hints[2], hint, b[2])
      end
      local manifest = dir .. "/prisn.lua"
      h.write(manifest, string.format('\ndeployment { name = "web", script = "ok.sh", %s = %s }\n', field, lua_value))
      local r = prisn({ "deploy", "-f", manifest })
      assert.equal(1, r.code, r.stderr)
      assert.equal("Error: " .. manifest .. ":2: deployments[1]." .. field .. ": " .. rule
        .. "\nHint: the schema is in docs/MANIFEST.md\n", r.stderr)
    end
    -- Nothing was stored.
    for _, path in ipairs({ "/jobs", "/deployments", "/cronjobs" }) do
      local status, body = wire.api(s.tcp, "GET", NS .. path, s.admin)
      assert.equal(200, status)
      assert.same({}, body.items, path)
    end
  end)

  -- A deployment's ingress route (prisn deploy --host NAME --path /P; the
  -- API's and manifests' hostname and path).
  it("refuses a bad host name or path the same way from the flags, the API and a manifest", function()
    local cases = {
      { "--host", "api.example.com:80", "hostname", "must be a DNS host name like api.example.com (letters, digits, "
        .. "dashes; no port, at most 253), got \"api.example.com:80\"",
        { "the name clients put in Host:, e.g. --host api.example.com",
          'the name clients put in Host:, e.g. "hostname": "api.example.com"' } },
      { "--path", "/a/../b", "path", "must be a URL path starting with / (no .. segment, no spaces, at most 256 "
        .. "characters), got \"/a/../b\"",
        { "a prefix of the request paths it serves: --path /v1",
          'a prefix of the request paths it serves: "path": "/v1"' } },
    }
    for _, c in ipairs(cases) do
      local flag, value, field, rule, hints = table.unpack(c)
      local r = prisn({ "deploy", script, "--host", field == "path" and "ok.example.com" or value, "--path",
        field == "path" and value or "/" })
      assert.equal(2, r.code, r.stderr)
      assert.equal("Error: " .. flag .. " " .. rule .. "\nHint: " .. hints[1] .. "\n", r.stderr)
      local status, message, hint = post(NS .. "/deployments", cjson.encode({ script = script, name = "web",
        hostname = field == "path" and "ok.example.com" or value, path = field == "path" and value or nil }))
      assert.same({ 422, field .. " " .. rule, hints[2] }, { status, message, hint })
      local manifest = h.write(dir .. "/prisn.lua", string.format(
        '\ndeployment { name = "web", script = "ok.sh", hostname = "ok.example.com", %s = %q }\n', field, value))
      r = prisn({ "deploy", "-f", manifest })
      assert.equal(1, r.code, r.stderr)
      assert.equal("Error: " .. manifest .. ":2: deployments[1]." .. field .. ": " .. rule
        .. "\nHint: the schema is in docs/MANIFEST.md\n", r.stderr)
    end
    local status, message = post(NS .. "/deployments", cjson.encode({ script = script, name = "web", path = "/v1" }))
    assert.same({ 422, "path goes with hostname: the ingress routes by host name first" }, { status, message })
    local list_status, list = wire.api(s.tcp, "GET", NS .. "/deployments", s.admin)
    assert.same({ 200, {} }, { list_status, list.items })
  end)

  it("ties disk to the isolation level the same way everywhere", function()
    local r = prisn({ "run", "--disk", "10M", "--isolation", "1", script })
    assert.equal(2, r.code)
    assert.equal("Error: --disk needs isolation level 2 or 3, got --isolation 1\nHint: the size bound is a tmpfs in "
      .. "the workload's own root: use --isolation 2, or drop --isolation\n", r.stderr)
    local status, message, hint = post(NS .. "/jobs", string.format('{"script": "%s", "disk": "10M", "isolation": 1}',
      script))
    assert.same({ 422, "disk needs isolation level 2 or 3, got isolation 1",
      "the size bound is a tmpfs in the workload's own root: use \"isolation\": 2, or drop isolation" },
      { status, message, hint })
    local manifest = dir .. "/prisn.lua"
    h.write(manifest, 'deployment { name = "web", script = "ok.sh", disk = "10M", isolation = 1 }\n')
    r = prisn({ "deploy", "-f", manifest })
    assert.equal(1, r.code)
    assert.matches("^Error: " .. manifest:gsub("%p", "%%%0") .. ":1: deployments%[1%]%.disk: "
      .. "needs isolation level 2 or 3, got isolation 1\n", r.stderr)
  end)
end)
