local parse = require("prisn.cli.parse")

-- A small tree with every kind of argument and flag the parser knows.
local function tree()
  local noop = function() end
  return {
    name = "prisn",
    summary = "test",
    flags = {
      { name = "output", short = "o", type = "string", values = { "text", "json", "yaml" },
        default = "text", summary = "fmt" },
      { name = "quiet", short = "q", type = "bool", summary = "q" },
      { name = "help", short = "h", type = "bool", summary = "h" },
    },
    subcommands = {
      { name = "run", aliases = { "r" }, summary = "run", handler = noop,
        args = { { name = "SCRIPT", summary = "s", required = true },
                 { name = "ARGS", summary = "a", repeatable = true } },
        flags = {
          { name = "env", short = "e", type = "string", repeatable = true, summary = "e" },
          { name = "timeout", type = "duration", summary = "t" },
          { name = "memory", type = "size", summary = "m" },
          { name = "replicas", short = "r", type = "int", default = "1", summary = "r" },
          { name = "detach", short = "d", type = "bool", summary = "d" },
        } },
      { name = "lua", summary = "lua", handler = noop,
        args = { { name = "FILE", summary = "f", required = true },
                 { name = "ARGS", summary = "a", rest = true } } },
      { name = "runner", summary = "runners", subcommands = {
        { name = "list", summary = "list", handler = noop },
        { name = "show", summary = "show", handler = noop,
          args = { { name = "NAME", summary = "n", required = true } } },
      } },
    },
  }
end

