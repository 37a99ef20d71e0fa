-- The completion engine: what TAB offers after a given line, against the real
-- command tree and against a small fake tree with the flag and argument kinds
-- real commands do not use yet (dynamic values, dirs, aliases, hidden).
local complete = require("prisn.cli.complete")
local cli = require("prisn.cli")

-- Just the values, in order, so expectations read like what the user sees.
local function values(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = item.value end
  return out
end

-- The values and the directive: what the shell is told.
local function offer(root, words, current)
  local items, directive = complete.candidates(root, words, current)
  return values(items), directive
end

local function description_of(items, value)
  for _, item in ipairs(items) do
    if item.value == value then return item.description end
  end
  return nil
end

describe("prisn.cli.complete against the real commands", function()
  local root = cli.root()

  local function real(words, current) return offer(root, words, current) end

  it("offers the visible commands after 'prisn', never hidden ones", function()
    local got, directive = real({}, "")
    assert.same(cli.visible_names(root), got)
    assert.equal("none", directive)
    for _, name in ipairs(got) do assert.is_not.equal("__complete", name) end
    assert.same({}, (real({}, "__")))
  end)

  it("completes a command name from its prefix, with its summary", function()
    assert.same({ { "version" }, "none" }, { real({}, "vers") })
    local items = complete.candidates(root, {}, "vers")
    assert.equal(cli.find(root, "version").summary, description_of(items, "version"))
  end)

  it("offers nothing, and no file names, for an unknown command", function()
    assert.same({ {}, "none" }, { real({ "nosuch" }, "") })
  end)

  it("steps over an unknown flag as if it took no value", function()
    assert.same({ "version" }, (real({ "--bogus" }, "vers")))
    assert.same({ "version" }, (real({ "-x" }, "vers")))
  end)

  it("offers the values of -o after the flag", function()
    assert.same({ { "text", "wide", "json", "yaml" }, "none" }, { real({ "-o" }, "") })
    assert.same({ { "json" }, "none" }, { real({ "--output" }, "j") })
    assert.same({ { "yaml" }, "none" }, { real({ "version", "-o" }, "y") })
  end)

  it("offers --output=VALUE for --output=", function()
    assert.same({ "--output=text", "--output=wide", "--output=json", "--output=yaml" }, (real({}, "--output=")))
    assert.same({ "--output=json" }, (real({ "version" }, "--output=j")))
    assert.same({}, (real({}, "--output=xml")))
  end)

  it("completes a value glued to a short flag", function()
    assert.same({ "-ojson" }, (real({}, "-oj")))
    assert.same({ "-o=json" }, (real({}, "-o=j")))
    assert.same({ "-qojson" }, (real({}, "-qoj")))
  end)

  it("offers a complete short flag as it is, so TAB moves on", function()
    assert.same({ { "-o" }, "none" }, { real({}, "-o") })
    local items = complete.candidates(root, {}, "-o")
    assert.truthy(description_of(items, "-o"):find("Output format"))
    assert.same({}, (real({}, "-x")))
  end)

  it("lists the long global flags for '-' and '--', anywhere on the line", function()
    local all = {}
    for i, flag in ipairs(cli.GLOBAL_FLAGS) do all[i] = "--" .. flag.name end
    assert.same({ all, "none" }, { real({}, "-") })
    assert.same(all, (real({}, "--")))
    assert.same(all, (real({ "completion" }, "--")))
    assert.same({ "--namespace", "--no-color" }, (real({ "completion" }, "--n")))
  end)

  it("does not offer a flag again once it is on the line", function()
    local got = real({ "--quiet", "completion" }, "--")
    assert.same({}, (real({ "--quiet" }, "--q")))
    for _, v in ipairs(got) do assert.is_not.equal("--quiet", v) end
    got = real({ "-o", "json" }, "--")
    for _, v in ipairs(got) do assert.is_not.equal("--output", v) end
  end)

  it("reads global flags before the command", function()
    assert.same({ "completion" }, (real({ "-o", "json", "--quiet" }, "comp")))
    assert.same({ "completion" }, (real({ "--output=json" }, "comp")))
    assert.same({ "completion" }, (real({ "-ojson" }, "comp")))
  end)

  it("offers the shells after 'completion', and nothing after the shell", function()
    assert.same({ { "bash", "zsh", "fish", "powershell" }, "none" }, { real({ "completion" }, "") })
    assert.same({ "zsh" }, (real({ "completion" }, "z")))
    assert.same({ {}, "none" }, { real({ "completion", "bash" }, "") })
  end)

  it("offers nothing after a command that takes no arguments", function()
    assert.same({ {}, "none" }, { real({ "version" }, "") })
  end)

  it("completes file names for 'prisn lua', then leaves the rest to the shell", function()
    assert.same({ {}, "file" }, { real({ "lua" }, "") })
    assert.same({ {}, "default" }, { real({ "lua", "x.lua" }, "") })
    -- The script's own flags: prisn offers none of its own there.
    assert.same({ {}, "default" }, { real({ "lua", "x.lua" }, "--") })
    assert.same({ {}, "default" }, { real({ "lua", "x.lua", "-o" }, "") })
  end)

  it("offers namespaces after -n, \"default\" always among them", function()
    local items, directive = real({ "--namespace" }, "")
    assert.equal("none", directive)
    assert.truthy(table.concat(items, " "):find("default", 1, true))
    assert.same({ "--namespace=default" }, (real({}, "--namespace=def")))
  end)

  it("offers nothing for a value prisn cannot know", function()
    assert.same({ {}, "none" }, { real({ "--context" }, "") })
  end)

  it("offers true/false after a bool flag's '='", function()
    assert.same({ "--quiet=true", "--quiet=false" }, (real({}, "--quiet=")))
  end)
end)

describe("prisn.cli.complete against a fake tree", function()
  local seen_ctx
  local deployments = function(partial, ctx)
    seen_ctx = { partial = partial, ns = ctx.globals.namespace, path = ctx.path }
    return { { value = "api", description = "running" }, "web", { "worker", "stopped" } }
  end
  local handler = function() return 0 end
  local root = {
    name = "prisn",
    flags = {
      { name = "output", short = "o", type = "string", values = { "text", "json" }, summary = "Format" },
      { name = "namespace", short = "n", type = "string", summary = "Namespace" },
      { name = "quiet", short = "q", type = "bool", summary = "Quiet" },
    },
    subcommands = {
      { name = "deploy", aliases = { "dep" }, summary = "Deployments", subcommands = {
        { name = "list", aliases = { "ls" }, summary = "List them", handler = handler, flags = {
          { name = "state", type = "string", values = { "running", "stopped" }, summary = "State" },
          { name = "label", short = "l", type = "string", repeatable = true, summary = "Label" },
          { name = "config", type = "string", complete = "file", summary = "Config file" },
          { name = "limit", type = "int", summary = "At most" },
          { name = "secret", type = "bool", hidden = true, summary = "Hidden" },
        } },
        { name = "remove", aliases = { "rm" }, summary = "Remove one", handler = handler,
          args = { { name = "NAME", summary = "Deployment", complete = deployments } } },
        { name = "debug", hidden = true, summary = "Hidden", handler = handler },
      } },
      { name = "run", summary = "Run a script", handler = handler,
        flags = { { name = "workdir", short = "w", type = "string", complete = "dir", summary = "Dir" } },
        args = { { name = "SCRIPT", summary = "Script", complete = "file" },
                 { name = "ARGS", summary = "Its args", rest = true } } },
      { name = "cp", summary = "Copy", handler = handler,
        args = { { name = "SRC", summary = "Sources", repeatable = true, complete = { "a", "b" } } } },
      { name = "logs", summary = "Logs", handler = handler,
        args = { { name = "NAME", summary = "What", complete = function()
          return { "from-function" }, "file"
        end } } },
      { name = "broken", summary = "Completer raises", handler = handler,
        args = { { name = "NAME", summary = "What", complete = function() error("server down") end } } },
      { name = "help", summary = "Help", handler = handler,
        args = { { name = "COMMAND", summary = "Command", repeatable = true,
                   complete = complete.command_words } } },
    },
  }

  local function fake(words, current) return offer(root, words, current) end

  it("walks subcommands, by name or alias", function()
    assert.same({ { "list", "remove" }, "none" }, { fake({ "deploy" }, "") })
    assert.same({ "list", "remove" }, (fake({ "dep" }, "")))
    assert.same({ "--state" }, (fake({ "dep", "ls" }, "--st")))
  end)

  it("offers an alias only when no name fits", function()
    assert.same({ "rm" }, (fake({ "deploy" }, "rm")))
    assert.same({ "list" }, (fake({ "deploy" }, "l")))
  end)

  it("hides hidden commands and flags", function()
    assert.same({}, (fake({ "deploy" }, "deb")))
    assert.same({}, (fake({ "deploy", "list" }, "--sec")))
  end)

  it("offers a command's own flags before the global ones", function()
    assert.same({ "--state", "--label", "--config", "--limit", "--output", "--namespace", "--quiet" },
      (fake({ "deploy", "list" }, "--")))
  end)

  it("offers a repeatable flag again", function()
    local got = fake({ "deploy", "list", "--label", "a=b", "--state", "running" }, "--")
    assert.same({ "--label", "--config", "--limit", "--output", "--namespace", "--quiet" }, got)
  end)

  it("asks the shell for file names when a flag's value is a file", function()
    assert.same({ {}, "file" }, { fake({ "deploy", "list", "--config" }, "") })
    assert.same({ {}, "file" }, { fake({ "deploy", "list" }, "--config=") })
    assert.same({ {}, "none" }, { fake({ "deploy", "list", "--limit" }, "") })
  end)

  it("asks for directory names for a dir flag, long or short", function()
    assert.same({ {}, "dir" }, { fake({ "run", "--workdir" }, "") })
    assert.same({ {}, "dir" }, { fake({ "run", "-w" }, "") })
  end)

  it("calls a completer function with what the line holds, and filters its answer", function()
    assert.same({ { "web", "worker" }, "none" }, { fake({ "-n", "prod", "deploy", "rm" }, "w") })
    assert.same({ partial = "w", ns = "prod", path = { "deploy", "remove" } }, seen_ctx)
    local items = complete.candidates(root, { "deploy", "rm" }, "w")
    assert.equal("stopped", description_of(items, "worker"))
    items = complete.candidates(root, { "deploy", "rm" }, "")
    assert.equal("running", description_of(items, "api"))
  end)

  it("keeps the directive a completer function returns", function()
    assert.same({ { "from-function" }, "file" }, { fake({ "logs" }, "") })
  end)

  it("raises when a completer function raises (respond turns that into :default)", function()
    assert.has_error(function() complete.candidates(root, { "broken" }, "") end)
    assert.equal(":default\n", complete.respond(root, { "broken", "" }))
  end)

  it("stops offering flags once a rest argument has begun", function()
    assert.same({ {}, "file" }, { fake({ "run" }, "") })
    assert.same({ "--workdir", "--output", "--namespace", "--quiet" }, (fake({ "run" }, "--")))
    assert.same({ {}, "default" }, { fake({ "run", "s.py" }, "--") })
    assert.same({ {}, "default" }, { fake({ "run", "-w", "/tmp", "s.py", "-v", "--output" }, "") })
  end)

  it("treats every word after -- as an argument", function()
    assert.same({ {}, "file" }, { fake({ "run", "--" }, "-x") })
    assert.same({ {}, "default" }, { fake({ "run", "--", "-x" }, "") })
  end)

  it("keeps completing a repeatable argument, with flags around it", function()
    assert.same({ { "a", "b" }, "none" }, { fake({ "cp", "a" }, "") })
    assert.same({ { "a", "b" }, "none" }, { fake({ "cp", "a", "-q" }, "") })
    assert.same({ "--output", "--namespace", "--quiet" }, (fake({ "cp", "a" }, "--")))
  end)

  it("completes clusters of short flags", function()
    assert.same({ "text", "json" }, (fake({ "-qo" }, "")))
    assert.same({ "-qo" }, (fake({}, "-qo")))
    assert.same({ "-qojson" }, (fake({}, "-qoj")))
    assert.same({ "-q" }, (fake({}, "-q")))
  end)

  it("completes command words for help, following the words already typed", function()
    assert.same({ "deploy", "run", "cp", "logs", "broken", "help" }, (fake({ "help" }, "")))
    assert.same({ "list", "remove" }, (fake({ "help", "deploy" }, "")))
    assert.same({ {}, "none" }, { fake({ "help", "run" }, "") })
    assert.same({ {}, "none" }, { fake({ "help", "nosuch" }, "") })
  end)
end)

describe("prisn.cli.complete.format", function()
  it("prints one candidate a line, tab before a description, the directive last", function()
    assert.equal("json\nyaml\tYAML\n:none\n",
      complete.format({ { value = "json" }, { value = "yaml", description = "YAML" } }, "none"))
  end)

  it("prints just the directive when nothing fits", function()
    assert.equal(":file\n", complete.format({}, "file"))
  end)

  it("keeps descriptions on one line and drops values that would break the protocol", function()
    assert.equal("a\tone two three\n:none\n", complete.format({
      { value = "a", description = "one\ttwo\nthree" },
      { value = "b\nc" },
      { value = "" },
    }, "none"))
  end)
end)

describe("prisn.cli.complete.respond", function()
  local root = cli.root()

  it("completes the last word after the others", function()
    assert.equal("version\t" .. cli.find(root, "version").summary .. "\n:none\n",
      complete.respond(root, { "vers" }))
    assert.equal("text\nwide\njson\nyaml\n:none\n", complete.respond(root, { "-o", "" }))
  end)

  it("completes from the real tree when given no root", function()
    assert.equal("json\n:none\n", complete.respond(nil, { "-o", "j" }))
  end)

  it("answers an empty request with the commands", function()
    local first = cli.visible_names(root)[1]
    assert.truthy(complete.respond(root, {}):find("^" .. first .. "\t"))
    assert.truthy(complete.respond(root, {}):find("\nversion\t"))
  end)
end)
