-- `prisn runner list | show | check` on the real binary, with a temporary
-- PRISN_HOME and the Tcl runner of contrib/runners as the operator's file.
local h = require("e2e.helper")
local read, write = h.read, h.write
local cjson = require("cjson")
local uv = require("luv")

-- A PRISN_HOME with a runners/ folder holding `files` (name -> source).
local function home_with(files)
  local home = h.tempdir("prisn-home") .. "/home"
  assert(uv.fs_mkdir(home, tonumber("700", 8)))
  assert(uv.fs_mkdir(home .. "/runners", tonumber("755", 8)))
  for name, source in pairs(files or {}) do write(home .. "/runners/" .. name, source) end
  return home, h.env({ PRISN_HOME = home })
end

local TCL = read(h.source_dir .. "/contrib/runners/tcl.lua")
local HAVE_TCLSH = uv.fs_stat("/usr/bin/tclsh") ~= nil

describe("prisn runner", function()
  after_each(h.cleanup)

  it("lists the built-in runners with their extensions and availability", function()
    local r = h.prisn({ "runner", "list" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
    assert.matches("^NAME%s+EXTENSIONS%s+INTERPRETER%s+AVAILABLE%s+SOURCE\n", r.stdout)
    assert.matches("\nbash%s+%.sh %.bash%s+bash%s+yes%s+built%-in\n", r.stdout)
    assert.matches("\nlua%s+%.lua%s+@prisn%s+yes%s+built%-in\n", r.stdout)
    assert.matches("\nnode%s+%.js %.mjs %.cjs%s+node%s+%a+%s+built%-in\n", r.stdout)
    assert.matches("\npython3%s+%.py %.pyw%s+python3%s+%a+%s+built%-in\n", r.stdout)
  end)

  it("lists them as JSON with stable fields", function()
    local r = h.prisn({ "runner", "list", "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    local list = cjson.decode(r.stdout)
    local by_name = {}
    for _, row in ipairs(list) do by_name[row.name] = row end
    for _, name in ipairs({ "bash", "bun", "deno", "lua", "node", "perl", "php", "python3", "ruby", "sh" }) do
      assert.is_table(by_name[name], name)
    end
    local lua = by_name.lua
    assert.same({ ".lua" }, lua.extensions)
    assert.equal("@prisn", lua.interpreter)
    assert.is_true(lua.available)
    assert.equal(uv.fs_realpath(h.bin), uv.fs_realpath(lua.interpreter_path))
    assert.equal("none", lua.deps)
    assert.equal("built-in", lua.source)
    assert.equal("python", by_name.python3.deps)
    assert.same({}, by_name.sh.extensions)
    assert.is_string(by_name.bash.description)
  end)

  it("adds an operator runner from $PRISN_HOME/runners", function()
    local home, env = home_with({ ["tcl.lua"] = TCL })
    local file = home .. "/runners/tcl.lua"
    local r = h.prisn({ "runner", "list" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.matches("\ntcl%s+%.tcl%s+tclsh%s+%a+%s+" .. file:gsub("%p", "%%%0") .. "\n", r.stdout)
    local j = cjson.decode(h.prisn({ "runner", "list", "-o", "json" }, { env = env }).stdout)
    local tcl
    for _, row in ipairs(j) do if row.name == "tcl" then tcl = row end end
    assert.equal(file, tcl.source)
    assert.same({ ".tcl" }, tcl.extensions)
    assert.equal(HAVE_TCLSH, tcl.available)
  end)

  it("shows every field of an operator runner", function()
    local home, env = home_with({ ["tcl.lua"] = TCL })
    local r = h.prisn({ "runner", "show", "tcl", "-o", "json" }, { env = env })
    assert.equal(0, r.code, r.stderr)
    local t = cjson.decode(r.stdout)
    assert.equal("tcl", t.name)
    assert.equal(home .. "/runners/tcl.lua", t.source)
    assert.same({ "{interpreter}", "{script}", "{args}" }, t.command)
    assert.equal(cjson.null, t.inline)
    assert.equal(cjson.null, t.build_command)
    assert.equal("(Lua function)", t.prepare)
    assert.same({ LANG = "C.UTF-8" }, t.env)
    assert.equal("apt-get install tcl", t.install_hint)
    if HAVE_TCLSH then assert.matches("^8%.%d+", t.version) end
    local text = h.prisn({ "runner", "show", "tcl" }, { env = env })
    assert.matches("\nPrepare:%s+%(Lua function%)\n", text.stdout)
  end)

  it("shows a built-in runner", function()
    local r = h.prisn({ "runner", "show", "python3" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^Name:%s+python3\n", r.stdout)
    assert.matches("\nSource:%s+built%-in\n", r.stdout)
    assert.matches("\nExtensions:%s+%.py, %.pyw\n", r.stdout)
    assert.matches("\nCommand:%s+{interpreter} {script} {args}\n", r.stdout)
    assert.matches("\nInline:%s+{interpreter} %-c {code} {args}\n", r.stdout)
    assert.matches("\nBuild command:%s+%-\n", r.stdout)
    assert.matches("\nEnv:\n  PYTHONUNBUFFERED:%s+1\n", r.stdout)
    assert.matches("\nDeps:%s+python\n", r.stdout)
    local j = cjson.decode(h.prisn({ "runner", "show", "python3", "-o", "json" }).stdout)
    for _, field in ipairs({ "name", "description", "source", "extensions", "shebangs", "interpreter",
      "interpreter_path", "available", "version", "command", "inline", "env", "deps", "version_command",
      "install_hint", "build_command", "prepare" }) do
      assert.is_not_nil(j[field], field)
    end
    assert.same({ "{interpreter}", "--version" }, j.version_command)
  end)

  it("refuses to show an unknown runner, with a suggestion", function()
    local home, env = home_with()
    local r = h.prisn({ "runner", "show", "pyhton3" }, { env = env })
    assert.equal(1, r.code)
    assert.equal("", r.stdout)
    assert.equal("Error: unknown runner 'pyhton3'\nHint: Did you mean 'python3'? Known runners: bash, bun, deno, "
      .. "lua, node, perl, php, python3, ruby, sh; add one as " .. home .. "/runners/NAME.lua "
      .. "(see docs/RUNNERS.md)\n", r.stderr)
  end)

  it("checks a good runner file", function()
    local r = h.prisn({ "runner", "check", h.source_dir .. "/contrib/runners/tcl.lua" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("ok: runner 'tcl' (extensions .tcl)\n", r.stdout)
    if HAVE_TCLSH then assert.equal("", r.stderr) end
    local j = h.prisn({ "runner", "check", h.source_dir .. "/contrib/runners/tcl.lua", "-o", "json" })
    assert.same({ ok = true, name = "tcl", file = h.source_dir .. "/contrib/runners/tcl.lua", extensions = { ".tcl" } },
      cjson.decode(j.stdout))
  end)

  it("notes an interpreter that is not installed", function()
    local dir = h.tempdir()
    write(dir .. "/nope.lua", 'return { name = "nope", interpreter = "prisn-no-such-interpreter", '
      .. 'command = { "{interpreter}", "{script}" }, install_hint = "build it yourself" }')
    local r = h.prisn({ "runner", "check", dir .. "/nope.lua" })
    assert.equal(0, r.code)
    assert.equal("ok: runner 'nope' (no extensions)\n", r.stdout)
    assert.equal("Note: prisn-no-such-interpreter: not found on this machine (build it yourself)\n", r.stderr)
  end)

  it("says exactly what is wrong with a bad runner file", function()
    local dir = h.tempdir()
    local cases = {
      { "return { name = 'tcl', extensions = { '.tcl', 5 }, interpreter = 'tclsh',\n"
        .. "  command = { '{interpreter}', '{script}' } }\n",
        "Error: " .. dir .. "/tcl.lua: runner.extensions[2]: expected a string, got 5\n" },
      { "return { name = 'tcl', interpreter = 'tclsh', command = { '{interpreter}', '{script}' },\n"
        .. "  deps = 'pip' }\n",
        "Error: " .. dir .. '/tcl.lua: runner.deps: "pip" is not one of python, node, none\n' },
      { "return { name = 'tcl',\n  interpreter = 'tclsh'\n  command = {} }\n",
        "Error: " .. dir .. "/tcl.lua:3: '}' expected (to close '{' at line 1) near 'command'\n" },
      { "return { name = 'tk', interpreter = 'wish', command = { '{interpreter}', '{script}' } }\n",
        "Error: " .. dir .. '/tcl.lua: runner.name: "tk" does not match the file name tcl.lua\n' },
      { "while true do end\n",
        "Error: " .. dir .. "/tcl.lua:1: ran over its budget of 1000000 instructions (an endless loop?)\n" },
    }
    for _, case in ipairs(cases) do
      write(dir .. "/tcl.lua", case[1])
      local r = h.prisn({ "runner", "check", dir .. "/tcl.lua" })
      assert.equal(1, r.code, case[1])
      assert.equal("", r.stdout)
      assert.equal(case[2] .. "Hint: see docs/RUNNERS.md for the runner format\n", r.stderr)
    end
    local missing = h.prisn({ "runner", "check", dir .. "/none.lua" })
    assert.equal(1, missing.code)
    assert.equal("Error: cannot read " .. dir .. "/none.lua: No such file or directory\n"
      .. "Hint: check the path of the runner file\n", missing.stderr)
  end)

  it("skips a bad operator file with a warning and lists the rest", function()
    local home, env = home_with({ ["tcl.lua"] = "return { name = 'tcl', extensions = { '.tcl', 5 } }" })
    local r = h.prisn({ "runner", "list" }, { env = env })
    assert.equal(0, r.code)
    assert.matches("\npython3%s", r.stdout)
    assert.is_nil(r.stdout:find("\ntcl ", 1, true))
    assert.equal("Warning: skipped " .. home .. "/runners/tcl.lua: runner.extensions[2]: expected a string, "
      .. "got 5\n", r.stderr)
  end)
end)
