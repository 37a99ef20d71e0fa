-- Dependencies as a user meets them, with the real binary, python3 and node,
-- and no network: every source of a Python dependency list, an environment
-- built once and reused, concurrent first runs, a failed install, npm with a
-- local package, and --no-deps.
--
-- The packages are wheels the spec writes itself (a pure-Python wheel is a
-- zip: the package, METADATA, WHEEL and RECORD), found through
-- PIP_NO_INDEX=1 and PIP_FIND_LINKS, which prisn passes through to pip.
-- Distribution names differ from import names where a manifest is tested
-- (acme-widgets provides `widgets`), so a run can only succeed if prisn read
-- the manifest rather than guessed from the imports.
local h = require("e2e.helper")
local read, write = h.read, h.write
local cjson = require("cjson")
local uv = require("luv")

local function mkdir_p(path)
  local at = ""
  for part in path:gmatch("[^/]+") do
    at = at .. "/" .. part
    uv.fs_mkdir(at, tonumber("755", 8))
  end
  return path
end

-- The names in `dir`, sorted ({} when it does not exist).
local function entries(dir)
  local names = {}
  local scan = uv.fs_scandir(dir)
  while scan do
    local name = uv.fs_scandir_next(scan)
    if not name then break end
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

local function count(text, needle)
  local n, from = 0, 1
  while true do
    local at = (text or ""):find(needle, from, true)
    if not at then return n end
    n, from = n + 1, at + #needle
  end
end

local wheels = require("e2e.wheels").build

local WIDGETS = { dist = "acme-widgets", version = "1.0", package = "widgets", value = "widgets 1.0" }

-- The environment for a run that may only install from `wheel_dir`: no
-- index, no pip.conf, pip's cache and log in the temporary tree.
local function pip_env(wheel_dir, extra)
  local scratch = h.tempdir("prisn-pip")
  local env = h.env({
    PIP_NO_INDEX = "1",
    PIP_FIND_LINKS = wheel_dir,
    PIP_CONFIG_FILE = "/dev/null",
    PIP_CACHE_DIR = scratch .. "/cache",
    PIP_LOG = scratch .. "/pip.log",
  })
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

