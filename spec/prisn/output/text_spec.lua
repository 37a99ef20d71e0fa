local text = require("prisn.output.text")
local output = require("prisn.output")

local function lines(...)
  return table.concat({ ... }, "\n") .. "\n"
end

local function strip_colour(s)
  return (s:gsub("\27%[[%d;]*m", ""))
end

describe("prisn.output.text", function()
  describe("a list of records", function()
    local jobs = {
      { id = "j1", name = "backup", state = "running", exit_code = output.null },
      { id = "j2", name = "sync", state = "failed", exit_code = 1 },
    }

    it("is a table with the given columns, upper-case headers, three spaces apart", function()
      assert.equal(lines(
        "NAME     STATE     EXIT CODE   JOB",
        "backup   running   -           j1",
        "sync     failed    1           j2"
      ), text.render(jobs, { columns = { "name", "state", "exit_code", { key = "id", header = "JOB" } } }))
    end)

    it("shows every key in byte order when no columns are given", function()
      assert.equal(lines(
        "EXIT CODE   ID   NAME     STATE",
        "-           j1   backup   running",
        "1           j2   sync     failed"
      ), text.render(jobs))
    end)

    it("shows '-' for missing, null and empty values, and never leaves trailing spaces", function()
      assert.equal(lines(
        "A   B",
        "-   x",
        "1   -",
        "-   -"
      ), text.render({ { b = "x" }, { a = 1, b = "" }, { a = output.array(), b = {} } }, { columns = { "a", "b" } }))
    end)

    it("writes booleans, lists and nested objects compactly", function()
      assert.equal(lines(
        "OK      TAGS   META",
        "true    a, b   env=prod, limits={cpu=2, mem=[1, 2]}",
        "false   only   -"
      ), text.render({
        { ok = true, tags = { "a", "b" }, meta = { env = "prod", limits = { cpu = 2, mem = { 1, 2 } } } },
        { ok = false, tags = { "only" }, meta = {} },
      }, { columns = { "ok", "tags", "meta" } }))
    end)

    it("aligns by terminal columns, not bytes: accents count one, CJK two", function()
      assert.equal(lines(
        "NAME     STATE",
        "café     ok",
        "日本語   ok",
        "x        ok"
      ), text.render({ { name = "café", state = "ok" }, { name = "日本語", state = "ok" }, { name = "x", state = "ok" } },
        { columns = { "name", "state" } }))
    end)

    it("escapes control characters so a value cannot break the table or the terminal", function()
      assert.equal(lines(
        "NAME          NOTE",
        "a\\nb\\x1b[2J   tab\\there"
      ), text.render({ { name = "a\nb\27[2J", note = "tab\there" } }, { columns = { "name", "note" } }))
    end)

    it("lets a column format its cell", function()
      assert.equal(lines(
        "NAME     AGE",
        "backup   5s"
      ), text.render({ { name = "backup", started = 95 } }, { columns = {
        "name",
        { key = "started", header = "AGE", format = function(v, record)
          assert.equal("backup", record.name)
          return (100 - v) .. "s"
        end },
      } }))
    end)
  end)

  describe("a list that is not of records", function()
    it("prints one item per line", function()
      assert.equal(lines("1", "two", "-", "true", "1, 2", "a=1"),
        text.render({ 1, "two", output.null, true, { 1, 2 }, { a = 1 } }))
    end)

    it("prints the empty message when empty", function()
      assert.equal("No resources found.\n", text.render(output.array()))
      assert.equal("No jobs yet.\n", text.render(output.array(), { empty = "No jobs yet." }))
    end)
  end)

  describe("an object", function()
    it("is a key/value block: labels from the keys, inline values in one column", function()
      assert.equal(lines(
        "Exit code:  0",
        "Name:       backup",
        "Started:    -"
      ), text.render({ name = "backup", exit_code = 0, started = output.null }))
    end)

    it("shows `fields` first, in order and even when absent, then the rest sorted", function()
      assert.equal(lines(
        "Name:    backup",
        "Status:  -",
        "Age:     3",
        "Zone:    eu"
      ), text.render({ zone = "eu", age = 3, name = "backup" }, { fields = { "name", "status" } }))
    end)

    it("indents nested objects under their label with their keys as written", function()
      assert.equal(lines(
        "Labels:",
        "  PATH_X:  /bin",
        "  team:    infra",
        "Name:  backup",
        "Resources:",
        "  limits:",
        "    memory_max:  64M"
      ), text.render({ name = "backup", labels = { team = "infra", PATH_X = "/bin" },
        resources = { limits = { memory_max = "64M" } } }))
    end)

    it("joins lists of scalars and renders lists of records as indented tables", function()
      assert.equal(lines(
        "Args:  -v, --dry-run",
        "Runs:",
        "  ID   STATE",
        "  1    succeeded",
        "  2    failed",
        "Tags:  -"
      ), text.render({ args = { "-v", "--dry-run" }, tags = output.array(),
        runs = { { id = 1, state = "succeeded" }, { id = 2, state = "failed" } } }))
    end)

    it("continues multi-line strings in the value column", function()
      assert.equal(lines(
        "Message:  line one",
        "          line two",
        "Name:     x"
      ), text.render({ name = "x", message = "line one\nline two\n" }))
    end)

    it("aligns labels by terminal width", function()
      assert.equal(lines(
        "Name:  x",
        "ünï:   y"
      ), text.render({ ["ünï"] = "y", name = "x" }))
    end)

    it("is '-' when it has nothing to show", function()
      assert.equal("-\n", text.render({}))
    end)
  end)

  describe("a scalar", function()
    it("prints on one line; a string verbatim", function()
      assert.equal("42\n", text.render(42))
      assert.equal("2.5\n", text.render(2.5))
      assert.equal("false\n", text.render(false))
      assert.equal("-\n", text.render(output.null))
      assert.equal("-\n", text.render(nil))
      assert.equal("token\n", text.render("token"))
      assert.equal("two\nlines\n", text.render("two\nlines\n"))
    end)

    it("prints NaN and infinities for people rather than failing", function()
      assert.equal("NaN\n", text.render(0 / 0))
      assert.equal("-Inf\n", text.render(-math.huge))
    end)
  end)

  describe("colour", function()
    local jobs = {
      { name = "backup", state = "running" },
      { name = "sync", state = "failed" },
      { name = "index", state = "pending" },
      { name = "x", state = "other" },
    }

    it("is off by default", function()
      assert.is_nil(text.render(jobs):find("\27", 1, true))
    end)

    it("makes headers bold and state words green, yellow or red", function()
      assert.equal(lines(
        "\27[1mNAME\27[0m     \27[1mSTATE\27[0m",
        "backup   \27[32mrunning\27[0m",
        "sync     \27[31mfailed\27[0m",
        "index    \27[33mpending\27[0m",
        "x        other"
      ), text.render(jobs, { color = true, columns = { "name", "state" } }))
    end)

    it("never changes the alignment", function()
      local data = { { state = "ok", name = "a" }, { state = "failed", name = "日本" } }
      assert.equal(text.render(data), strip_colour(text.render(data, { color = true })))
      local obj = { state = "error", name = "x", runs = data }
      assert.equal(text.render(obj), strip_colour(text.render(obj, { color = true })))
    end)
  end)

  describe("helpers", function()
    it("derives headers and labels from snake_case keys", function()
      assert.equal("EXIT CODE", text.header("exit_code"))
      assert.equal("Exit code", text.label("exit_code"))
    end)

    it("measures terminal width", function()
      assert.equal(0, text.width(""))
      assert.equal(4, text.width("café"))
      assert.equal(6, text.width("日本語"))
      assert.equal(1, text.width("e\u{301}"))
      assert.equal(2, text.width("😀"))
    end)
  end)

  it("raises for values that cannot be rendered", function()
    assert.has_error(function() text.render({ { f = print } }) end, "output: value[1].f: cannot encode a function")
  end)
end)
