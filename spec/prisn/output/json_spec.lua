local json = require("prisn.output.json")
local output = require("prisn.output")
local cjson = require("cjson")
local value = require("prisn.output.value")

local PYTHON = "/usr/bin/python3"

local function have_python()
  local f = io.open(PYTHON, "r")
  if not f then return false end
  f:close()
  return true
end

-- Runs python's json module over `doc` and returns what it dumps back
-- (sorted keys, two-space indent, no ASCII escaping: our own format).
local function python_json_roundtrip(doc)
  local input = os.tmpname()
  local f = assert(io.open(input, "wb"))
  f:write(doc)
  f:close()
  local script = "import json,sys; d=json.load(open(sys.argv[1],encoding='utf-8'));"
    .. " sys.stdout.write(json.dumps(d,indent=2,sort_keys=True,ensure_ascii=False))"
  local p = assert(io.popen(PYTHON .. ' -c "' .. script .. '" ' .. input .. " 2>&1"))
  local out = p:read("a")
  p:close()
  os.remove(input)
  return out
end

describe("prisn.output.json", function()
  it("writes scalars on one line ending in a newline", function()
    assert.equal("null\n", json.encode(nil))
    assert.equal("null\n", json.encode(output.null))
    assert.equal("true\n", json.encode(true))
    assert.equal("42\n", json.encode(42))
    assert.equal("-9223372036854775808\n", json.encode(math.mininteger))
    assert.equal('"hi"\n', json.encode("hi"))
  end)

  it("prints integral floats with a dot and other floats in the shortest exact form", function()
    assert.equal("[\n  2.0,\n  0.1,\n  1e+20,\n  -0.5\n]\n", json.encode({ 2.0, 0.1, 1e20, -0.5 }))
  end)

  it("sorts object keys in byte order and indents by two spaces", function()
    assert.equal('{\n  "B": 3,\n  "a": 1,\n  "b": {\n    "c": [\n      1,\n      "x"\n    ]\n  }\n}\n',
      json.encode({ b = { c = { 1, "x" } }, a = 1, B = 3 }))
  end)

  it("writes an unmarked empty table as {} and a marked one as []", function()
    assert.equal('{\n  "items": [],\n  "labels": {}\n}\n',
      json.encode({ items = output.array({}), labels = {} }))
    assert.equal("[]\n", json.encode(output.array()))
    assert.equal("{}\n", json.encode({}))
  end)

  it("writes null inside arrays and objects", function()
    assert.equal('[\n  null,\n  {\n    "a": null\n  }\n]\n', json.encode({ output.null, { a = output.null } }))
  end)

  it("escapes quotes, backslashes and control characters but not '/' or UTF-8", function()
    assert.equal('"a\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001b\\u007f/é✓"\n',
      json.encode('a"b\\c\n\t\r\b\f\1\27\127/é✓'))
  end)

  it("replaces invalid UTF-8 with U+FFFD", function()
    assert.equal('"a\u{FFFD}b"\n', json.encode("a\255b"))
  end)

  it("is stable: the same data gives the same bytes", function()
    local function data()
      local t = {}
      for i = 1, 50 do t["key" .. i] = i end
      return t
    end
    assert.equal(json.encode(data()), json.encode(data()))
  end)

  it("round-trips through cjson.decode", function()
    local data = {
      name = "backup", exit_code = output.null, ok = false, ratio = 0.25, count = 3,
      tags = { "a", "b/c", 'q"uote', "tab\there", "nl\nhere", "ünï✓" },
      nested = { deep = { deeper = { 1, 2, { x = "y" } } } },
      empty_list = output.array(), empty_object = {},
    }
    local decoded = cjson.decode(json.encode(data))
    assert.same(data.tags, decoded.tags)
    assert.same(data.nested, decoded.nested)
    assert.equal(cjson.null, decoded.exit_code)
    assert.same({}, decoded.empty_list)
    assert.equal(0.25, decoded.ratio)
    assert.equal(3, decoded.count)
    assert.is_false(decoded.ok)
  end)

  it("is read by python's json module back to the same document", function()
    if not have_python() then
      pending(PYTHON .. " is missing: python round-trip not checked")
      return
    end
    local doc = json.encode({
      z = { 1, 2.5, 2.0, -0.0, 1e300, math.maxinteger },
      a = { s = "\0\1\31 \"\\/\u{2028}日本", e = output.array(), o = {} },
      n = output.null, t = true,
    })
    assert.equal(doc, python_json_roundtrip(doc) .. "\n")
  end)

  it("writes API-sized documents as python's json module does", function()
    -- Many alike objects: the shape of a list of deployments (the fast path),
    -- with a few strings only the careful path may write.
    if not have_python() then
      pending(PYTHON .. " is missing: python round-trip not checked")
      return
    end
    for _, odd in ipairs({ "plain", "tab\there \"q\" é" }) do
      local items = {}
      for i = 1, 200 do
        items[i] = { name = "s" .. i, replicas = i, ready = i % 3, cpu_seconds = i / 7, port = output.null,
          healthy = i % 2 == 0, instances = output.array({ { number = 1, state = "running", pid = 1000 + i,
            last_exit = output.null, message = i == 150 and odd or "ok" } }),
          env_keys = output.array(), labels = {}, ["Upper"] = 1, ["_x"] = 2, ["key with space"] = "v" }
      end
      local doc = json.encode({ items = items })
      assert.equal(doc, python_json_roundtrip(doc) .. "\n")
    end
  end)

  it("sorts keys in byte order whatever path writes them", function()
    -- A key needing escapes (and é) sends the whole document the careful way.
    assert.equal('{\n  "\\"": 4,\n  "B": 1,\n  "_": 2,\n  "a": 3,\n  "é": 5\n}\n',
      json.encode({ a = 3, B = 1, _ = 2, ['"'] = 4, ["é"] = 5 }))
    assert.equal('{\n  "B": 1,\n  "_": 2,\n  "a": 3\n}\n', json.encode({ a = 3, B = 1, _ = 2 }))
  end)

  describe("the C fast path (prisn.core.json)", function()
    local core_json = require("prisn.core.json")
    local function fast(v) return core_json.encode(v, output.null, value.marked_arrays) end

    -- A random value of the kinds API handlers build, `depth` levels deep.
    local WORDS = { "a", "B", "_x", "name", "key with space", "z9", "" }
    local function random_value(depth)
      local pick = math.random(depth > 0 and 9 or 6)
      if pick == 1 then return math.random(-1e6, 1e6) end
      if pick == 2 then
        local scale = ({ 1, 1e-7, 1e-3, 1e5, 1e17, 1e300, 7 })[math.random(7)]
        return (math.random() - 0.5) * scale
      end
      if pick == 3 then return WORDS[math.random(#WORDS)] .. math.random(100) end
      if pick == 4 then return math.random(2) == 1 end
      if pick == 5 then return output.null end
      if pick == 6 then return ({ 0.0, -0.0, 2.0, 0.1, 1e16, 1e17, 123456789012345680.0, 1e-4, 1e-5,
        math.maxinteger, math.mininteger, 5e-324 })[math.random(12)] end
      if pick == 7 then
        local list = {}
        for i = 1, math.random(0, 4) do list[i] = random_value(depth - 1) end
        return math.random(2) == 1 and output.array(list) or list
      end
      local obj = {}
      for _ = 1, math.random(0, 5) do obj[WORDS[math.random(#WORDS)] .. math.random(3)] = random_value(depth - 1) end
      return obj
    end

    it("writes the careful path's bytes for a thousand random documents", function()
      math.randomseed(17)
      for _ = 1, 1000 do
        local v = random_value(4)
        assert.equal(json.careful_encode(v), fast(v))
      end
    end)

    it("gives up on what only the careful path may write or refuse", function()
      for _, v in ipairs({
        { s = "tab\there" }, { s = "é" }, { ['"'] = 1 }, { [1.5] = 1 }, { 1, nil, 3 }, { 1, x = 2 },
        output.array({ x = 1 }), { n = 0 / 0 }, { n = math.huge }, { f = print },
        setmetatable({}, { __index = function() return 1 end }),
      }) do
        assert.is_nil(fast(v))
      end
      local deep = {}
      local at = deep
      for _ = 1, 100 do at.x = {} at = at.x end
      assert.is_nil(fast(deep))
      assert.is_nil(fast(output.array({ deep })))
    end)

    it("writes scalars and empty containers at the top", function()
      assert.equal("null\n", fast(nil))
      assert.equal("null\n", fast(output.null))
      assert.equal('"x"\n', fast("x"))
      assert.equal("[]\n", fast(output.array()))
      assert.equal("{}\n", fast({}))
      assert.equal("-0.0\n", fast(-0.0))
    end)
  end)

  describe("encode_part", function()
    -- v inside {"items": [v]}, spliced by hand, is the encoder's document.
    local function spliced(v)
      return '{\n  "items": [\n    ' .. json.encode_part(v, 2) .. "\n  ]\n}\n"
    end

    it("writes a part as it stands at its depth, by both paths", function()
      local values = {
        { b = 1, a = output.array({ 1.5, "x", output.null }), c = { d = {}, e = output.array() } },
        { name = "caf\xc3\xa9 \"q\"", bad = "\xff", lines = "a\nb" }, -- the careful path
        "plain", 42, 0.1, output.null, true, output.array(), {},
      }
      for _, v in ipairs(values) do
        assert.equal(json.encode({ items = output.array({ v }) }), spliced(v))
        assert.equal(json.encode(v), json.encode_part(v, 0) .. "\n")
      end
    end)

    it("raises as encode does", function()
      assert.has_error(function() json.encode_part({ f = print }, 2) end, "output: value.f: cannot encode a function")
    end)
  end)

  describe("errors", function()
    it("raises for values JSON cannot carry, naming the path", function()
      assert.has_error(function() json.encode({ f = print }) end, "output: value.f: cannot encode a function")
      assert.has_error(function() json.encode({ 1, x = 2 }) end,
        'output: value: mixed table: list items and string key "x"')
      assert.has_error(function() json.encode({ [2] = 1 }) end, "output: value: sparse list: item [1] is nil")
      assert.has_error(function() json.encode({ n = 0 / 0 }) end)
      assert.has_error(function() json.encode({ n = -math.huge }) end,
        "output: value.n: cannot encode -inf (use output.null for a missing number)")
      local t = {}
      t[1] = t
      assert.has_error(function() json.encode(t) end, "output: value[1]: cycle: the table contains itself")
    end)
  end)

  describe("decode", function()
    it("keeps [] an array through decode and encode, also inside strings and nested", function()
      local text = '{"args":[],"b":"x[]\\"[] ","c":[1,[ ],{"d":[]}],"e":{}}'
      assert.equal('{\n  "args": [],\n  "b": "x[]\\"[] ",\n  "c": [\n    1,\n    [],\n    {\n      "d": []\n'
        .. '    }\n  ],\n  "e": {}\n}\n', json.encode(json.decode(text)))
    end)

    it("turns whole numbers back into integers", function()
      assert.equal(math.type(json.decode('{"n": 3569}').n), "integer")
      assert.equal(1.5, json.decode("[1.5]")[1])
    end)

    it("raises for text that is not JSON", function()
      assert.has_error(function() json.decode('{"a": [') end)
    end)
  end)
end)
