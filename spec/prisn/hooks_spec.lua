-- prisn.hooks (pure parts) and prisn.hooks.child run in this process: which
-- files a hook runs for, how a child's reply is read, veto semantics, the
-- restricted environment. tests/e2e/hooks_spec.lua runs real hook processes.
local hooks = require("prisn.hooks")
local child = require("prisn.hooks.child")
local hook_http = require("prisn.hooks.http")
local uv = require("luv")

local function run(text, hook, event)
  return child.run("/etc/prisn/hooks/test.lua", text, hook, event or {})
end

describe("prisn.hooks", function()
  it("names the five hooks", function()
    assert.same({ "pre_deploy", "post_deploy", "on_crash", "on_scale", "on_job_finish" }, hooks.NAMES)
  end)

  it("runs a file only for the hooks its text names as whole words", function()
    assert.same({ on_crash = true, pre_deploy = true },
      hooks.mentions("return { on_crash = f, [\"pre_deploy\"] = g, my_on_scale = 1, on_scale_x = 2 }"))
    assert.same({}, hooks.mentions("return {}"))
  end)

  it("takes its time limit from PRISN_HOOK_TIMEOUT_MS, else 5 s", function()
    assert.equal(5000, hooks.DEFAULT_TIMEOUT_MS)
    assert.equal(5000, hooks.timeout_from_env(nil))
    assert.equal(5000, hooks.timeout_from_env("soon"))
    assert.equal(5000, hooks.timeout_from_env("0"))
    assert.equal(250, hooks.timeout_from_env("250"))
  end)

  describe("interpret", function()
    local exited = { exited = true, code = 0 }

    it("reads the child's one-line reply", function()
      assert.same({ status = "ok", output = "" }, hooks.interpret({ status = exited, stdout = '{"result":"ok"}\n' }))
      assert.same({ status = "vetoed", message = "frozen", output = "checking api" },
        hooks.interpret({ status = exited, stdout = '{"result":"vetoed","message":"frozen"}\n',
          stderr = "checking api\n" }))
      assert.same({ status = "undefined", output = "" },
        hooks.interpret({ status = exited, stdout = '{"result":"undefined"}\n' }))
      assert.same({ status = "failed", message = "f.lua:3: boom", output = "" },
        hooks.interpret({ status = { exited = true, code = 1 },
          stdout = '{"result":"failed","message":"f.lua:3: boom"}' }))
    end)

    it("calls a run killed at the limit timed out, whatever it wrote", function()
      assert.same({ status = "timed_out", output = "tick",
        message = "ran past its time limit of 300 ms and was killed" },
        hooks.interpret({ status = { signal = "KILL" }, timed_out = true, limit_ms = 300, stdout = "",
          stderr = "tick\n" }))
    end)

    it("calls a child that stopped its own runaway hook timed out", function()
      local o = hooks.interpret({ status = { exited = true, code = 1 },
        stdout = '{"result":"failed","message":"f.lua: ran past its time limit of 300 ms"}\n' })
      assert.equal("timed_out", o.status)
    end)

    it("calls a child that died without a reply failed, saying how", function()
      assert.same({ status = "failed", output = "Segmentation fault",
        message = "the hook process was killed by SIGSEGV without an outcome: Segmentation fault" },
        hooks.interpret({ status = { signal = "SEGV" }, stdout = "", stderr = "Segmentation fault\n" }))
      assert.equal("the hook process exited with status 3 without an outcome",
        hooks.interpret({ status = { exited = true, code = 3 }, stdout = "not json" }).message)
    end)
  end)

  it("makes the on_job_finish event from a job record", function()
    local ev = hooks.job_event({ id = "01abc", namespace = "default", script = "/srv/a.py", state = "failed",
      reason = "exited", exit_code = 4, started_at = 1000, finished_at = 3500 })
    assert.same({ namespace = "default", job = "01abc", script = "/srv/a.py", state = "failed", reason = "exited",
      exit_code = 4, duration_ms = 2500 }, ev)
  end)

  describe("a runner", function()
    local dir

    before_each(function()
      dir = assert(uv.fs_mkdtemp("/tmp/prisn-hooks-spec-XXXXXX"))
    end)

    after_each(function()
      require("support").remove_tree(dir)
    end)

    local function write(path, text)
      local f = assert(io.open(path, "w"))
      f:write(text)
      f:close()
    end

    local function never_start()
      error("no hook process may be started")
    end

    it("costs nothing with no hook files: no process, the result at once", function()
      local h = hooks.new({ home = dir, start = never_start })
      local got
      h:fire("on_crash", { deployment = "api" }, nil, function(r) got = r end)
      assert.same({ vetoed = false, ran = 0, failures = {} }, got)
    end)

    it("starts no process for files that do not name the hook", function()
      uv.fs_mkdir(dir .. "/hooks", tonumber("755", 8))
      write(dir .. "/hooks/a.lua", "return { on_crash = function() end }")
      local h = hooks.new({ home = dir, start = never_start })
      local got
      h:fire("pre_deploy", {}, nil, function(r) got = r end)
      assert.same({ vetoed = false, ran = 0, failures = {} }, got)
    end)

    it("lists the directory's files in name order, then the extra ones", function()
      uv.fs_mkdir(dir .. "/hooks", tonumber("755", 8))
      write(dir .. "/hooks/20-b.lua", "return { pre_deploy = f, on_scale = g }")
      write(dir .. "/hooks/10-a.lua", "return { on_crash = f }")
      write(dir .. "/hooks/notes.txt", "on_crash")
      write(dir .. "/extra.lua", "return { post_deploy = f }")
      local h = hooks.new({ home = dir })
      assert.same({
        { file = "10-a.lua", path = dir .. "/hooks/10-a.lua", hooks = { "on_crash" } },
        { file = "20-b.lua", path = dir .. "/hooks/20-b.lua", hooks = { "pre_deploy", "on_scale" } },
        { file = dir .. "/extra.lua", path = dir .. "/extra.lua", hooks = { "post_deploy" } },
      }, h:list({ dir .. "/extra.lua" }))
    end)

    it("makes a missing extra hook file a failure and an event, without a process", function()
      local events = {}
      local h = hooks.new({ home = dir, start = never_start, record_event = function(ev) events[#events + 1] = ev end })
      local got
      h:fire("on_scale", {}, { files = { dir .. "/gone.lua" }, namespace = "shop" }, function(r) got = r end)
      assert.equal(1, #got.failures)
      assert.equal("failed", got.failures[1].reason)
      assert.matches("^cannot read the hook file: ENOENT", got.failures[1].message)
      assert.same({ "hook.failed", "shop", "hook/" .. dir .. "/gone.lua:on_scale" },
        { events[1].action, events[1].namespace, events[1].object })
    end)

    it("raises for a hook name that does not exist", function()
      local h = hooks.new({ home = dir })
      assert.has_error(function() h:fire("on_deploy", {}) end,
        "hooks.fire: unknown hook 'on_deploy' (one of pre_deploy, post_deploy, on_crash, on_scale, on_job_finish)")
    end)
  end)
end)

describe("prisn.hooks.child", function()
  it("vetoes a deploy when pre_deploy returns false and a message", function()
    local text = [[return { pre_deploy = function(e)
      if e.deployment == "api" then return false, "deploys are frozen until 18:00" end
    end }]]
    assert.same({ result = "vetoed", message = "deploys are frozen until 18:00" },
      run(text, "pre_deploy", { deployment = "api" }))
    assert.same({ result = "ok" }, run(text, "pre_deploy", { deployment = "web" }))
  end)

  it("vetoes with a default message for a bare false; nil and anything else allow", function()
    assert.same({ result = "vetoed", message = "vetoed by /etc/prisn/hooks/test.lua" },
      run("return { pre_deploy = function() return false end }", "pre_deploy"))
    assert.same({ result = "ok" }, run("return { pre_deploy = function() return nil, 'no' end }", "pre_deploy"))
    assert.same({ result = "ok" }, run("return { pre_deploy = function() return true end }", "pre_deploy"))
  end)

  it("ignores return values of the other hooks", function()
    assert.same({ result = "ok" }, run("return { post_deploy = function() return false, 'x' end }", "post_deploy"))
  end)

  it("says when the file does not define the hook", function()
    assert.same({ result = "undefined" }, run("return { on_crash = function() end }", "on_scale"))
  end)

  it("fails with the file and line for an error, a syntax error or a bad shape", function()
    assert.same({ result = "failed", message = "/etc/prisn/hooks/test.lua:1: boom" },
      run("return { on_crash = function() error('boom') end }", "on_crash"))
    local r = run("return { on_crash = function( }", "on_crash")
    assert.equal("failed", r.result)
    assert.matches("^/etc/prisn/hooks/test.lua:1: ", r.message)
    assert.same({ result = "failed",
      message = "/etc/prisn/hooks/test.lua: returns number, not a table of hook functions "
        .. "({ on_crash = function(event) ... end })" }, run("return 42", "on_crash"))
    assert.same({ result = "failed", message = "/etc/prisn/hooks/test.lua: on_crash is a string, not a function" },
      run("return { on_crash = 'yes' }", "on_crash"))
  end)

  it("refuses bytecode", function()
    local r = run(string.dump(function() return {} end), "on_crash")
    assert.equal("failed", r.result)
    assert.matches("attempt to load a binary chunk", r.message)
  end)

  it("gives hooks a restricted environment", function()
    local seen
    local env = child.environment(function(line) seen = line end)
    for _, name in ipairs({ "io", "require", "load", "loadfile", "dofile", "package", "debug", "coroutine",
        "collectgarbage" }) do
      assert.is_nil(env[name], name)
    end
    assert.is_nil(env.os.execute)
    assert.is_nil(env.os.remove)
    assert.is_nil(env.os.exit)
    assert.is_function(env.os.time)
    assert.is_function(env.os.date)
    assert.is_function(env.os.getenv)
    assert.is_function(env.json.encode)
    assert.is_function(env.http.post)
    assert.is_function(env.string.format)
    assert.are_not.equal(string, env.string)
    env.print("a", 1, nil)
    assert.equal("a\t1\tnil", seen)
  end)

  it("hands the hook a copy of the event, JSON nulls as nil", function()
    local text = "return { on_crash = function(e) if e.signal == nil and e.exit_code == 3 then return end "
      .. "error('got ' .. tostring(e.signal)) end }"
    assert.same({ result = "ok" }, run(text, "on_crash", { signal = require("cjson").null, exit_code = 3 }))
  end)

  it("lists the hooks a file defines", function()
    assert.same({ "pre_deploy", "on_crash" }, child.list("f.lua",
      "return { on_crash = function() end, pre_deploy = function() end, on_scale = 1 }", hooks.NAMES))
    local names, err = child.list("f.lua", "return 1", hooks.NAMES)
    assert.is_nil(names)
    assert.equal("f.lua: returns number, not a table", err)
  end)
end)

describe("prisn.hooks.http", function()
  it("parses the URLs a hook may call", function()
    assert.same({ scheme = "http", host = "127.0.0.1", port = 8080, path = "/hook?x=1" },
      hook_http.parse_url("http://127.0.0.1:8080/hook?x=1"))
    assert.same({ scheme = "https", host = "hooks.example.com", port = 443, path = "/" },
      hook_http.parse_url("https://hooks.example.com"))
    assert.same({ scheme = "http", host = "::1", port = 80, path = "/a" }, hook_http.parse_url("http://[::1]/a#frag"))
    assert.same({ nil, "'ftp://x' is not an http:// or https:// URL" }, { hook_http.parse_url("ftp://x") })
  end)

  it("answers a refused connection with nil and a message", function()
    -- A port nothing listens on: bind one, note it, close it.
    local tcp = uv.new_tcp()
    assert(tcp:bind("127.0.0.1", 0))
    local port = tcp:getsockname().port
    tcp:close()
    uv.run("nowait")
    local status, err = hook_http.request("POST", "http://127.0.0.1:" .. port .. "/", { body = "x", timeout = 2 })
    assert.is_nil(status)
    assert.matches("ECONNREFUSED", err)
  end)
end)
