local yaml = require("prisn.output.yaml")
local json = require("prisn.output.json")
local output = require("prisn.output")

local PYTHON = "/usr/bin/python3"

-- Strings that some YAML 1.1 or 1.2 parser reads as something else, or that
-- break the document, when written plain; plus some that must stay plain.
local TRICKY = {
  "", " ", "  lead", "trail ", "true", "True", "TRUE", "false", "yes", "Yes", "no", "NO",
  "on", "off", "On", "OFF", "y", "Y", "n", "N", "null", "Null", "NULL", "~",
  "1", "-1", "+1", "1.5", ".5", "-.5", "+.5", "1.", "1e3", "1E3", "1e+3", "1.0e-3",
  "0x1f", "0X1F", "0o17", "010", "0b101", "1_000", "1:30", "190:20:30.15", "-1:30",
  "2024-01-01", "2024-01-01T10:00:00Z", "2001-12-14 21:59:43.10 -5",
  ".inf", "-.inf", "+.inf", ".Inf", ".INF", ".nan", ".NaN", "NaN", "inf", "Infinity",
  "-", "- item", "--", "---", "--- x", "...", "... x", "?", "? x", "?x", ":", ": x", "::",
  "a: b", "a:b", "a:", "key:value", "a:  b", "#", "# comment", "a #b", "a#b", "a\t#b",
  ",", ",a", "[", "]", "{", "}", "[a]", "{a: 1}", "a, b", "a,b", "[a, b]",
  "&anchor", "*alias", "!tag", "!!str", "!!binary", "|", "|-", ">", ">+", "'", '"',
  "'quoted'", '"dq"', "it's", 'say "hi"', "%", "%YAML 1.2", "@", "@home", "`", "`cmd`",
  "<<", "=", "==", "<", "a=b",
  "a\nb", "a\n", "\n", "\n\n", "\t", "tab\there", "\r\n", "cr\r", "\0", "\a\b\27[31m",
  "\127", "\u{85}", "x\u{85}y", "\u{2028}", "\u{2029}", "\u{FEFF}bom", "\u{A0}nbsp\u{A0}",
  "\u{FFFE}", "\u{9B}", "\u{1F}",
  "日本語", "emoji 😀", "ünïcødé", "back\\slash", "C:\\path", "\\", "\\n",
  "http://example.com/a?q=1#frag", "foo bar", "a  b", "-foo", "--flag", ".env", "..",
  "1password", "v1.2.3", "1.2.3", "123abc", "0", "00", "-0", "+", "+.", "x: y: z",
  "a ", " a", "a b ", "a\"b", "a'b", "a\\b", "a/b", "*", "&", "!", "!important",
  "Yes please", "no.", "null!", "~/path", "~user",
  string.rep("a", 2000), string.rep("é", 600),
}

local function corpus()
  local keyed = {}
  for i, s in ipairs(TRICKY) do keyed[s] = i end
  return {
    strings = TRICKY,
    keyed = keyed,
    long_key = { [string.rep("k", 1500)] = "scalar", [string.rep("j", 1200)] = { nested = { 1, 2 } } },
    numbers = { 0, -7, math.maxinteger, math.mininteger, 2.0, -0.0, 0.1, 1e16, 1e-5, 1.5e300, 123.456 },
    flags = { true, false, output.null },
    nesting = {
      { { 1, 2 }, output.array(), {} },
      { a = { { b = "c", d = { e = output.array({ "f" }) } } } },
      output.array({ output.array() }),
    },
    empties = { list = output.array(), map = {} },
  }
end

local function have_python_yaml()
  local f = io.open(PYTHON, "r")
  if not f then return false end
  f:close()
  local p = io.popen(PYTHON .. ' -c "import yaml" 2>/dev/null; echo $?')
  local status = p:read("a")
  p:close()
  return status:match("^0") ~= nil
end

local function write_temp(content)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(content)
  f:close()
  return name
end