local function usage_error(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.equal("usage", err.code)
  assert.equal(2, err.status)
  return err
end

describe("prisn.cli.parse", function()
  it("resolves a command, its positionals and defaults", function()
    local p = parse.parse(tree(), { "run", "job.py", "a", "b" })
    assert.equal("run", p.command.name)
    assert.same({ "run" }, p.path)
    assert.equal("job.py", p.args.SCRIPT)
    assert.same({ "a", "b" }, p.args.ARGS)
    assert.equal(1, p.flags.replicas)
    assert.is_false(p.flags.detach)
    assert.same({}, p.flags.env)
    assert.equal("text", p.globals.output)
  end)

  it("accepts aliases", function()
    assert.equal("run", parse.parse(tree(), { "r", "x.py" }).command.name)
  end)

  it("parses long, inline, short, attached and clustered flags", function()
    local p = parse.parse(tree(), { "run", "--timeout", "1m30s", "--memory=256M", "-ojson",
      "-qd", "-e", "A=1", "--env=B=2", "x.py" })
    assert.equal(90, p.flags.timeout)
    assert.equal(256 * 1024 * 1024, p.flags.memory)
    assert.equal("json", p.globals.output)
    assert.is_true(p.globals.quiet)
    assert.is_true(p.flags.detach)
    assert.same({ "A=1", "B=2" }, p.flags.env)
  end)

  it("accepts global flags before and after the command", function()
    assert.equal("yaml", parse.parse(tree(), { "-o", "yaml", "run", "x.py" }).globals.output)
    assert.equal("yaml", parse.parse(tree(), { "run", "x.py", "--output", "yaml" }).globals.output)
  end)

  it("keeps the last value of a flag given twice", function()
    assert.equal("yaml", parse.parse(tree(), { "-o", "json", "-o", "yaml", "runner", "list" }).globals.output)
  end)

  it("treats every word after -- as positional", function()
    local p = parse.parse(tree(), { "run", "x.py", "--", "--timeout", "-q" })
    assert.same({ "--timeout", "-q" }, p.args.ARGS)
    assert.is_false(p.globals.quiet)
  end)

  it("gives a rest argument every remaining word, flags included", function()
    local p = parse.parse(tree(), { "lua", "t.lua", "--output=TAP", "-q", "spec" })
    assert.equal("t.lua", p.args.FILE)
    assert.same({ "--output=TAP", "-q", "spec" }, p.args.ARGS)
    assert.equal("text", p.globals.output)
  end)

  it("resolves subcommands", function()
    local p = parse.parse(tree(), { "runner", "show", "python3" })
    assert.same({ "runner", "show" }, p.path)
    assert.equal("python3", p.args.NAME)
  end)

  it("reads KIND/NAME as KIND NAME where a subcommand KIND takes an argument", function()
    local p = parse.parse(tree(), { "runner", "show/python3", "-q" })
    assert.same({ "runner", "show" }, p.path)
    assert.equal("python3", p.args.NAME)
    assert.is_true(p.globals.quiet)
    -- A subcommand without arguments, or an unknown KIND, is no KIND.
    usage_error(function() parse.parse(tree(), { "runner", "list/x" }) end)
    local err = usage_error(function() parse.parse(tree(), { "runner", "nosuch/x" }) end)
    assert.equal("unknown command 'nosuch/x' for 'prisn runner'", err.message)
    -- A slash in a plain argument stays in it.
    assert.equal("a/b.py", parse.parse(tree(), { "run", "a/b.py" }).args.SCRIPT)
  end)

  it("suggests the command meant by a typo", function()
    local err = usage_error(function() parse.parse(tree(), { "rnu" }) end)
    assert.equal("unknown command 'rnu'", err.message)
    assert.equal("Did you mean 'run'?", err.hint)
  end)

  it("suggests a subcommand", function()
    local err = usage_error(function() parse.parse(tree(), { "runner", "lsit" }) end)
    assert.equal("unknown command 'lsit' for 'prisn runner'", err.message)
    assert.equal("Did you mean 'list'?", err.hint)
  end)

  it("suggests the flag meant by a typo", function()
    local err = usage_error(function() parse.parse(tree(), { "run", "x.py", "--timout", "5s" }) end)
    assert.equal("unknown flag --timout for 'prisn run'", err.message)
    assert.equal("Did you mean '--timeout'?", err.hint)
  end)

  it("rejects an unknown short flag", function()
    local err = usage_error(function() parse.parse(tree(), { "run", "x.py", "-z" }) end)
    assert.equal("unknown flag -z for 'prisn run'", err.message)
  end)

  it("rejects a value outside the allowed ones and lists them", function()
    local err = usage_error(function() parse.parse(tree(), { "-o", "xml", "runner", "list" }) end)
    assert.equal("invalid value 'xml' for -o", err.message)
    assert.equal("choose one of: text, json, yaml", err.hint)
  end)

  it("rejects a flag with no value", function()
    local err = usage_error(function() parse.parse(tree(), { "run", "x.py", "--timeout" }) end)
    assert.equal("--timeout needs a value", err.message)
  end)

  it("rejects badly typed values", function()
    assert.matches("whole number", usage_error(function()
      parse.parse(tree(), { "run", "x.py", "-r", "two" }) end).message)
    assert.matches("not a duration", usage_error(function()
      parse.parse(tree(), { "run", "x.py", "--timeout", "5mn" }) end).message)
    assert.matches("not a size", usage_error(function()
      parse.parse(tree(), { "run", "x.py", "--memory", "1GB0" }) end).message)
    assert.matches("is a switch", usage_error(function()
      parse.parse(tree(), { "run", "x.py", "--detach=maybe" }) end).message)
  end)

  it("reports a missing required argument", function()
    local err = usage_error(function() parse.parse(tree(), { "run" }) end)
    assert.equal("missing argument SCRIPT for 'prisn run'", err.message)
    assert.equal("see 'prisn help run'", err.hint)
  end)

  it("does not require arguments when --help is asked for", function()
    local p = parse.parse(tree(), { "run", "--help" })
    assert.is_true(p.globals.help)
    assert.equal("run", p.command.name)
  end)

  it("reports a group used without its subcommand", function()
    local err = usage_error(function() parse.parse(tree(), { "runner" }) end)
    assert.equal("'prisn runner' needs a subcommand", err.message)
    assert.equal("choose one of: list, show", err.hint)
  end)

  it("rejects an extra positional", function()
    local err = usage_error(function() parse.parse(tree(), { "runner", "show", "a", "b" }) end)
    assert.equal("unexpected argument 'b'", err.message)
  end)

  it("takes a dash followed by a digit as an argument, not a flag", function()
    local p = parse.parse(tree(), { "run", "x.py", "-1", "-2.5" })
    assert.same({ "-1", "-2.5" }, p.args.ARGS)
  end)

  it("returns the root for an empty command line", function()
    local root = tree()
    assert.equal(root, parse.parse(root, {}).command)
  end)

  it("reads a switch's explicit value, false included", function()
    local root = tree()
    assert.is_false(parse.parse(root, { "run", "x", "--detach=false" }).flags.detach)
    assert.is_true(parse.parse(root, { "run", "x", "--detach=yes" }).flags.detach)
  end)
end)

describe("prisn.cli.parse.walk, forgiving (what completion reads)", function()
  it("keeps values as typed and leaves a flag waiting for its value", function()
    local st = parse.walk(tree(), { "run", "x", "--timeout", "soon", "-r" }, true)
    assert.equal("soon", st.flags.timeout)
    assert.equal("replicas", st.pending.name)
    assert.equal("run", st.command.name)
    assert.is_true(st.command_done)
  end)

  it("skips unknown flags and stops at a word it cannot place", function()
    local st = parse.walk(tree(), { "--nope", "run", "-zq", "x" }, true)
    assert.equal("run", st.command.name)
    assert.equal("x", st.args.SCRIPT)
    assert.is_nil(st.dead)
    assert.is_true(parse.walk(tree(), { "runner", "nope" }, true).dead)
    assert.is_true(parse.walk(tree(), { "runner", "show", "a", "b" }, true).dead)
  end)

  it("hands every word after a rest argument's start to it, as the parser does", function()
    local st = parse.walk(tree(), { "lua", "f.lua", "-o", "--", "x" }, true)
    assert.same({ "-o", "--", "x" }, st.args.ARGS)
    assert.is_true(st.rest)
    assert.same(parse.parse(tree(), { "lua", "f.lua", "-o", "--", "x" }).args, st.args)
  end)
end)
