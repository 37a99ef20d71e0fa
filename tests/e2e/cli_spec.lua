-- The CLI as a user meets it: help, typos, bad flags, output formats,
-- internal errors, colour, and the binary working on its own.
local h = require("e2e.helper")
local write = h.write
local cjson = require("cjson")
local uv = require("luv")

local PYTHON = "/usr/bin/python3"

local function yaml_to_json(text)
  local r = h.run(PYTHON, { "-c",
    "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))" },
    { stdin = text, env = { PATH = "/usr/bin:/bin" } })
  assert.equal(0, r.code, r.stderr)
  return cjson.decode(r.stdout)
end

describe("prisn CLI", function()
  after_each(h.cleanup)

  it("exits cleanly from 'prisn lua' when the script calls os.exit(code, true) with handles closing", function()
    -- The close callbacks of handles closed just before would run while the
    -- Lua state is being freed: this crashed (SIGSEGV) before prisn lua
    -- drained the loop first. busted exits this way when a test fails.
    local code = "local uv = require('luv') for _ = 1, 200 do local t = uv.new_timer() "
      .. "t:start(100000, 0, function() end) t:close(function() end) end os.exit(3, true)"
    for _ = 1, 3 do
      local r = h.prisn({ "lua", "-e", code })
      assert.equal(3, r.code, r.stderr)
    end
  end)

  it("exits cleanly from 'prisn lua' when the script unloads luv with handles open and closing", function()
    -- busted's insulation drops the modules a spec file loaded from
    -- package.loaded, luv's included, while its loop lives on: prisn's exit
    -- drained only when package.loaded.luv was set, so the loop's finalizer
    -- ran close callbacks on a freed state (SIGSEGV after a passing spec).
    local code = "local uv = require('luv') for _ = 1, 50 do local t = uv.new_timer() "
      .. "t:start(100000, 0, function() end) uv.new_pipe(false):close() end package.loaded.luv = nil"
    for _ = 1, 3 do
      local r = h.prisn({ "lua", "-e", code })
      assert.equal(0, r.code, r.stderr)
    end
  end)

  it("prints help with commands, global flags and exit codes", function()
    for _, args in ipairs({ {}, { "help" }, { "--help" } }) do
      local r = h.prisn(args)
      assert.equal(0, r.code)
      assert.matches("Usage:", r.stdout)
      assert.matches("\n  version ", r.stdout)
      assert.matches("%-o, %-%-output", r.stdout)
      assert.matches("2   usage error", r.stdout)
    end
  end)

  it("prints the same help for 'help CMD' and 'CMD --help', with an example", function()
    local a, b = h.prisn({ "help", "version" }), h.prisn({ "version", "--help" })
    assert.equal(0, a.code)
    assert.equal(a.stdout, b.stdout)
    assert.matches("Examples:\n", a.stdout)
    assert.matches("prisn version %-o json", a.stdout)
  end)

  it("suggests the command meant by a typo and exits 2", function()
    local r = h.prisn({ "verison" })
    assert.equal(2, r.code)
    assert.equal("", r.stdout)
    assert.equal("Error: unknown command 'verison'\nHint: Did you mean 'version'?\n", r.stderr)
  end)

  it("suggests the flag meant by a typo and exits 2", function()
    local r = h.prisn({ "doctor", "--outptu", "json" })
    assert.equal(2, r.code)
    assert.equal("Error: unknown flag --outptu for 'prisn doctor'\nHint: Did you mean '--output'?\n", r.stderr)
  end)

  it("refuses a bad output format cleanly", function()
    local r = h.prisn({ "version", "-o", "xml" })
    assert.equal(2, r.code)
    assert.equal("Error: invalid value 'xml' for -o\nHint: choose one of: text, wide, json, yaml\n", r.stderr)
  end)

  it("refuses a context that is not configured", function()
    local r = h.prisn({ "version", "--context", "prod" })
    assert.equal(1, r.code)
    assert.equal("Error: unknown context 'prod'\n", r.stderr:match("^[^\n]*\n"))
    assert.matches("\nHint: ", r.stderr)
  end)

  it("prints versions as text, JSON and YAML that parse back to the same data", function()
    local text = h.prisn({ "version" })
    assert.equal(0, text.code)
    assert.matches("Version:%s+%d+%.%d+%.%d+", text.stdout)
    local json = h.prisn({ "version", "-o", "json" })
    assert.equal(0, json.code)
    local data = cjson.decode(json.stdout)
    for _, field in ipairs({ "version", "commit", "build_date", "lua", "libuv", "sqlite", "libsodium" }) do
      assert.is_string(data[field], field)
    end
    assert.equal("Lua 5.4", data.lua:sub(1, 7))
    -- The build's target as release files name it, and its linkage.
    assert.matches("^linux%-%l[%l%d]+$", data.target)
    assert.is_truthy(data.linkage == "dynamic" or data.linkage == "static", data.linkage)
    local yaml = h.prisn({ "version", "-o", "yaml" })
    assert.equal(0, yaml.code)
    assert.same(data, yaml_to_json(yaml.stdout))
  end)

  it("names its checks in doctor's JSON and exits by their verdict", function()
    local env = h.env()
    local r = h.prisn({ "doctor", "-o", "json" }, { env = env })
    local data = cjson.decode(r.stdout)
    local names = {}
    for _, c in ipairs(data.checks) do
      names[c.name] = true
      assert.is_truthy(c.status == "ok" or c.status == "warn" or c.status == "fail")
      assert.is_string(c.detail)
    end
    for _, name in ipairs({ "kernel", "cgroup_v2", "cgroup_v1", "namespace_pid", "isolation_1", "isolation_2",
      "isolation_3", "python3", "node", "bash", "prisn_home", "disk_space", "state_db", "server" }) do
      assert.is_true(names[name], name)
    end
    assert.equal(data.summary.fail > 0 and 1 or 0, r.code)
    assert.same(data, yaml_to_json(h.prisn({ "doctor", "-o", "yaml" }, { env = env }).stdout))
  end)

  it("fails doctor on a PRISN_HOME that others can read", function()
    local home = h.tempdir() .. "/home"
    assert(uv.fs_mkdir(home, tonumber("755", 8)))
    assert(uv.fs_chmod(home, tonumber("755", 8)))
    local r = h.prisn({ "doctor" }, { env = h.env({ PRISN_HOME = home }) })
    assert.equal(1, r.code)
    assert.matches("prisn_home%s+fail%s+" .. home:gsub("%p", "%%%0") .. " has mode 755", r.stdout)
    assert.matches("chmod 700 " .. home:gsub("%p", "%%%0"), r.stdout)
  end)

  it("reports an internal error in one line, with the traceback only under PRISN_DEBUG=1", function()
    -- A development tree whose version command has a bug.
    local tree = h.tempdir("prisn-tree")
    assert(uv.fs_mkdir(tree .. "/lua", tonumber("755", 8)))
    local dir = tree .. "/lua"
    for _, part in ipairs({ "prisn", "cli", "commands" }) do
      dir = dir .. "/" .. part
      assert(uv.fs_mkdir(dir, tonumber("755", 8)))
    end
    write(dir .. "/version.lua", [[
return { { name = "version", summary = "s", description = "d",
  examples = { { "prisn version", "v" } },
  handler = function() local t = nil; return t.field end } }
]])
    local r = h.prisn({ "version" }, { env = h.env({ PRISN_DEV = tree }) })
    assert.equal(1, r.code)
    assert.matches("^Error: internal error in prisn: "
      .. "lua/prisn/cli/commands/version.lua:3: attempt to index a nil value", r.stderr)
    assert.matches("\nHint: this is a bug; run again with PRISN_DEBUG=1", r.stderr)
    assert.is_nil(r.stderr:find("stack traceback", 1, true))
    local d = h.prisn({ "version" }, { env = h.env({ PRISN_DEV = tree, PRISN_DEBUG = "1" }) })
    assert.equal(1, d.code)
    assert.matches("stack traceback:", d.stderr)
  end)

  it("runs a Lua file with its arguments in the binary's own Lua", function()
    local dir = h.tempdir()
    write(dir .. "/t.lua", [[
local uv = require("luv")
local store = require("prisn.core.store")
print(arg[0]:match("t.lua$"), arg[1], arg[2], select("#", ...), _VERSION, type(uv.now), type(store.version))
]])
    local r = h.prisn({ "lua", dir .. "/t.lua", "one", "--two" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("t.lua\tone\t--two\t2\tLua 5.4\tfunction\tfunction\n", r.stdout)
  end)

  it("reports a failing Lua script with its traceback and exits 1", function()
    local dir = h.tempdir()
    write(dir .. "/bad.lua", "local function f() error('boom') end\nf()\n")
    local r = h.prisn({ "lua", dir .. "/bad.lua" })
    assert.equal(1, r.code)
    assert.matches("bad.lua:1: boom", r.stderr)
    assert.matches("stack traceback", r.stderr)
    local missing = h.prisn({ "lua", dir .. "/nope.lua" })
    assert.equal(1, missing.code)
    assert.matches("^Error: cannot load " .. dir:gsub("%p", "%%%0") .. "/nope.lua", missing.stderr)
    assert.matches("\nHint: check the path of the Lua file\n$", missing.stderr)
  end)

  it("ignores LUA_PATH and LUA_CPATH", function()
    local dir = h.tempdir()
    write(dir .. "/evil.lua", "return 'loaded from LUA_PATH'\n")
    local r = h.prisn({ "lua", "-" }, {
      stdin = "print(pcall(require, 'evil'))",
      env = h.env({ LUA_PATH = dir .. "/?.lua", LUA_PATH_5_4 = dir .. "/?.lua", LUA_CPATH = dir .. "/?.so" }),
    })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^false\t", r.stdout)
  end)

  it("works when copied alone into an empty directory and run from / with a minimal environment", function()
    local dir = h.tempdir("prisn-alone")
    local r = h.run("/bin/cp", { h.bin, dir .. "/prisn" }, { env = { PATH = "/usr/bin:/bin" } })
    assert.equal(0, r.code, r.stderr)
    write(dir .. "/hello.lua", "print('hello from ' .. _VERSION)\n")
    local env = { PATH = "/usr/bin:/bin", PRISN_HOME = dir .. "/home" }
    local v = h.run(dir .. "/prisn", { "version", "-o", "json" }, { cwd = "/", env = env })
    assert.equal(0, v.code, v.stderr)
    assert.is_string(cjson.decode(v.stdout).version)
    local l = h.run(dir .. "/prisn", { "lua", dir .. "/hello.lua" }, { cwd = "/", env = env })
    assert.equal(0, l.code, l.stderr)
    assert.equal("hello from Lua 5.4\n", l.stdout)
  end)

  it("links only libc, libm and the loader dynamically", function()
    if os.getenv("PRISN_SANITIZE") == "1" or os.getenv("PRISN_SANITIZE") == "ON" then
      pending("sanitizer builds link the ASan and UBSan runtimes")
      return
    end
    local r = h.run("/usr/bin/ldd", { h.bin }, { env = { PATH = "/usr/bin:/bin" } })
    assert.equal(0, r.code, r.stderr)
    for line in r.stdout:gmatch("[^\n]+") do
      local lib = line:match("^%s*(%S+)")
      local allowed = lib == "linux-vdso.so.1" or lib:match("^libc%.so") or lib:match("^libm%.so")
        or lib:match("ld%-linux") or lib:match("^libdl%.so") or lib:match("^libpthread%.so")
      assert.is_truthy(allowed, "unexpected library: " .. line)
    end
  end)

  it("stays under 5 MB stripped", function()
    if os.getenv("PRISN_SANITIZE") == "1" or os.getenv("PRISN_SANITIZE") == "ON" then
      pending("sanitizer builds are larger by design")
      return
    end
    local stripped = h.tempdir() .. "/prisn"
    local r = h.run("/usr/bin/strip", { "-o", stripped, h.bin }, { env = { PATH = "/usr/bin:/bin" } })
    assert.equal(0, r.code, r.stderr)
    local size = uv.fs_stat(stripped).size
    assert.is_true(size < 5 * 1024 * 1024, string.format("stripped binary is %d bytes", size))
  end)

  it("uses colour on a terminal only, and never with NO_COLOR or --no-color", function()
    if not uv.fs_stat("/usr/bin/script") then
      pending("util-linux 'script' is needed to give prisn a terminal")
      return
    end
    local function on_tty(extra_env, args)
      local cmd = h.bin .. " " .. table.concat(args, " ")
      return h.run("/usr/bin/script", { "-qec", cmd, "/dev/null" }, { env = h.env(extra_env) })
    end
    local colour = on_tty({ TERM = "xterm" }, { "doctor" })
    assert.matches("\27%[", colour.stdout)
    assert.is_nil(on_tty({ TERM = "xterm", NO_COLOR = "1" }, { "doctor" }).stdout:find("\27[", 1, true))
    assert.is_nil(on_tty({ TERM = "xterm" }, { "doctor", "--no-color" }).stdout:find("\27[", 1, true))
    assert.is_nil(h.prisn({ "doctor" }).stdout:find("\27[", 1, true))
  end)
end)
