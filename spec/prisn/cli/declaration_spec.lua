local cli = require("prisn.cli")
local declaration = require("prisn.cli.declaration")

local function walk(cmd, path, visit)
  for _, sub in ipairs(cmd.subcommands or {}) do
    local p = { table.unpack(path) }
    p[#p + 1] = sub.name
    visit(sub, p)
    walk(sub, p, visit)
  end
end

describe("command declarations", function()
  it("are all valid", function()
    assert.same({ true }, { cli.check_all() })
  end)

  it("give every visible command a summary, a description and an example", function()
    walk(cli.root(), {}, function(cmd, path)
      if cmd.hidden then return end
      local name = table.concat(path, " ")
      assert.is_truthy(cmd.summary and #cmd.summary > 0, name .. ": no summary")
      if cmd.handler then
        assert.is_truthy(cmd.description, name .. ": no description")
        assert.is_truthy(cmd.examples and #cmd.examples > 0, name .. ": no example")
        -- The command by its name or an alias, as KIND NAME or KIND/NAME.
        local parent = table.concat(path, " ", 1, #path - 1)
        local function runs(text)
          for _, word in ipairs({ cmd.name, table.unpack(cmd.aliases or {}) }) do
            local prefix = "prisn " .. (parent ~= "" and (parent .. " ") or "") .. word
            local after = text:sub(#prefix + 1, #prefix + 1)
            if text:sub(1, #prefix) == prefix and (after == "" or after == " " or after == "/") then return true end
          end
          return false
        end
        for _, ex in ipairs(cmd.examples) do
          assert.is_truthy(runs(ex[1]), name .. ": example '" .. ex[1] .. "' does not run the command")
        end
      end
    end)
  end)

  -- What a user sees, not only what is declared: a group (`prisn server`)
  -- has no handler and no examples of its own, and its help must still show
  -- a command to copy.
  it("show at least one example in the --help of every visible command and group", function()
    local help = require("prisn.cli.help")
    local missing, checked = {}, 0
    walk(cli.root(), {}, function(cmd, path)
      if cmd.hidden then return end
      checked = checked + 1
      local name = "prisn " .. table.concat(path, " ")
      local text = help.command_help(cmd, path, cli.root())
      local block = text:match("\nExamples:\n(.-)\n\n") or text:match("\nExamples:\n(.*)$") or ""
      local runs = false
      for line in block:gmatch("[^\n]+") do
        if line:find("  " .. name, 1, true) == 1 then runs = true end
      end
      if not runs then missing[#missing + 1] = name end
    end)
    assert.is_true(checked > 50, "only " .. checked .. " commands walked")
    assert.same({}, missing)
  end)

  it("give every flag a summary", function()
    walk(cli.root(), {}, function(cmd, path)
      for _, f in ipairs(cmd.flags or {}) do
        assert.is_truthy(f.summary ~= "", table.concat(path, " ") .. " --" .. f.name)
      end
    end)
  end)

  it("reject a command without an example, naming the field", function()
    local ok, err = declaration.check({ name = "demo", summary = "d", handler = function() end })
    assert.is_nil(ok)
    assert.equal("demo.examples: a command needs at least one example", err)
  end)

  it("reject a bad flag type, naming the flag", function()
    local ok, err = declaration.check({ name = "demo", summary = "d", handler = function() end,
      examples = { { "prisn demo", "d" } },
      flags = { { name = "count", type = "integer", summary = "n" } } })
    assert.is_nil(ok)
    assert.equal('demo.flags[1].type: "integer" is not one of string, bool, int, number, duration, size', err)
  end)

  it("reject duplicate flags and arguments after a rest argument", function()
    local base = function(extra)
      local cmd = { name = "demo", summary = "d", handler = function() end, examples = { { "prisn demo", "d" } } }
      for k, v in pairs(extra) do cmd[k] = v end
      return cmd
    end
    local _, err = declaration.check(base({ flags = {
      { name = "a", short = "x", type = "bool", summary = "a" },
      { name = "b", short = "x", type = "bool", summary = "b" } } }))
    assert.equal("demo.flags[2]: duplicate short flag -x", err)
    _, err = declaration.check(base({ args = {
      { name = "A", summary = "a", rest = true }, { name = "B", summary = "b" } } }))
    assert.equal("demo.args[2]: no argument may follow a rest argument", err)
  end)
end)
