local uv = require("luv")
local bundle = require("prisn.bundle")

local function write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then uv.fs_chmod(path, mode) end
end

describe("prisn.bundle", function()
  local tmp
  before_each(function() tmp = assert(uv.fs_mkdtemp("/tmp/prisn-bundle-XXXXXX")) end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("packs a folder deterministically, skipping caches and VCS, and unpacks it", function()
    local src = tmp .. "/src"
    for _, d in ipairs({ src, src .. "/lib", src .. "/.git", src .. "/__pycache__", src .. "/node_modules" }) do
      uv.fs_mkdir(d, tonumber("755", 8))
    end
    write(src .. "/main.py", "print('hi')\n", tonumber("755", 8))
    write(src .. "/lib/util.py", "X = '\\0binary\\n'\n")
    write(src .. "/.git/HEAD", "ref\n")
    write(src .. "/__pycache__/x.pyc", "junk")
    write(src .. "/node_modules/m.js", "junk")
    write(src .. "/old.pyc", "junk")
    local blob, hash, info = bundle.pack(src)
    assert.same({ files = 2 }, { files = info.files })
    assert.equal(64, #hash)
    local again, hash2 = bundle.pack(src)
    assert.equal(blob, again)
    assert.equal(hash, hash2)
    assert.is_nil(blob:find(".git", 1, true))
    assert.equal(2, bundle.unpack(blob, tmp .. "/out"))
    assert.equal("print('hi')\n", assert(io.open(tmp .. "/out/main.py")):read("a"))
    assert.equal(tonumber("755", 8), uv.fs_stat(tmp .. "/out/main.py").mode & tonumber("777", 8))
  end)

  it("refuses hostile and malformed bundles", function()
    assert.same({ nil, "unsafe path in bundle: ../evil" },
      { bundle.unpack(bundle.MAGIC .. "F 644 1 ../evil\nx\n", tmp .. "/a") })
    assert.same({ nil, "unsafe path in bundle: /etc/x" },
      { bundle.unpack(bundle.MAGIC .. "F 644 1 /etc/x\nx\n", tmp .. "/b") })
    assert.same({ nil, "truncated bundle entry: f" }, { bundle.unpack(bundle.MAGIC .. "F 644 10 f\nx\n", tmp .. "/c") })
    assert.same({ nil, "not a prisn bundle" }, { bundle.unpack("PK\3\4", tmp .. "/d") })
  end)

  it("addresses bundles only by a well-formed hash", function()
    assert.is_nil(bundle.dir("/h", "../x"))
    assert.equal("/h/bundles/" .. string.rep("a", 64), bundle.dir("/h", string.rep("A", 64)))
  end)
end)
