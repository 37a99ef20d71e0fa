local toml = require("prisn.exec.deps.toml")

local function parse(text)
  local doc, err, code = toml.parse(text)
  assert(doc, err)
  assert.is_nil(code)
  return doc
end

local function fails(text, opts)
  local doc, err, code = toml.parse(text, opts)
  assert.is_nil(doc)
  assert.equal("ETOML", code)
  return err
end

describe("prisn.exec.deps.toml", function()
  it("reads basic and literal strings with escapes", function()
    assert.same({ a = 'x "q" \\ \t é é 😀', b = [[C:\path\n]], ["quoted key"] = 1, ["lit.key"] = 2 },
      parse([[
a = "x \"q\" \\ \t \u00e9 \xe9 \U0001F600"
b = 'C:\path\n'
"quoted key" = 1
'lit.key' = 2
]]))
  end)

  it("reads multi-line strings", function()
    local doc = parse('a = """\nline1\nline2 \\\n    continued"""\nb = \'\'\'\nraw \\n\n\'\'\'\n'
      .. 'c = """ends with a quote""""\n')
    assert.equal("line1\nline2 continued", doc.a)
    assert.equal("raw \\n\n", doc.b)
    assert.equal('ends with a quote"', doc.c)
  end)

  it("reads multi-line arrays with comments and trailing commas", function()
    assert.same({ deps = { "a", "b", { "c" } }, empty = {} }, parse([[
deps = [  # comment
  "a",
  # a whole comment line
  'b' , [ "c", ],
]
empty = [ ]
]]))
  end)

  it("reads tables, dotted keys, inline tables and arrays of tables", function()
    local doc = parse([==[
top = 1
[project]
name = "p"
license = { text = "MIT" }
urls.homepage = "https://example.com"

[project.scripts]
run = "p:main"

[[tool.mypy.overrides]]
module = "a"
[[tool.mypy.overrides]]
module = "b"
[tool.mypy.overrides.extra]
x = true
]==])
    assert.same({
      top = 1,
      project = { name = "p", license = { text = "MIT" }, urls = { homepage = "https://example.com" },
        scripts = { run = "p:main" } },
      tool = { mypy = { overrides = { { module = "a" }, { module = "b", extra = { x = true } } } } },
    }, doc)
  end)

  it("reads numbers, booleans and dates (as text)", function()
    local doc = parse([[
i = +1_000
h = 0xff
o = 0o17
b = 0b101
f = 6.626e-34
g = -0.5
inf = -inf
t = true
d = 1979-05-27T07:32:00Z
d2 = 1979-05-27 07:32:00
day = 1979-05-27
time = 07:32:00
]])
    assert.equal(1000, doc.i)
    assert.equal(255, doc.h)
    assert.equal(15, doc.o)
    assert.equal(5, doc.b)
    assert.equal(6.626e-34, doc.f)
    assert.equal(-0.5, doc.g)
    assert.equal(-math.huge, doc.inf)
    assert.is_true(doc.t)
    assert.equal("1979-05-27T07:32:00Z", doc.d)
    assert.equal("1979-05-27 07:32:00", doc.d2)
    assert.equal("1979-05-27", doc.day)
    assert.equal("07:32:00", doc.time)
  end)

  it("accepts CRLF line endings and a byte order mark", function()
    assert.same({ a = { "x" }, b = 2 }, parse('\239\187\191a = [\r\n "x",\r\n]\r\nb = 2\r\n'))
  end)

  describe("errors", function()
    it("name the file and line", function()
      assert.equal("pyproject.toml:3: unterminated string", fails('a = 1\n\nb = "x\n', { name = "pyproject.toml" }))
      assert.equal("line 2: unterminated array", fails('a = 1\nb = [\n "x",\n'))
    end)

    it("count lines from opts.first_line", function()
      assert.equal("app.py:12: unterminated array", fails('x = 1\ndeps = [\n', { name = "app.py", first_line = 11 }))
    end)

    it("reject what would change the answer", function()
      assert.equal("line 2: duplicate key 'a'", fails("a = 1\na = 2\n"))
      assert.equal("line 3: table 'p' is defined more than once", fails("[p]\nx = 1\n[p]\n"))
      assert.equal("line 2: key 'a' is already a value, not a table", fails("a = 1\na.b = 2\n"))
      assert.equal("line 1: unexpected 'b' after a value (one key = value per line)", fails("a = 1 b = 2\n"))
      assert.equal("line 1: expected ',' or ']' in an array, found '\"'", fails('a = ["x" "y"]\n'))
      assert.equal("line 1: expected a value", fails("a =\n"))
      assert.equal("line 1: unknown escape '\\q'", fails('a = "\\q"\n'))
      assert.equal("line 1: cannot read value 'nope'", fails("a = nope\n"))
      assert.equal("line 1: expected ']' to close the table header", fails("[a\n"))
      assert.equal("line 2: unterminated \"\"\" string", fails('x = 1\na = """abc\n'))
    end)
  end)
end)
