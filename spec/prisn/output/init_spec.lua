local output = require("prisn.output")
local cjson = require("cjson")

-- A stand-in for io.stdout that keeps what is written.
local function fake_stream()
  local stream = { written = {} }
  function stream:write(s)
    self.written[#self.written + 1] = s
    return self
  end
  function stream:text() return table.concat(self.written) end
  return stream
end

describe("prisn.output", function()
  local job = { name = "backup", exit_code = 0, tags = output.array(), labels = {}, finished = output.null }

  describe("render", function()
    it("renders the same data in each format", function()
      assert.equal(table.concat({
        "Exit code:  0",
        "Finished:   -",
        "Labels:     -",
        "Name:       backup",
        "Tags:       -",
        "",
      }, "\n"), output.render(job, "text"))
      assert.equal(table.concat({
        "{",
        '  "exit_code": 0,',
        '  "finished": null,',
        '  "labels": {},',
        '  "name": "backup",',
        '  "tags": []',
        "}",
        "",
      }, "\n"), output.render(job, "json"))
      assert.equal(table.concat({
        "exit_code: 0",
        "finished: null",
        "labels: {}",
        "name: backup",
        "tags: []",
        "",
      }, "\n"), output.render(job, "yaml"))
    end)

    it("defaults to text", function()
      assert.equal(output.render(job, "text"), output.render(job))
    end)

    it("passes opts to text and ignores them for json and yaml", function()
      local list = { { name = "a", state = "ok" } }
      local opts = { columns = { "state" }, color = true }
      assert.equal("\27[1mSTATE\27[0m\n\27[32mok\27[0m\n", output.render(list, "text", opts))
      assert.equal(output.render(list, "json"), output.render(list, "json", opts))
      assert.equal(output.render(list, "yaml"), output.render(list, "yaml", opts))
    end)

    it("always ends in a newline", function()
      for _, format in ipairs(output.FORMATS) do
        for _, v in ipairs({ "", "x", 1, output.null, {}, output.array(), { a = 1 }, { 1 } }) do
          assert.equal("\n", output.render(v, format):sub(-1))
        end
      end
    end)

    it("raises for an unknown format", function()
      assert.has_error(function() output.render({}, "xml") end,
        'output.render: unknown format "xml" (expected text, json or yaml)')
    end)

    it("raises for a value no format can render", function()
      for _, format in ipairs(output.FORMATS) do
        assert.has_error(function() output.render({ handler = print }, format) end,
          "output: value.handler: cannot encode a function")
      end
    end)
  end)

  it("exports null as cjson.null and array as the marker", function()
    assert.equal(cjson.null, output.null)
    assert.equal("[]\n", output.render(output.array(), "json"))
    assert.equal("{}\n", output.render({}, "json"))
  end)

  describe("writer", function()
    it("emits values in its format to its stream", function()
      local stream = fake_stream()
      local out = output.writer({ format = "json", stdout = stream })
      out:emit({ 1 })
      out:emit("x")
      assert.equal('[\n  1\n]\n"x"\n', stream:text())
    end)

    it("passes text options through and colours only when asked", function()
      local stream = fake_stream()
      local list = { { name = "a", state = "failed" } }
      output.writer({ stdout = stream }):emit(list, { columns = { "state" } })
      output.writer({ stdout = stream, color = true }):emit(list, { columns = { "state" } })
      assert.equal("STATE\nfailed\n\27[1mSTATE\27[0m\n\27[31mfailed\27[0m\n", stream:text())
    end)

    it("keeps colour off when the writer has it off, whatever emit asks", function()
      local stream = fake_stream()
      output.writer({ stdout = stream, color = false }):emit({ state = "ok" }, { color = true })
      assert.equal("State:  ok\n", stream:text())
    end)

    it("never colours json or yaml", function()
      local out = output.writer({ format = "yaml", color = true, stdout = fake_stream() })
      assert.is_false(out.color)
      assert.equal("yaml", out.format)
    end)

    it("defaults to text on io.stdout", function()
      local out = output.writer()
      assert.equal("text", out.format)
      assert.equal(io.stdout, out.stdout)
      assert.is_false(out.color)
    end)

    it("raises for an unknown format", function()
      assert.has_error(function() output.writer({ format = "toml" }) end,
        'output.writer: unknown format "toml" (expected text, json or yaml)')
    end)
  end)
end)