local function run(env, script, opts)
  opts = opts or {}
  local args = { "run" }
  for _, a in ipairs(opts.flags or {}) do args[#args + 1] = a end
  args[#args + 1] = script
  return h.prisn(args, { env = env, cwd = opts.cwd, timeout_ms = 60000 })
end

local function json_of(env, args)
  local r = h.prisn(args, { env = env })
  assert.equal(0, r.code, r.stderr)
  return cjson.decode(r.stdout)
end

-- The newest job, as `prisn get job ID -o json` shows it.
local function last_job(env)
  local list = json_of(env, { "get", "jobs", "-o", "json" })
  assert.is_true(#list > 0, "no job recorded")
  return json_of(env, { "get", "job", list[1].id, "-o", "json" }), list
end

-- The run succeeded and its job names `source` and an environment.
local function assert_recorded(env, source)
  local job = last_job(env)
  assert.equal("succeeded", job.state)
  assert.equal(0, job.exit_code)
  assert.equal(source, job.deps_source)
  assert.matches("^%x+$", job.env_key)
  return job
end

-- The single environment of the home in `env`.
local function only_env(env)
  local list = json_of(env, { "env", "list", "-o", "json" })
  assert.equal(1, #list)
  return list[1]
end

-- Starts every { args, opts } in `runs` at once, then waits for all of them.
-- Returns one { code, stdout, stderr } per run, in order.
local function prisn_together(runs)
  local results, open = {}, 0
  local handles = {}
  local function done() open = open - 1 end
  for i, spec in ipairs(runs) do
    local res, out, err = {}, {}, {}
    results[i] = res
    local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
    local env = {}
    for k, v in pairs(spec.opts.env) do env[#env + 1] = k .. "=" .. v end
    local handle, spawn_err
    handle, spawn_err = uv.spawn(h.bin, {
      args = spec.args, env = env, cwd = spec.opts.cwd, stdio = { stdin, stdout, stderr },
    }, function(code, signal)
      res.code, res.signal = code, signal
      handle:close()
      done()
    end)
    assert(handle, spawn_err)
    handles[i] = handle
    stdin:close() -- the scripts read nothing
    open = open + 3
    local function reader(chunks, pipe)
      return function(read_err, data)
        assert(not read_err, read_err)
        if data then chunks[#chunks + 1] = data else pipe:close(); done() end
      end
    end
    stdout:read_start(reader(out, stdout))
    stderr:read_start(reader(err, stderr))
    res.chunks = { out, err }
  end
  local timer = uv.new_timer()
  timer:start(60000, 0, function()
    for _, handle in ipairs(handles) do
      if not handle:is_closing() then handle:kill("sigkill") end
    end
  end)
  while open > 0 do uv.run("once") end
  timer:stop(); timer:close()
  uv.run("nowait")
  for _, res in ipairs(results) do
    res.stdout, res.stderr = table.concat(res.chunks[1]), table.concat(res.chunks[2])
    res.chunks = nil
  end
  return results
end

describe("prisn run: dependencies", function()
  after_each(h.cleanup)

  describe("each Python dependency source installs for real", function()
    it("PEP 723 inline metadata", function()
      local env = pip_env(wheels({ WIDGETS }))
      local dir = h.tempdir()
      write(dir .. "/tool.py", table.concat({
        "# /// script",
        "# requires-python = \">=3.8\"",
        "# dependencies = [\"acme-widgets==1.0\"]",
        "# ///",
        "import widgets",
        "print(widgets.VALUE)",
      }, "\n") .. "\n")
      local r = run(env, dir .. "/tool.py")
      assert.equal(0, r.code, r.stderr)
      assert.equal("widgets 1.0\n", r.stdout)
      assert_recorded(env, "pep723")
      assert.same({ "acme-widgets==1.0" }, only_env(env).dependencies)
    end)

    it("requirements.txt beside the script", function()
      local env = pip_env(wheels({ WIDGETS }))
      local dir = h.tempdir()
      write(dir .. "/requirements.txt", "# for tool.py\nacme-widgets>=1.0\n")
      write(dir .. "/tool.py", "import widgets\nprint(widgets.VALUE)\n")
      local r = run(env, "tool.py", { cwd = dir })
      assert.equal(0, r.code, r.stderr)
      assert.equal("widgets 1.0\n", r.stdout)
      assert_recorded(env, "requirements.txt")
      assert.same({ "acme-widgets>=1.0" }, only_env(env).dependencies)
    end)

    it("requirements.txt options: --find-links relative to the file, part of the environment key", function()
      -- Two projects with the same requirement and their own wheels: each
      -- gets an environment from its own folder, not the other's.
      local env = pip_env(h.tempdir("prisn-no-wheels"))
      local outputs = {}
      for i, value in ipairs({ "project one", "project two" }) do
        local dir = h.tempdir()
        wheels({ { dist = "acme-widgets", version = "1.0", package = "widgets", value = value } },
          mkdir_p(dir .. "/vendor/wheels"))
        write(dir .. "/requirements.txt", "--find-links vendor/wheels\n--no-index\nacme-widgets==1.0\n")
        write(dir .. "/tool.py", "import widgets\nprint(widgets.VALUE)\n")
        local r = run(env, dir .. "/tool.py")
        assert.equal(0, r.code, r.stderr)
        outputs[i] = r.stdout
        assert_recorded(env, "requirements.txt")
      end
      assert.same({ "project one\n", "project two\n" }, outputs)
      local list = json_of(env, { "env", "list", "-o", "json" })
      assert.equal(2, #list)
      assert.same(list[1].dependencies, list[2].dependencies)
    end)

    it("requirements.txt found walking up to the project root (.git)", function()
      local env = pip_env(wheels({ WIDGETS }))
      local outside = h.tempdir()
      local project = mkdir_p(outside .. "/project")
      mkdir_p(project .. "/.git")
      write(project .. "/requirements.txt", "acme-widgets\n")
      local jobs = mkdir_p(project .. "/jobs/nightly")
      write(jobs .. "/report.py", "import widgets\nprint('report:', widgets.VALUE)\n")
      local r = run(env, jobs .. "/report.py")
      assert.equal(0, r.code, r.stderr)
      assert.equal("report: widgets 1.0\n", r.stdout)
      assert_recorded(env, "requirements.txt")
      assert.same({ "acme-widgets" }, only_env(env).dependencies)

      -- The walk stops at the root: a requirements.txt above another
      -- project's .git (naming a package that does not exist) is not used.
      write(outside .. "/requirements.txt", "prisn-not-a-package\n")
      local other = mkdir_p(outside .. "/other")
      mkdir_p(other .. "/.git")
      write(other .. "/hello.py", "import sys\nprint('hello', sys.argv[0].endswith('hello.py'))\n")
      r = run(env, other .. "/hello.py")
      assert.equal(0, r.code, r.stderr)
      assert.equal("hello True\n", r.stdout)
      assert.equal("none", last_job(env).deps_source)
    end)

    it("pyproject.toml [project].dependencies", function()
      local env = pip_env(wheels({ WIDGETS }))
      local project = h.tempdir()
      write(project .. "/pyproject.toml", table.concat({
        "[project]",
        "name = \"reports\"",
        "version = \"0.1.0\"",
        "dependencies = [",
        "  \"acme-widgets >= 1.0\",  # the widgets",
        "]",
        "",
        "[tool.ruff]",
        "line-length = 100",
      }, "\n") .. "\n")
      local scripts = mkdir_p(project .. "/scripts")
      write(scripts .. "/run.py", "import widgets\nprint(widgets.VALUE)\n")
      local r = run(env, scripts .. "/run.py")
      assert.equal(0, r.code, r.stderr)
      assert.equal("widgets 1.0\n", r.stdout)
      assert_recorded(env, "pyproject.toml")
      assert.same({ "acme-widgets>=1.0" }, only_env(env).dependencies)
    end)

    it("an import scan, mapping import names to distributions", function()
      -- `import yaml` needs the distribution PyYAML; a stdlib import and a
      -- module beside the script are not installed (pip would fail on them).
      local env = pip_env(wheels({ { dist = "PyYAML", version = "6.0.99", package = "yaml", value = "fake yaml" } }))
      local dir = h.tempdir()
      write(dir .. "/helpers.py", "def shout(s):\n    return s.upper()\n")
      write(dir .. "/tool.py", table.concat({
        "import json, os.path",
        "from helpers import shout",
        "import yaml",
        "print(shout(yaml.VALUE), json.dumps(os.path.basename('/a/b')))",
      }, "\n") .. "\n")
      local r = run(env, dir .. "/tool.py")
      assert.equal(0, r.code, r.stderr)
      assert.equal("FAKE YAML \"b\"\n", r.stdout)
      assert_recorded(env, "imports")
      assert.same({ "pyyaml" }, only_env(env).dependencies)
    end)
  end)

  it("builds an environment once and reuses it without invoking pip", function()
    local wheel_dir = wheels({ WIDGETS })
    local env = pip_env(wheel_dir)
    local dir = h.tempdir()
    write(dir .. "/tool.py", "# /// script\n# dependencies = [\"acme-widgets\"]\n# ///\n"
      .. "import widgets\nprint(widgets.VALUE)\n")
    local first = run(env, dir .. "/tool.py")
    assert.equal(0, first.code, first.stderr)
    local log = read(env.PIP_LOG)
    assert.equal(1, count(log, "Successfully installed acme-widgets-1.0"))

    -- Nothing to install from any more, and pip would log to PIP_LOG if run.
    h.run("/bin/rm", { "-rf", wheel_dir }, { env = { PATH = "/usr/bin:/bin" } })
    local second = run(env, dir .. "/tool.py")
    assert.equal(0, second.code, second.stderr)
    assert.equal("widgets 1.0\n", second.stdout)
    assert.equal("", second.stderr)
    assert.equal(log, read(env.PIP_LOG))

    local job, list = last_job(env)
    assert.equal(2, #list)
    assert.equal(list[2].env_key, job.env_key)
    local built = only_env(env)
    assert.equal(job.env_key, built.key)
    assert.same({ "acme-widgets" }, built.dependencies)

    -- A week is not over yet: prune keeps it; --older-than 0 removes it.
    local kept = h.prisn({ "env", "prune", "-o", "json" }, { env = env })
    assert.equal(0, kept.code, kept.stderr)
    assert.same({}, cjson.decode(kept.stdout).removed)
    local pruned = h.prisn({ "env", "prune", "--older-than", "0", "-o", "json" }, { env = env })
    assert.equal(0, pruned.code, pruned.stderr)
    assert.equal(built.key, cjson.decode(pruned.stdout).removed[1].key)
    assert.same({}, cjson.decode(h.prisn({ "env", "list", "-o", "json" }, { env = env }).stdout))
  end)

  it("builds one environment for two concurrent first runs", function()
    local env = pip_env(wheels({ WIDGETS }))
    local dir = h.tempdir()
    write(dir .. "/tool.py", "# /// script\n# dependencies = [\"acme-widgets\"]\n# ///\n"
      .. "import widgets\nprint(widgets.VALUE)\n")
    local results = prisn_together({
      { args = { "run", dir .. "/tool.py" }, opts = { env = env } },
      { args = { "run", dir .. "/tool.py" }, opts = { env = env } },
    })
    for _, r in ipairs(results) do
      assert.equal(0, r.code, r.stderr)
      assert.equal("widgets 1.0\n", r.stdout)
    end
    local key = only_env(env).key
    -- The environment and its lock file; no second build, no leftovers.
    assert.same({ key, key .. ".lock" }, entries(env.PRISN_HOME .. "/envs/python3"))
    assert.equal(1, count(read(env.PIP_LOG), "Successfully installed"))
    local _, list = last_job(env)
    assert.equal(2, #list)
    assert.equal(key, list[1].env_key)
    assert.equal(key, list[2].env_key)
  end)

  it("has a run on record while it waits for its environment, and writes the rest with its start", function()
    local env = pip_env(wheels({ WIDGETS }))
    local dir = h.tempdir()
    write(dir .. "/tool.py", "# /// script\n# dependencies = [\"acme-widgets\"]\n# ///\n"
      .. "import widgets\nprint(widgets.VALUE)\n")
    assert.equal(0, run(env, dir .. "/tool.py").code)
    local key = only_env(env).key
    assert.equal(0, h.prisn({ "env", "prune", "--older-than", "0", "-q" }, { env = env }).code)
    -- Another prisn holds the environment's lock: the run waits for it.
    local lock = assert(require("prisn.core.sys").lock(env.PRISN_HOME .. "/envs/python3/" .. key .. ".lock"))
    local result = {}
    local handle
    handle = uv.spawn(h.bin, { args = { "run", "-q", dir .. "/tool.py" }, env = (function()
      local list = {}
      for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
      return list
    end)(), stdio = { nil, nil, nil } }, function(code)
      result.code = code
      handle:close()
    end)
    local waiting
    local seen = h.wait_for(function()
      local list = h.jobs(env)
      waiting = list[1]
      return #list == 2 and waiting.state == "pending"
    end)
    require("prisn.core.sys").unlock(lock)
    assert.is_true(seen, "the waiting run is not listed as pending")
    assert.is_true(h.wait_for(function() return result.code ~= nil end))
    assert.equal(0, result.code)
    local job = json_of(env, { "get", "job", waiting.id, "-o", "json" })
    assert.same({ "succeeded", "pep723", key }, { job.state, job.deps_source, job.env_key })
  end)

  it("detects a script's needs again once it or its folder changed (the detection is cached)", function()
    local env = pip_env(wheels({ WIDGETS }))
    local dir = h.tempdir()
    write(dir .. "/tool.py", "print('plain')\n")
    h.sleep(2100) -- a script changed within 2 s is not cached (prisn.exec.deps.cache)
    for _ = 1, 2 do -- detected and kept, then from the cache
      local r = run(env, dir .. "/tool.py")
      assert.same({ 0, "plain\n" }, { r.code, r.stdout })
      assert.equal("none", last_job(env).deps_source)
    end
    assert.equal(1, #entries(env.PRISN_HOME .. "/cache/deps"))
    -- A manifest beside it, which the detection looked for.
    write(dir .. "/requirements.txt", "acme-widgets\n")
    write(dir .. "/tool.py", "import widgets\nprint(widgets.VALUE)\n")
    local r = run(env, dir .. "/tool.py")
    assert.same({ 0, "widgets 1.0\n" }, { r.code, r.stdout }, r.stderr)
    assert_recorded(env, "requirements.txt")
    -- Gone again, and the script says what it needs itself.
    assert(uv.fs_unlink(dir .. "/requirements.txt"))
    write(dir .. "/tool.py", "# /// script\n# dependencies = [\"acme-widgets\"]\n# ///\n"
      .. "import widgets\nprint('pep', widgets.VALUE)\n")
    r = run(env, dir .. "/tool.py")
    assert.same({ 0, "pep widgets 1.0\n" }, { r.code, r.stdout }, r.stderr)
    assert_recorded(env, "pep723")
  end)

  it("leaves no environment behind when an install fails, and says why", function()
    local env = pip_env(wheels({ WIDGETS }))
    local dir = h.tempdir()
    write(dir .. "/tool.py", "# /// script\n# dependencies = [\"acme-widgets\", \"prisn-no-such-package\"]\n"
      .. "# ///\nprint('must not run')\n")
    for _ = 1, 2 do -- and the second attempt finds nothing half-built either
      local r = run(env, dir .. "/tool.py")
      assert.equal(1, r.code)
      assert.equal("", r.stdout)
      assert.equal("Error: installing python dependencies failed: pip install failed (exit 1)\n",
        r.stderr:match("^[^\n]*\n"))
      assert.matches("\n  ERROR: No matching distribution found for prisn%-no%-such%-package\n", r.stderr)
      assert.matches("\nHint: check the package names in the script's '# /// script' block; pip's index "
        .. "comes from PIP_INDEX_URL, PIP_FIND_LINKS or pip.conf %(or run with %-%-no%-deps%)\n$", r.stderr)
      -- At most the build's lock file: a lock is harmless, a half-built environment is not.
      for _, name in ipairs(entries(env.PRISN_HOME .. "/envs/python3")) do
        assert.matches("^%x+%.lock$", name)
      end
    end
    assert.same({}, json_of(env, { "env", "list", "-o", "json" }))
    local job, list = last_job(env)
    assert.equal(2, #list)
    assert.equal("failed", job.state)
    assert.equal("failed_to_start", job.reason)
    assert.equal(cjson.null, job.exit_code)
    assert.matches("^installing python dependencies failed: pip install failed %(exit 1%)", job.message)
  end)

  describe("node", function()
    -- npm may not reach a registry: offline, with its cache and config in
    -- the temporary tree.
    local function npm_env()
      local scratch = h.tempdir("prisn-npm")
      return h.env({
        npm_config_offline = "true",
        npm_config_cache = scratch .. "/cache",
        npm_config_userconfig = scratch .. "/npmrc",
        npm_config_update_notifier = "false",
      })
    end

    it("installs package.json dependencies (a local file: package) for require()", function()
      local env = npm_env()
      local root = h.tempdir()
      local lib = mkdir_p(root .. "/lib/greeter")
      write(lib .. "/package.json", '{"name": "greeter", "version": "1.0.0", "main": "index.js"}\n')
      write(lib .. "/index.js", "module.exports = (who) => `hello, ${who}`;\n")
      local app = mkdir_p(root .. "/app")
      write(app .. "/package.json",
        '{"name": "app", "private": true, "dependencies": {"greeter": "file:../lib/greeter"}}\n')
      write(app .. "/main.js", "const greet = require('greeter');\nconsole.log(greet('node'));\n")
      local r = run(env, app .. "/main.js")
      assert.equal(0, r.code, r.stderr)
      assert.equal("hello, node\n", r.stdout)
      assert_recorded(env, "package.json")
      assert.same({ "greeter@file:" .. lib }, only_env(env).dependencies)
      -- Reused: the second run installs nothing (npm would leave its log in the cache).
      local before = entries(env.npm_config_cache .. "/_logs")
      assert.equal(1, #before)
      r = run(env, app .. "/main.js")
      assert.equal(0, r.code, r.stderr)
      assert.equal("hello, node\n", r.stdout)
      assert.same(before, entries(env.npm_config_cache .. "/_logs"))
    end)

    it("runs a script that requires only builtins without an environment", function()
      local env = npm_env()
      local dir = h.tempdir()
      write(dir .. "/main.js", table.concat({
        "const fs = require('fs');",
        "const path = require('node:path');",
        "console.log(path.basename('/a/b.txt'), typeof fs.readFileSync);",
      }, "\n") .. "\n")
      local r = run(env, dir .. "/main.js")
      assert.equal(0, r.code, r.stderr)
      assert.equal("b.txt function\n", r.stdout)
      local job = last_job(env)
      assert.equal("none", job.deps_source)
      assert.equal(cjson.null, job.env_key)
      assert.same({}, json_of(env, { "env", "list", "-o", "json" }))
      assert.is_nil(uv.fs_stat(env.PRISN_HOME .. "/envs/node"))
    end)
  end)

  it("skips detection with --no-deps", function()
    local env = pip_env(wheels({}))
    local dir = h.tempdir()
    write(dir .. "/tool.py", table.concat({
      "# /// script",
      "# dependencies = [\"prisn-not-available\"]",
      "# ///",
      "try:",
      "    import prisn_not_available",
      "except ImportError:",
      "    print('ran without it')",
    }, "\n") .. "\n")
    local r = run(env, dir .. "/tool.py", { flags = { "--no-deps" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("ran without it\n", r.stdout)
    assert.equal("", r.stderr)
    local job = last_job(env)
    assert.equal(cjson.null, job.deps_source)
    assert.equal(cjson.null, job.env_key)
    assert.same({}, json_of(env, { "env", "list", "-o", "json" }))
    assert.is_nil(read(env.PIP_LOG)) -- pip never ran
  end)

  it("builds a cold environment with the real interpreter's pip, without seeding pip", function()
    local env = pip_env(wheels({ WIDGETS }))
    local dir = h.tempdir()
    write(dir .. "/tool.py", "# /// script\n# dependencies = [\"acme-widgets\"]\n# ///\n"
      .. "import sys, widgets\nprint(widgets.VALUE, sys.prefix == sys.base_prefix)\n")
    local r = run(env, dir .. "/tool.py")
    assert.equal(0, r.code, r.stderr)
    assert.equal("widgets 1.0 False\n", r.stdout) -- inside a venv
    local built = only_env(env)
    local marker = cjson.decode((assert(read(built.path .. "/env.json"))))
    assert.equal("pep723", marker.source)
    assert.is_number(marker.build_ms)
    -- The real interpreter, not a version manager's shim in front of it.
    assert.is_nil(marker.interpreter:find("/shims/", 1, true))
    assert.matches("\ninclude%-system%-site%-packages = false\n", read(built.path .. "/pyvenv.cfg"))
    -- Its pip installs into the venv with --python (pip >= 22.3), so the venv
    -- itself carries no pip.
    local pip = h.run(marker.interpreter, { "-m", "pip", "--version" }, { env = { PATH = "/usr/bin:/bin" } })
    assert.equal(0, pip.code, pip.stderr)
    local major, minor = pip.stdout:match("^pip (%d+)%.(%d+)")
    assert.is_true(tonumber(major) * 100 + tonumber(minor) >= 2203, pip.stdout)
    for _, lib in ipairs(entries(built.path .. "/lib")) do
      local site = entries(built.path .. "/lib/" .. lib .. "/site-packages")
      assert.is_true(#site > 0)
      for _, name in ipairs(site) do assert.is_nil(name:match("^pip$"), "pip was seeded into the venv") end
    end
  end)

  it("builds a deployment's environment once, outside the server's loop, for every instance", function()
    local env = pip_env(wheels({ WIDGETS }))
    local dir = h.tempdir()
    write(dir .. "/svc.py", "# /// script\n# dependencies = [\"acme-widgets\"]\n# ///\n"
      .. "import os, time, widgets\nprint(os.environ['PRISN_INSTANCE'], widgets.VALUE, flush=True)\n"
      .. "time.sleep(100)\n")
    local started = h.prisn({ "server", "start", "-q" }, { env = env })
    assert.equal(0, started.code, started.stderr)
    local ok, err = pcall(function()
      local r = h.prisn({ "deploy", dir .. "/svc.py", "-r", "2", "--isolation", "0" },
        { env = env, timeout_ms = 60000 })
      assert.equal(0, r.code, r.stderr)
      assert.matches("2/2 ready", r.stdout)
      local logs
      for _ = 1, 50 do
        logs = h.prisn({ "logs", "svc" }, { env = env }).stdout
        if select(2, logs:gsub("widgets 1.0", "")) == 2 then break end
        require("luv").sleep(100)
      end
      assert.matches("%[svc%-1%] svc%-1 widgets 1.0\n", logs)
      assert.matches("%[svc%-2%] svc%-2 widgets 1.0\n", logs)
      assert.equal(1, count(read(env.PIP_LOG), "Successfully installed acme-widgets-1.0"))
      assert.same({ "acme-widgets" }, only_env(env).dependencies)
    end)
    h.prisn({ "server", "stop" }, { env = env })
    assert(ok, err)
  end)
end)
