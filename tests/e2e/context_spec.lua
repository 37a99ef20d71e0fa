-- Contexts from the outside: a real server in one PRISN_HOME (the "server
-- machine") and the CLI in another (a "client machine" with no server of
-- its own), switching between them with contexts and the environment.
local h = require("e2e.helper")
local read = h.read
local cjson = require("cjson")
local uv = require("luv")

describe("prisn context", function()
  -- address: the server's https://127.0.0.1:PORT; pinned: with its CA's
  -- fingerprint, as a client on another machine (client_home) names it.
  local server_env, server_home, client_env, client_home, address, pinned, edit_token

  local function on_server(args, opts)
    opts = opts or {}
    opts.env = server_env
    return h.prisn(args, opts)
  end

  -- Runs prisn on the client machine; `extra` adds (or, with false, removes)
  -- environment variables for this one run.
  local function on_client(args, extra, opts)
    local env = {}
    for k, v in pairs(client_env) do env[k] = v end
    for k, v in pairs(extra or {}) do env[k] = v or nil end
    opts = opts or {}
    opts.env = env
    return h.prisn(args, opts)
  end

  local function ok(r)
    assert.equal(0, r.code, r.stderr)
    return r
  end

  local function add_remote()
    ok(on_client({ "context", "add", "remote", "--server", pinned, "--token", edit_token,
      "--namespace", "ns-a" }))
  end

  before_each(function()
    server_env = h.env()
    server_home = server_env.PRISN_HOME
    ok(on_server({ "server", "start" }))
    local info = cjson.decode((assert(read(server_home .. "/server.json"))))
    address, pinned = info.address, info.address .. "#sha256=" .. info.ca_fingerprint
    edit_token = ok(on_server({ "token", "create", "t", "--role", "edit", "--namespace", "ns-a", "-q" }))
      .stdout:gsub("%s+$", "")
    assert.matches("^prisn_", edit_token)
    client_env = h.env()
    client_home = client_env.PRISN_HOME
  end)

  after_each(function()
    local info = read(server_home .. "/server.json")
    if info then
      local pid = math.tointeger(cjson.decode(info).pid)
      on_server({ "server", "stop", "--timeout", "5s" })
      if uv.kill(pid, 0) then uv.kill(pid, "sigkill") end
    end
    h.cleanup()
  end)

  it("talks to a remote server through the current context", function()
    -- The client machine has no server: without a context there is nothing to talk to.
    local none = on_client({ "status" })
    assert.equal(1, none.code)
    assert.equal("Error: no prisn server has been set up in " .. client_home .. "\n", none.stderr:match("^[^\n]*\n"))

    local added = ok(on_client({ "context", "add", "remote", "--server", pinned, "--token", edit_token,
      "--namespace", "ns-a" }))
    assert.equal("Context 'remote' added (" .. address .. ", namespace ns-a).\n"
      .. "Switch to it with 'prisn context use remote', or pass --context remote.\n", added.stdout)
    assert.equal(tonumber("600", 8), uv.fs_stat(client_home .. "/contexts.json").mode & tonumber("777", 8))
    assert.equal("local\n", ok(on_client({ "context", "current" })).stdout)

    assert.equal("Switched to context 'remote' (" .. address .. ", namespace ns-a).\n",
      ok(on_client({ "context", "use", "remote" })).stdout)
    assert.equal("remote\n", ok(on_client({ "context", "current" })).stdout)
    local status = ok(on_client({ "status", "-o", "json" }))
    assert.equal("ok", cjson.decode(status.stdout).health)

    -- An edit token may not list tokens: the server's answer proves it is the one used.
    local denied = on_client({ "token", "list" })
    assert.equal(1, denied.code)
    assert.equal("Error: a edit token cannot do this: it needs the admin role\n", denied.stderr:match("^[^\n]*\n"))

    -- --context local overrides the current context.
    local here = on_client({ "status", "--context", "local" })
    assert.equal(1, here.code)
    assert.matches("^Error: no prisn server has been set up in ", here.stderr)
  end)

  it("takes the namespace from the context, then PRISN_NAMESPACE, then -n", function()
    add_remote()
    ok(on_client({ "context", "use", "remote" }))
    local function current(args, extra)
      local all = { "context", "current", "-o", "json" }
      for _, a in ipairs(args) do all[#all + 1] = a end
      return cjson.decode(ok(on_client(all, extra)).stdout)
    end
    local c = current({})
    assert.same({ "remote", address, "ns-a", "current" }, { c.name, c.server, c.namespace, c.source })
    assert.equal("ns-x", current({}, { PRISN_NAMESPACE = "ns-x" }).namespace)
    assert.equal("ns-y", current({ "-n", "ns-y" }, { PRISN_NAMESPACE = "ns-x" }).namespace)
  end)

  it("never shows a whole token", function()
    add_remote()
    local text = ok(on_client({ "context", "list" })).stdout
    local json = ok(on_client({ "context", "list", "-o", "json" })).stdout
    local current = ok(on_client({ "context", "current", "-o", "json", "--context", "remote" })).stdout
    for _, out in ipairs({ text, json, current }) do
      assert.is_nil(out:find(edit_token, 1, true), out)
      assert.is_nil(out:find(edit_token:match("_([^_]+)$"), 1, true), out)
    end
    assert.matches("\n%-%s+remote%s+" .. address:gsub("%p", "%%%0") .. "%s+ns%-a%s+"
      .. edit_token:sub(1, 10) .. "…\n", text)
    local rows = cjson.decode(json)
    assert.same({ "local", true, "remote", false, edit_token:sub(1, 10) .. "…" },
      { rows[1].name, rows[1].current, rows[2].name, rows[2].current, rows[2].token })
  end)

  it("reads the token from stdin or a file, keeping it off the command line", function()
    ok(on_client({ "context", "add", "piped", "--server", pinned, "--token", "-" }, nil,
      { stdin = edit_token .. "\n" }))
    local file = h.tempdir("prisn-token") .. "/t"
    local f = assert(io.open(file, "w"))
    f:write(edit_token, "\n")
    f:close()
    ok(on_client({ "context", "add", "filed", "--server", pinned, "--token-file", file }))
    for _, name in ipairs({ "piped", "filed" }) do
      local status = ok(on_client({ "status", "-o", "json", "--context", name }))
      assert.equal("ok", cjson.decode(status.stdout).health)
    end
    local missing = on_client({ "context", "add", "x", "--server", pinned })
    assert.equal(2, missing.code)
    assert.matches("^Error: a context needs a token: ", missing.stderr)
  end)

  it("uses PRISN_SERVER and PRISN_TOKEN, below --context and PRISN_CONTEXT", function()
    local admin = read(server_home .. "/admin.token"):gsub("%s+$", "")
    local env = { PRISN_SERVER = pinned, PRISN_TOKEN = admin }
    -- The admin token may list tokens, where the remote context's edit token may not.
    ok(on_client({ "token", "list" }, env))
    assert.equal("env\n", ok(on_client({ "context", "current" }, env)).stdout)
    add_remote()
    local via_flag = on_client({ "token", "list", "--context", "remote" }, env)
    assert.equal(1, via_flag.code)
    assert.matches("^Error: a edit token cannot do this", via_flag.stderr)
    local via_env = on_client({ "token", "list" }, { PRISN_SERVER = pinned, PRISN_TOKEN = admin,
      PRISN_CONTEXT = "remote" })
    assert.equal(1, via_env.code)
    assert.matches("^Error: a edit token cannot do this", via_env.stderr)

    local no_token = on_client({ "status" }, { PRISN_SERVER = pinned })
    assert.equal(1, no_token.code)
    assert.equal("Error: PRISN_SERVER is set but PRISN_TOKEN is not\n", no_token.stderr:match("^[^\n]*\n"))
    assert.matches("\nHint: ", no_token.stderr)
  end)

  it("refuses unknown contexts, even for commands that need no server", function()
    add_remote()
    for _, args in ipairs({ { "status", "--context", "nope" }, { "version", "--context", "nope" },
                            { "context", "use", "nope" } }) do
      local r = on_client(args)
      assert.equal(1, r.code)
      assert.equal("Error: unknown context 'nope'\nHint: known contexts: local, remote (see 'prisn context list')\n",
        r.stderr)
    end
    local r = on_client({ "status" }, { PRISN_CONTEXT = "nope" })
    assert.equal("Error: unknown context 'nope'\n"
      .. "Hint: PRISN_CONTEXT names it; known contexts: local, remote (see 'prisn context list')\n", r.stderr)
  end)

  it("keeps local built in, and deleting the current context goes back to it", function()
    local r = on_client({ "context", "delete", "local" })
    assert.equal(2, r.code)
    assert.matches("^Error: the context 'local' is built in and cannot be deleted\n", r.stderr)
    add_remote()
    ok(on_client({ "context", "use", "remote" }))
    assert.equal("Context 'remote' deleted. The current context is 'local' again.\n",
      ok(on_client({ "context", "delete", "remote" })).stdout)
    assert.equal("local\n", ok(on_client({ "context", "current" })).stdout)
  end)

  it("names the context and its address when the server cannot be reached", function()
    -- A port held bound but not listening refuses connections, and no other
    -- test's server can take it meanwhile (a stopped server's port could).
    local holder = uv.new_tcp()
    assert(holder:bind("127.0.0.1", 0))
    local closed = "http://127.0.0.1:" .. holder:getsockname().port
    ok(on_client({ "context", "add", "remote", "--server", closed, "--token", edit_token }))
    local r = on_client({ "status", "--context", "remote" })
    holder:close()
    assert.equal(1, r.code)
    assert.equal(string.format("Error: cannot reach the prisn server of context 'remote' at %s: ECONNREFUSED\n",
      closed), r.stderr:match("^[^\n]*\n"))
  end)
end)
