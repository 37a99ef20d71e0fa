local requirements = require("prisn.exec.deps.requirements")

local FILE = "/srv/app/requirements.txt"

local function parse(...)
  local result, err, code = requirements.parse(table.concat({ ... }, "\n"), FILE)
  assert(result, err)
  assert.is_nil(code)
  return result
end

describe("prisn.exec.deps.requirements", function()
  it("keeps '#' that is not at a line start or after whitespace (URL fragments)", function()
    assert.same({ "pkg @ https://x/p.zip#sha1=abc", "git+https://h/r.git#egg=r" },
      parse("pkg @ https://x/p.zip#sha1=abc # a comment", "git+https://h/r.git#egg=r").dependencies)
  end)

  it("joins continuations like pip: a comment line ends them and is never continued", function()
    assert.same({ "a>=1,<2", "b", "c" }, parse("a>=1,\\", "<2", "b \\", "# note \\", "c").dependencies)
  end)

  it("joins a continuation at the end of the file", function()
    assert.same({ "a", "b" }, parse("a", "b\\").dependencies)
  end)

  it("squeezes whitespace and keeps environment markers", function()
    assert.same({ 'foo >= 1.0 ; sys_platform == "linux"', "bar" },
      parse('  foo   >= 1.0\t;  sys_platform == "linux"  ', "\tbar").dependencies)
  end)

  it("splits options in every spelling", function()
    local r = parse("--index-url=https://a/simple", "-i https://b/simple", "--extra-index-url https://c",
      "--no-index", "--trusted-host a.example", "--prefer-binary", "--only-binary=:all:")
    assert.same({ "--index-url https://a/simple", "-i https://b/simple", "--extra-index-url https://c",
      "--no-index", "--trusted-host a.example", "--prefer-binary", "--only-binary :all:" }, r.options)
    assert.same({}, r.dependencies)
  end)

  it("lists includes in place among the requirements", function()
    local r = parse("a", "-r base.txt", "--requirement ../shared/x.txt", "b")
    assert.same({ { path = "/srv/app/base.txt", line = 2 }, { path = "/srv/shared/x.txt", line = 3 } }, r.includes)
    assert.same({ "a", r.includes[1], r.includes[2], "b" }, r.items)
  end)

  it("reports an include without a file name", function()
    local r, err, code = requirements.parse("a\n-r\n", FILE)
    assert.is_nil(r)
    assert.equal(FILE .. ":2: -r needs a file name", err)
    assert.equal("EDEPS", code)
  end)

  it("reports the line of a continued option by its first line", function()
    local _, err = requirements.parse("a\n--requirement \\\n\n", FILE)
    assert.equal(FILE .. ":2: --requirement needs a file name", err)
  end)

  describe("read", function()
    local function ctx(files)
      return { read_file = function(path) return files[path] end }
    end

    it("expands includes where they stand, dropping repeats and ending cycles", function()
      local r = requirements.read("/r/a.txt", ctx({
        ["/r/a.txt"] = "one\n-r b.txt\nfour\n-r a.txt\n",
        ["/r/b.txt"] = "two\n-r c.txt\none\n",
        ["/r/c.txt"] = "three\n-r b.txt\n--pre\n",
      }))
      assert.same({ dependencies = { "one", "two", "three", "four" }, options = { "--pre" } }, r)
    end)

    it("reports an unreadable top-level file", function()
      local r, err, code = requirements.read("/r/a.txt", ctx({}))
      assert.is_nil(r)
      assert.equal("cannot read /r/a.txt", err)
      assert.equal("EDEPS", code)
    end)
  end)
end)
