-- prisn.envfile: the one parser of env files (--env-file, secret set
-- --from-env-file) and KEY=VALUE words (-e, secret set KEY=VALUE). One
-- case per rule of docs/RUN.md ("Env files"), and errors that name the
-- file, the line and the key, never the value.
local uv = require("luv")
local envfile = require("prisn.envfile")
local support = require("support")
local raised = support.raised

-- The { key, value } pairs of `text`, without the line numbers.
local function pairs_of(text)
  local out = {}
  for _, e in ipairs(envfile.parse(text, ".env")) do out[#out + 1] = { e[1], e[2] } end
  return out
end

describe("prisn.envfile", function()
  describe("parse", function()
    it("reads one KEY=VALUE per line, in file order, with line numbers", function()
      local entries = envfile.parse("A=1\n\nB=2\n", ".env")
      assert.same({ { "A", "1", line = 1 }, { "B", "2", line = 3 } }, entries)
      assert.same({}, envfile.parse("", ".env"))
    end)

    it("drops a \\r before the end of a line and a byte order mark at the start", function()
      assert.same({ { "A", "1" }, { "B", "2" } }, pairs_of("\239\187\191A=1\r\nB=2\r\n"))
    end)

    it("skips blank lines and lines starting with #", function()
      assert.same({ { "A", "1" } }, pairs_of("# a comment\n   \n\t# indented comment\nA=1\n"))
    end)

    it("ignores 'export ' and blanks around =", function()
      assert.same({ { "A", "1" }, { "B", "two words" }, { "export", "x" } },
        pairs_of("export A=1\n  export\tB = two words  \nexport=x\n"))
    end)

    it("takes an unquoted value as written, a # after a blank starting a comment", function()
      assert.same({ { "URL", "postgres://u:p@h/db?x=1#frag" }, { "A", "b" }, { "C", "#not-a-comment" },
        { "D", "" }, { "E", "$HOME and ${X}" } },
        pairs_of("URL=postgres://u:p@h/db?x=1#frag\nA=b # note\nC=#not-a-comment\nD= # nothing\nE=$HOME and ${X}\n"))
    end)

    it("takes '...' literally", function()
      assert.same({ { "A", "p@ss # not a comment \\n $X" } }, pairs_of("A='p@ss # not a comment \\n $X'\n"))
    end)

    it("reads \"...\" with the escapes \\n \\r \\t \\\" \\\\ \\$ and no others", function()
      assert.same({ { "A", 'a\nb\rc\td"e\\f$g' } }, pairs_of([[A="a\nb\rc\td\"e\\f\$g"]]))
    end)

    it("allows a comment after a quoted value: A=\"x\" # note is x, as in --from-env-file", function()
      assert.same({ { "A", "x" }, { "B", "y" } }, pairs_of("A=\"x\" # note\nB='y'   # note\n"))
    end)

    it("reads KEY= and KEY=\"\" as the empty string", function()
      assert.same({ { "A", "" }, { "B", "" }, { "C", "" } }, pairs_of("A=\nB=\"\"\nC=''\n"))
    end)

    it("refuses a key given twice, naming both lines", function()
      local err = raised(envfile.parse, "A=1\nB=2\nA=hunter2\n", ".env")
      assert.equal("usage", err.code)
      assert.equal("line 3 of .env: A is set again (first on line 1)", err.message)
    end)

    it("names the file, the line and the key of a malformed line, never the value", function()
      local cases = {
        { "A=1\nhunter2\n", "line 2 of .env: not KEY=VALUE" },
        { "1A=hunter2", "line 1 of .env: invalid key \"1A\": use letters, digits and '_', not starting with a digit" },
        { "MY KEY=hunter2", "line 1 of .env: invalid key \"MY KEY\": use letters, digits and '_', not starting "
          .. "with a digit" },
        { "A='hunter2", "line 1 of .env: the value of A has no closing '" },
        { 'A="hunter2', 'line 1 of .env: the value of A has no closing "' },
        { 'A="hunter2\\q"', "line 1 of .env: the value of A has an unknown escape (known: \\n \\r \\t \\\" \\\\ \\$)" },
        { "A='hunter2' hunter3", "line 1 of .env: the value of A is followed by text after its closing quote" },
        { "A=hunter2\0x", "line 1 of .env: the value of A holds a NUL byte" },
      }
      for _, case in ipairs(cases) do
        local err = raised(envfile.parse, case[1], ".env")
        assert.equal("usage", err.code)
        assert.equal(case[2], err.message)
        assert.is_nil(tostring(err):find("hunter", 1, true))
        assert.matches("docs/RUN%.md", err.hint)
      end
    end)
  end)

  describe("assignment", function()
    it("splits at the first '='", function()
      assert.same({ "KEY", "a=b=c" }, { envfile.assignment("KEY=a=b=c", "-e #1") })
      assert.same({ "EMPTY", "" }, { envfile.assignment("EMPTY=", "-e #1") })
    end)

    it("raises a usage error that does not echo the word", function()
      local err = raised(envfile.assignment, "hunter2", "-e #2")
      assert.equal("usage", err.code)
      assert.equal("-e #2 is not KEY=VALUE", err.message)
      err = raised(envfile.assignment, "1PASS=hunter2", "argument 1")
      assert.equal("argument 1: invalid key \"1PASS\": use letters, digits and '_', not starting with a digit",
        err.message)
    end)
  end)

  describe("collect", function()
    local dir

    before_each(function() dir = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX")) end)
    after_each(function() support.remove_tree(dir) end)

    it("reads --env-file then -e, -e winning, each name once", function()
      local f = assert(io.open(dir .. "/vars.env", "w"))
      f:write("A=file\nB=file\n")
      f:close()
      local env, keys = envfile.collect(dir .. "/vars.env", { "B=flag", "C=flag" })
      assert.same({ A = "file", B = "flag", C = "flag" }, env)
      assert.same({ "A", "B", "C" }, keys)
      assert.same({ {}, {} }, { envfile.collect(nil, nil) })
    end)

    it("names a file it cannot read and the flag it came from", function()
      local err = raised(envfile.collect, dir .. "/missing.env", {})
      assert.equal("ENOENT", err.code)
      assert.equal("--env-file: cannot read " .. dir .. "/missing.env: No such file or directory", err.message)
    end)
  end)

  describe("list_to_table", function()
    it("turns a K=V list into a table, the first = splitting, entries without = skipped", function()
      assert.same({ A = "1", B = "x=y", C = "" }, envfile.list_to_table({ "A=1", "B=x=y", "C=", "junk" }))
      assert.same({}, envfile.list_to_table(nil))
    end)
  end)
end)