-- Loads each YAML document with PyYAML's safe loader and compares it with
-- the matching JSON value, strictly: mapping keys must be strings (a key
-- read as a bool or a number is an error), and 2 and 2.0 differ. The input
-- is two JSON arrays: YAML documents, expected values. Prints "same", or
-- the first document that differs.
local COMPARE = [[
import json, sys, yaml
def strict(x):
    if isinstance(x, dict):
        for k in x:
            if not isinstance(k, str):
                raise ValueError("non-string key: %r" % (k,))
        return {k: strict(v) for k, v in x.items()}
    if isinstance(x, list):
        return [strict(v) for v in x]
    return x
with open(sys.argv[1], encoding="utf-8") as f:
    docs = json.load(f)
with open(sys.argv[2], encoding="utf-8") as f:
    expected = json.load(f)
for doc, want in zip(docs, expected):
    try:
        got = json.dumps(strict(yaml.safe_load(doc)), sort_keys=True)
    except Exception as e:
        got = "error: %s" % e
    want = json.dumps(want, sort_keys=True)
    if got != want:
        print("document %r\n read as: %s\n expected: %s" % (doc[:300], got[:300], want[:300]))
        break
else:
    print("same")
]]

-- Runs COMPARE over `values`, each encoded as one YAML document.
local function python_compare(values)
  local docs = {}
  for i, v in ipairs(values) do docs[i] = yaml.encode(v) end
  local files = { write_temp(COMPARE), write_temp(json.encode(docs)), write_temp(json.encode(values)) }
  local p = assert(io.popen(PYTHON .. " " .. table.concat(files, " ") .. " 2>&1"))
  local result = p:read("a")
  p:close()
  for _, name in ipairs(files) do os.remove(name) end
  return (result:gsub("\n$", ""))
end

-- Equal with the same number subtypes: 2 and 2.0 differ.
local function same_strictly(a, b, path)
  path = path or "value"
  if type(a) == "number" and type(b) == "number" then
    assert(a == b and math.type(a) == math.type(b) or a ~= a and b ~= b,
      path .. ": " .. tostring(a) .. " ~= " .. tostring(b))
    return
  end
  assert(type(a) == type(b), path .. ": " .. type(a) .. " ~= " .. type(b))
  if type(a) ~= "table" then
    assert(a == b, path .. ": " .. tostring(a) .. " ~= " .. tostring(b))
    return
  end
  for k, v in pairs(a) do same_strictly(v, b[k], path .. "[" .. tostring(k) .. "]") end
  for k in pairs(b) do assert(a[k] ~= nil, path .. ": unexpected key " .. tostring(k)) end
end

