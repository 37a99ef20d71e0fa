local runners = require("prisn.exec.runners")

local HOME = "/home/op/.prisn"
local DIR = HOME .. "/runners"

-- A machine made of tables: `files` maps paths to contents, `exec` lists the
-- executable paths, `env` is the environment.
local function fake(files, exec, env)
  files, env = files or {}, env or { PATH = "/usr/local/bin:/usr/bin" }
  local executable = {}
  for _, p in ipairs(exec or {}) do executable[p] = true end
  return {
    read_file = function(path)
      if files[path] then return files[path] end
      return nil, path .. ": No such file or directory", "ENOENT"
    end,
    read_first_line = function(path) return files[path] and files[path]:match("^[^\n]*") end,
    list_dir = function(dir)
      local names = {}
      for path in pairs(files) do
        local name = path:sub(#dir + 2)
        if path:sub(1, #dir + 1) == dir .. "/" and not name:find("/", 1, true) then names[#names + 1] = name end
      end
      return #names > 0 and names or nil
    end,
    executable = function(path) return executable[path] == true end,
    exepath = function() return "/opt/prisn/bin/prisn" end,
    getenv = function(name) return env[name] end,
  }
end

local function registry(files, opts)
  opts = opts or {}
  return runners.load({ home = HOME, probes = fake(files), budget = opts.budget })
end

local TCL = [[
return {
  name = "tcl",
  extensions = { ".tcl" },
  shebangs = { "tclsh[%d%.]*" },
  interpreter = "tclsh",
  command = { "{interpreter}", "{script}", "{args}" },
}
]]

describe("runners.detect", function()
  local reg
  before_each(function() reg = registry() end)

  it("prefers --runner, then the shebang, then the extension", function()
    local r, how = runners.detect(reg, "/srv/job.py", { runner = "node", first_line = "#!/bin/sh" })
    assert.equal("node", r.name)
    assert.equal("flag", how)
    r, how = runners.detect(reg, "/srv/job.py", { first_line = "#!/bin/sh" })
    assert.equal("sh", r.name)
    assert.equal("shebang", how)
    r, how = runners.detect(reg, "/srv/job.py", { first_line = "import os" })
    assert.equal("python3", r.name)
    assert.equal("extension", how)
  end)

  it("sends .sh to bash, and to sh when the shebang says /bin/sh", function()
    assert.equal("bash", runners.detect(reg, "deploy.sh", { first_line = "" }).name)
    assert.equal("bash", runners.detect(reg, "deploy.sh", { first_line = "#!/bin/bash -e" }).name)
    assert.equal("sh", runners.detect(reg, "deploy.sh", { first_line = "#!/bin/sh" }).name)
  end)

  it("reads the first line through the probes when it is not given", function()
    local probes = fake({ ["/srv/tool"] = "#!/usr/bin/env node\nconsole.log(1)\n" })
    assert.equal("node", runners.detect(reg, "/srv/tool", { probes = probes }).name)
  end)

  it("understands env shebangs, with -S, options, assignments and arguments", function()
    assert.same({ program = "python3", name = "python3", args = {} },
      runners.parse_shebang("#!/usr/bin/env python3"))
    assert.same({ program = "python3", name = "python3", args = { "-u", "-X", "dev" } },
      runners.parse_shebang("#!/usr/bin/env -S python3 -u -X dev"))
    assert.same({ program = "node", name = "node", args = {} },
      runners.parse_shebang("#! /usr/bin/env -i -u HOME LANG=C node\r"))
    assert.same({ program = "/bin/bash", name = "bash", args = { "-e -x" } },
      runners.parse_shebang("#!/bin/bash -e -x"))
    assert.is_nil(runners.parse_shebang("#!/usr/bin/env"))
    assert.is_nil(runners.parse_shebang("# just a comment"))
    assert.equal("python3", runners.detect(reg, "x", { first_line = "#!/usr/bin/env -S python3 -u" }).name)
    assert.equal("node", runners.detect(reg, "x", { first_line = "#!/usr/bin/env -S node --no-warnings" }).name)
  end)

  it("matches version-suffixed interpreters, but only whole names", function()
    for _, line in ipairs({ "#!/usr/bin/python3.11", "#!/usr/bin/env python3.12", "#!/usr/bin/python" }) do
      assert.equal("python3", runners.detect(reg, "x", { first_line = line }).name, line)
    end
    assert.equal("ruby", runners.detect(reg, "x", { first_line = "#!/usr/bin/ruby3.1" }).name)
    assert.equal("lua", runners.detect(reg, "x", { first_line = "#!/usr/bin/env lua5.4" }).name)
    assert.equal("shebang", runners.detect(reg, "x.py", { first_line = "#!/usr/bin/python3-config" }).name)
    assert.equal("shebang", runners.detect(reg, "x.lua", { first_line = "#!/usr/bin/lua5.1" }).name)
  end)

  it("runs a shebang no runner claims with that interpreter, as the kernel would", function()
    local r, how = runners.detect(reg, "/srv/x.sh", { first_line = "#!/usr/bin/zsh -f" })
    assert.equal("shebang", r.name)
    assert.equal("shebang", how)
    assert.same({ "/usr/bin/zsh", "-f", "/srv/x.sh", "a", "b c" },
      runners.command(r, { script = "/srv/x.sh", args = { "a", "b c" }, interpreter = "/usr/bin/zsh" }))
    local path, err, code, hint = runners.resolve_interpreter(r, fake())
    assert.is_nil(path)
    assert.equal("/usr/bin/zsh: not found", err)
    assert.equal("ENOENT", code)
    assert.equal("install zsh, or choose a runner with --runner NAME", hint)
  end)

  it("refuses an unknown type, naming the file and listing the runners", function()
    local r, err, code, hint = runners.detect(reg, "/srv/report.xyz", { first_line = "hello" })
    assert.is_nil(r)
    assert.equal("cannot tell how to run /srv/report.xyz: no runner claims the extension .xyz", err)
    assert.equal("unknown_type", code)
    assert.equal("Known runners: bash, bun, deno, lua, node, perl, php, python3, ruby, sh; "
      .. "choose one with --runner NAME, or add one as " .. DIR .. "/NAME.lua (see docs/RUNNERS.md)", hint)
    err = select(2, runners.detect(reg, "/srv/Makefile", { first_line = "all:" }))
    assert.equal("cannot tell how to run /srv/Makefile: it has no extension and no shebang line", err)
  end)

  it("refuses an unknown --runner with a suggestion", function()
    local r, err, code, hint = runners.detect(reg, "x.py", { runner = "pyton" })
    assert.is_nil(r)
    assert.equal("unknown runner 'pyton'", err)
    assert.equal("unknown_runner", code)
    assert.equal("Did you mean 'python3'? Known runners: bash, bun, deno, lua, node, perl, php, python3, "
      .. "ruby, sh; add one as " .. DIR .. "/NAME.lua (see docs/RUNNERS.md)", hint)
  end)

  it("needs --runner for inline code", function()
    local r, err, code = runners.detect(reg, nil, {})
    assert.is_nil(r)
    assert.equal("inline code needs a runner", err)
    assert.equal("usage", code)
    assert.equal("python3", runners.detect(reg, nil, { runner = "python3" }).name)
  end)

  it("matches extensions case-insensitively, longest first", function()
    local reg2 = registry({ [DIR .. "/dts.lua"] = [[return { name = "dts", extensions = { ".d.ts" },
      interpreter = "true", command = { "{interpreter}", "{script}" } }]] })
    assert.equal("python3", runners.detect(reg2, "/a/B.PY", { first_line = "" }).name)
    assert.equal("dts", runners.detect(reg2, "/a/types.d.ts", { first_line = "" }).name)
    assert.equal("deno", runners.detect(reg2, "/a/main.ts", { first_line = "" }).name)
    assert.is_nil(runners.detect(reg2, "/a/.py", { first_line = "" }))
  end)
end)

describe("operator runners", function()
  it("add a runner that claims new extensions and shebangs", function()
    local reg = registry({ [DIR .. "/tcl.lua"] = TCL })
    assert.equal(DIR .. "/tcl.lua", reg.sources.tcl)
    assert.equal("built-in", reg.sources.python3)
    assert.equal("tcl", runners.detect(reg, "/srv/a.tcl", { first_line = "" }).name)
    assert.equal("tcl", runners.detect(reg, "/srv/a", { first_line = "#!/usr/bin/env tclsh8.6" }).name)
    assert.same({}, reg.errors)
  end)

  it("replace a built-in of the same name, claims included", function()
    local reg = registry({ [DIR .. "/python3.lua"] = [[
      return { name = "python3", extensions = { ".py" }, interpreter = "/opt/py/bin/python3",
        command = { "{interpreter}", "-I", "{script}", "{args}" }, deps = "python" } ]] })
    local r = runners.detect(reg, "/srv/job.py", { first_line = "" })
    assert.equal("/opt/py/bin/python3", r.interpreter)
    assert.equal(DIR .. "/python3.lua", reg.sources.python3)
    assert.is_nil(runners.detect(reg, "/srv/job.pyw", { first_line = "" }))
  end)

  it("win over a built-in's claim on the same extension", function()
    local reg = registry({ [DIR .. "/tsx.lua"] = [[
      return { name = "tsx", extensions = { ".ts" }, interpreter = "tsx",
        command = { "{interpreter}", "{script}" } } ]] })
    assert.equal("tsx", runners.detect(reg, "main.ts", { first_line = "" }).name)
  end)

  local function check(source, name)
    local path = DIR .. "/" .. (name or "tcl") .. ".lua"
    local r, err, code = runners.load_file(path, fake({ [path] = source }), 20000)
    assert.is_nil(r)
    assert.equal("invalid_runner", code)
    return err
  end

  local function with(field_src)
    return 'return { name = "tcl", interpreter = "tclsh", command = { "{interpreter}", "{script}" }, '
      .. field_src .. " }"
  end

  it("are refused with the file and the bad field", function()
    local f = DIR .. "/tcl.lua"
    local cases = {
      { with('extensions = { ".tcl", 5 }'), f .. ": runner.extensions[2]: expected a string, got 5" },
      { with('extensions = { "tcl" }'),
        f .. ': runner.extensions[1]: "tcl" is not an extension with its dot, like ".py"' },
      { with('deps = "ruby"'), f .. ': runner.deps: "ruby" is not one of python, node, none' },
      { with('env = { FOO = 1 }'), f .. ": runner.env.FOO: expected a string, got 1" },
      { with('shebangs = { "tclsh[" }'), f .. ": runner.shebangs[1]: is not a valid Lua pattern: "
        .. "malformed pattern (missing ']')" },
      { with('version = { "{interpreter}", "{script}" }'), f .. ": runner.version[2]: unknown placeholder "
        .. "{script} (known: {interpreter})" },
      { with('inline = { "{interpreter}", "-c{args}", "{code}" }'), f .. ": runner.inline[2]: {args} must be "
        .. "an item of its own" },
      { with('prepare = "yes"'), f .. ': runner.prepare: expected a function, got "yes"' },
      { 'return { name = "tcl", command = { "tclsh", "{script}" } }', f .. ": runner.interpreter: is required" },
      { 'return { name = "tcl", interpreter = "bin/tclsh", command = { "{script}" } }',
        f .. ': runner.interpreter: "bin/tclsh" is not a program name, an absolute path or "@prisn"' },
      { 'return { name = "tcl", interpreter = "tclsh" }',
        f .. ": runner.command: is required (or a build_command function)" },
      { 'return { name = "tcl", interpreter = "tclsh", command = { "{interpreter}", "{scirpt}" } }',
        f .. ": runner.command[2]: unknown placeholder {scirpt} (known: {args}, {interpreter}, {script}, "
        .. "{script_dir})" },
      { 'return { name = "tcl", interpreter = "tclsh", command = { "{interpreter}" } }',
        f .. ": runner.command: never mentions {script}" },
      { with('name = "other"'):gsub('name = "tcl", ', "", 1),
        f .. ': runner.name: "other" does not match the file name tcl.lua' },
      { 'return "tcl"', f .. ": runner: expected the file to return a table, got string" },
      { 'return { name = "tcl",\n  interpreter = "tclsh" command = {} }', f .. ":2: '}' expected (to close '{' at "
        .. "line 1) near 'command'" },
      { 'local x = nil\nreturn x.field', f .. ":2: attempt to index a nil value (local 'x')" },
      { 'return { name = io.read() }', f .. ":1: attempt to index a nil value (global 'io')" },
      { 'local os = require("os")', f .. ":1: attempt to call a nil value (global 'require')" },
    }
    for _, case in ipairs(cases) do
      assert.equal(case[2], check(case[1]))
    end
    assert.matches("^" .. f:gsub("%p", "%%%0") .. ": runner%.extension: unknown field %(known fields: build_command, ",
      check(with('extension = ".tcl"')))
  end)

  it("keep the whole path in messages about long file names", function()
    local dir = "/var/lib/prisn/some/very/long/operator/directory/for/runners"
    local path = dir .. "/tcl.lua"
    local _, err = runners.load_file(path, fake({ [path] = "return {\n x = }" }))
    assert.equal(path .. ":2: unexpected symbol near '}'", err)
  end)

  it("are stopped when they loop forever, even inside pcall", function()
    local f = DIR .. "/tcl.lua"
    assert.equal(f .. ":1: ran over its budget of 20000 instructions (an endless loop?)",
      check("while true do end"))
    assert.matches("^" .. f:gsub("%p", "%%%0") .. ":%d: ran over its budget of 20000 instructions",
      check("while true do\n  pcall(function() while true do end end)\nend"))
  end)

  it("are skipped when bad, while scripts they claim fail with their error", function()
    local bad = 'return { name = "tcl", extensions = { ".tcl", 5 }, interpreter = "tclsh", '
      .. 'command = { "{interpreter}", "{script}" } }'
    local reg = registry({ [DIR .. "/tcl.lua"] = bad, [DIR .. "/README"] = "not a runner" })
    assert.is_nil(reg.runners.tcl)
    assert.equal(1, #reg.errors)
    assert.equal(DIR .. "/tcl.lua", reg.errors[1].file)
    assert.equal("python3", runners.detect(reg, "x.py", { first_line = "" }).name)
    local r, err, code, hint = runners.detect(reg, "x.tcl", { first_line = "" })
    assert.is_nil(r)
    assert.equal("runner 'tcl' is invalid: " .. DIR .. "/tcl.lua: runner.extensions[2]: expected a string, "
      .. "got 5", err)
    assert.equal("invalid_runner", code)
    assert.equal("fix " .. DIR .. "/tcl.lua; 'prisn runner check " .. DIR .. "/tcl.lua' shows what is wrong "
      .. "(see docs/RUNNERS.md)", hint)
    err = select(2, runners.detect(reg, "x", { runner = "tcl" }))
    assert.matches("^runner 'tcl' is invalid: ", err)
    hint = select(4, runners.detect(reg, "x.zzz", { first_line = "" }))
    assert.matches("; invalid runner files were skipped: " .. (DIR .. "/tcl.lua"):gsub("%p", "%%%0") .. "$",
      hint)
  end)

  it("block the built-in they meant to replace when they are bad", function()
    local reg = registry({ [DIR .. "/python3.lua"] = "return {" })
    local r, err = runners.detect(reg, "x.py", { first_line = "" })
    assert.is_nil(r)
    assert.matches("^runner 'python3' is invalid: " .. DIR:gsub("%p", "%%%0") .. "/python3%.lua:1: ", err)
    err = select(2, runners.detect(reg, "x", { first_line = "#!/usr/bin/env python3" }))
    assert.matches("^runner 'python3' is invalid", err)
  end)

  it("run their functions under the budget too", function()
    local path = DIR .. "/loop.lua"
    local reg = registry({ [path] = [[
      return { name = "loop", interpreter = "loop", extensions = { ".loop" },
        build_command = function(ctx) while true do end end } ]] })
    local r = runners.detect(reg, "x.loop", { first_line = "" })
    local argv, err, code = runners.command(r, { script = "x.loop", interpreter = "/bin/loop" })
    assert.is_nil(argv)
    assert.equal("runner loop: build_command failed: " .. path
      .. ":2: ran over its budget of 1000000 instructions (an endless loop?)", err)
    assert.equal("invalid_runner", code)
  end)
end)

describe("runners.command", function()
  local runner = {
    name = "demo", interpreter = "demo",
    command = { "{interpreter}", "--dir={script_dir}", "{args}", "--", "{script}" },
    inline = { "{interpreter}", "-e", "{code}", "{args}" },
  }

  it("expands {args} in place, and other placeholders inside items", function()
    assert.same({ "/bin/demo", "--dir=/srv/jobs", "a", "-b", "c d", "--", "/srv/jobs/x.demo" },
      runners.command(runner, { script = "/srv/jobs/x.demo", interpreter = "/bin/demo", args = { "a", "-b", "c d" } }))
    assert.same({ "/bin/demo", "--dir=/srv/jobs", "--", "/srv/jobs/x.demo" },
      runners.command(runner, { script = "/srv/jobs/x.demo", interpreter = "/bin/demo" }))
    assert.same({ "/bin/demo", "--dir=.", "--", "x.demo" },
      runners.command(runner, { script = "x.demo", interpreter = "/bin/demo", args = {} }))
  end)

  it("uses the inline template for code, and refuses a runner without one", function()
    assert.same({ "/bin/demo", "-e", "print(1)", "x" },
      runners.command(runner, { code = "print(1)", interpreter = "/bin/demo", args = { "x" } }))
    local argv, err, code = runners.command({ name = "tcl", interpreter = "tclsh", command = { "{script}" } },
      { code = "puts 1", interpreter = "/usr/bin/tclsh" })
    assert.is_nil(argv)
    assert.equal("runner tcl cannot run inline code", err)
    assert.equal("ENOTSUP", code)
  end)

  it("expands the built-ins' templates", function()
    local reg = registry()
    local ctx = { script = "/s/x", interpreter = "/i", args = { "1" } }
    assert.same({ "/i", "/s/x", "1" }, runners.command(reg.runners.python3, ctx))
    assert.same({ "/i", "lua", "/s/x", "1" }, runners.command(reg.runners.lua, ctx))
    assert.same({ "/i", "run", "-A", "/s/x", "1" }, runners.command(reg.runners.deno, ctx))
    assert.same({ "/i", "-c", "echo $1", "bash", "1" },
      runners.command(reg.runners.bash, { code = "echo $1", interpreter = "/i", args = { "1" } }))
  end)

  it("checks what build_command returns", function()
    local function build(fn)
      return runners.command({ name = "b", interpreter = "b", build_command = fn },
        { script = "/s", interpreter = "/b" })
    end
    assert.same({ "/b", "--x", "/s" }, build(function(ctx) return { ctx.interpreter, "--x", ctx.script } end))
    local _, err = build(function() return { "/b", 1 } end)
    assert.equal("runner b: build_command returned a table that is not one, expected a non-empty list of strings", err)
    _, err = build(function() end)
    assert.equal("runner b: build_command returned nil, expected a non-empty list of strings", err)
    _, err = build(function() error("no way", 0) end)
    assert.equal("runner b: build_command failed: no way", err)
  end)
end)

describe("runners.environment", function()
  it("adds the runner's env without overriding, then runs prepare", function()
    local runner = { name = "p", env = { A = "runner", B = "runner" },
      prepare = function(ctx) ctx.env.C = ctx.script_dir .. "/lib" end }
    local env = runners.environment(runner, { script = "/srv/app/x", env = { A = "user" } })
    assert.same({ A = "user", B = "runner", C = "/srv/app/lib" }, env)
  end)

  it("refuses an environment that prepare spoiled", function()
    local _, err = runners.environment({ name = "p", prepare = function(ctx) ctx.env.N = 1 end }, { script = "/x" })
    assert.equal("runner p: prepare left env.N = number, expected a string", err)
  end)

  it("runs the tcl example's prepare", function()
    local path = DIR .. "/tcl.lua"
    local source = assert(io.open((os.getenv("PRISN_SOURCE_DIR") or ".") .. "/contrib/runners/tcl.lua")):read("a")
    local r = assert(runners.load_file(path, fake({ [path] = source })))
    local env = runners.environment(r, { script = "/srv/t/x.tcl", env = { TCLLIBPATH = "/opt/tcl" } })
    assert.same({ LANG = "C.UTF-8", TCLLIBPATH = "/opt/tcl {/srv/t/lib}" }, env)
  end)
end)

describe("runners.resolve_interpreter", function()
  local probes = fake({}, { "/usr/bin/python3", "/usr/local/bin/node", "/usr/bin/node", "/opt/tcl/tclsh" })

  it("searches PATH in order", function()
    assert.equal("/usr/bin/python3", runners.resolve_interpreter({ interpreter = "python3" }, probes))
    assert.equal("/usr/local/bin/node", runners.resolve_interpreter({ interpreter = "node" }, probes))
    assert.equal("/usr/bin/node", runners.resolve_interpreter({ interpreter = "node" }, probes, "/bin:/usr/bin"))
  end)

  it("takes absolute paths as they are and @prisn as this binary", function()
    assert.equal("/opt/tcl/tclsh", runners.resolve_interpreter({ interpreter = "/opt/tcl/tclsh" }, probes))
    assert.equal("/opt/prisn/bin/prisn", runners.resolve_interpreter({ interpreter = "@prisn" }, probes))
  end)

  it("says what is missing and how to install it", function()
    local path, err, code, hint = runners.resolve_interpreter(
      { interpreter = "ruby", install_hint = "apt-get install ruby" }, probes)
    assert.is_nil(path)
    assert.equal("ruby: not found", err)
    assert.equal("ENOENT", code)
    assert.equal("apt-get install ruby", hint)
    assert.equal("/opt/tcl/tclx: not found",
      select(2, runners.resolve_interpreter({ interpreter = "/opt/tcl/tclx" }, probes)))
  end)
end)
