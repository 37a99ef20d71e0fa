local paths = require("prisn.exec.deps.paths")

describe("prisn.exec.deps.paths", function()
  it("cleans paths lexically", function()
    assert.equal("/a/b/d", paths.clean("/a/./b//c/../d/"))
    assert.equal("/", paths.clean("/.."))
    assert.equal("../x", paths.clean("a/../../x"))
    assert.equal(".", paths.clean("a/.."))
  end)

  it("joins, takes dirname and basename", function()
    assert.equal("/a/c", paths.join("/a/b", "../c"))
    assert.equal("/etc/x", paths.join("/a/b", "/etc/x"))
    assert.equal("/a", paths.dirname("/a/b.py"))
    assert.equal("/", paths.dirname("/b.py"))
    assert.equal("/", paths.dirname("/"))
    assert.equal("b.py", paths.basename("/a/b.py"))
  end)

  it("makes a relative path absolute against cwd, and refuses without one", function()
    assert.equal("/w/x.py", paths.absolute("x.py", "/w"))
    assert.equal("/x.py", paths.absolute("/x.py"))
    assert.has_error(function() paths.absolute("x.py", nil) end,
      "script path 'x.py' is relative and ctx.cwd is not an absolute path")
  end)

  describe("search_dirs", function()
    local function ctx(existing, home)
      local set = {}
      for _, p in ipairs(existing) do set[p] = true end
      return { home = home or "/home/u", exists = function(p) return set[p] == true end }
    end

    it("climbs to the first directory with a marker, which is included", function()
      assert.same({ "/home/u/p/a/b", "/home/u/p/a", "/home/u/p" },
        paths.search_dirs(ctx({ "/home/u/p/.git" }), "/home/u/p/a/b", { ".git" }))
    end)

    it("stops below the home directory and /, unless it starts there", function()
      assert.same({ "/home/u/p/a", "/home/u/p" }, paths.search_dirs(ctx({}), "/home/u/p/a", { ".git" }))
      assert.same({ "/opt/x", "/opt" }, paths.search_dirs(ctx({}), "/opt/x", { ".git" }))
      assert.same({ "/home/u" }, paths.search_dirs(ctx({}), "/home/u", { ".git" }))
      assert.same({ "/" }, paths.search_dirs(ctx({}), "/", { ".git" }))
      assert.same({ "/home/u/p" }, paths.search_dirs(ctx({}, "/home/u/"), "/home/u/p", { ".git" }))
    end)
  end)
end)