describe("prisn.output.yaml", function()
  it("writes scalars as one-line documents", function()
    assert.equal("null\n", yaml.encode(nil))
    assert.equal("true\n", yaml.encode(true))
    assert.equal("-3\n", yaml.encode(-3))
    assert.equal("2.0\n", yaml.encode(2.0))
    assert.equal("1.0e+20\n", yaml.encode(1e20))
    assert.equal("1.5e-07\n", yaml.encode(1.5e-7))
    assert.equal("hello world\n", yaml.encode("hello world"))
    assert.equal('"yes"\n', yaml.encode("yes"))
  end)

  it("writes [] and {} for empty containers", function()
    assert.equal("[]\n", yaml.encode(output.array()))
    assert.equal("{}\n", yaml.encode({}))
    assert.equal("list: []\nmap: {}\n", yaml.encode({ map = {}, list = output.array() }))
  end)

  it("writes block mappings with keys in byte order and indented nesting", function()
    assert.equal(table.concat({
      "B: 1",
      "a:",
      "  b:",
      "    c: null",
      "  list:",
      "    - x",
      "    - 2",
      "",
    }, "\n"), yaml.encode({ a = { list = { "x", 2 }, b = { c = output.null } }, B = 1 }))
  end)

  it("writes sequences of mappings in '- key: value' style", function()
    assert.equal(table.concat({
      "- exit_code: 0",
      "  name: backup",
      "  tags:",
      "    - nightly",
      "- exit_code: null",
      "  name: sync",
      "  tags: []",
      "",
    }, "\n"), yaml.encode({
      { name = "backup", exit_code = 0, tags = { "nightly" } },
      { name = "sync", exit_code = output.null, tags = output.array() },
    }))
  end)

  it("writes a list inside a list under a bare dash", function()
    assert.equal("-\n  - 1\n  - 2\n- []\n", yaml.encode({ { 1, 2 }, output.array() }))
  end)

  it("uses the explicit '? key' form for keys too long for a simple key", function()
    local key = string.rep("k", 1001)
    assert.equal("? " .. key .. "\n: 1\n", yaml.encode({ [key] = 1 }))
  end)

  describe("strings", function()
    it("stay plain when nothing could misread them", function()
      for _, s in ipairs({ "backup", "foo bar", "a:b", "a#b", "http://x/y?z=1", "-foo", ".env",
        "v1.2.3", "日本語", "it's", "~/path", "nullable", "yesterday" }) do
        assert.equal(s, yaml.string(s))
      end
    end)

    it("are double-quoted when a parser could read them as something else", function()
      for _, s in ipairs({ "", "true", "No", "on", "y", "~", "null", "1", "1e3", "0x1f", "010",
        ".5", "1_000", "1:30", "2024-01-01", ".inf", "-", "- a", "---", "...", "? x", "a: b",
        "a #b", "a:", "#x", "&a", "*a", "!t", "|", ">", "'q'", '"q"', "%x", "@x", "`x`",
        "[a]", "{a}", ",", "<<", "=", " lead", "trail " }) do
        assert.equal('"' .. s:gsub('"', '\\"') .. '"', yaml.string(s))
      end
    end)

    it("escape control and non-printable characters", function()
      assert.equal('"a\\nb\\tc\\rd\\0\\e\\x01\\x7F\\\\\\""', yaml.string('a\nb\tc\rd\0\27\1\127\\"'))
      assert.equal('"\\N\\L\\P\\uFEFF\\uFFFE\\x9B"', yaml.string("\u{85}\u{2028}\u{2029}\u{FEFF}\u{FFFE}\u{9B}"))
    end)

    it("replace invalid UTF-8 with U+FFFD", function()
      assert.equal("a\u{FFFD}b", yaml.string("a\255b"))
    end)
  end)

  it("raises for values YAML data cannot carry, like JSON", function()
    assert.has_error(function() yaml.encode({ f = print }) end, "output: value.f: cannot encode a function")
    assert.has_error(function() yaml.encode({ x = 0 / 0 }) end)
    assert.has_error(function() yaml.encode({ [true] = 1 }) end,
      "output: value: key boolean is not a string or a list index")
  end)

  describe("round trip through a real parser", function()
    it("PyYAML reads the tricky corpus back as exactly the JSON data", function()
      if not have_python_yaml() then
        pending(PYTHON .. " or its yaml module is missing (apt install python3-yaml): round trip not checked")
        return
      end
      -- The whole corpus as one document, then each string alone as a
      -- document, where document markers and leading indicators matter most.
      local documents = { corpus() }
      for _, s in ipairs(TRICKY) do documents[#documents + 1] = s end
      assert.equal("same", python_compare(documents))
    end)

    it("lyaml (libyaml) reads the tricky corpus back as the same data", function()
      local ok, lyaml = pcall(require, "lyaml")
      if not ok then
        pending("lyaml is not installed (apt install lua-yaml): libyaml round trip not checked")
        return
      end
      local function from_lyaml(v)
        if v == lyaml.null then return output.null end
        if type(v) ~= "table" then return v end
        local t = {}
        for k, item in pairs(v) do t[k] = from_lyaml(item) end
        return t
      end
      local data = corpus()
      data.nesting = nil -- lyaml reads [] and {} alike; JSON-vs-YAML above covers them
      data.empties = nil
      -- lyaml merges on a "<<" key even when it is quoted (a lyaml bug;
      -- PyYAML above reads the quoted key correctly).
      data.keyed["<<"] = nil
      -- lyaml reads math.mininteger as a float (it negates after parsing)
      -- and cuts strings at "\0" (it passes them on as C strings).
      table.remove(data.numbers, 4)
      local strings = {}
      for _, s in ipairs(data.strings) do
        if not s:find("\0", 1, true) then strings[#strings + 1] = s end
      end
      data.strings = strings
      data.keyed["\0"] = nil
      same_strictly(data, from_lyaml(lyaml.load(yaml.encode(data))))
    end)
  end)
end)
