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

  -- The folder's files as bundle.files lists them: relative paths.
  local function listed(dir, opts)
    local files, err = bundle.files(dir, opts)
    assert(files, err)
    local paths = {}
    for i, f in ipairs(files) do paths[i] = f.path end
    return paths
  end

  local function mkdirs(...)
    for _, d in ipairs({ ... }) do assert(os.execute("mkdir -p '" .. tmp .. "/" .. d .. "'")) end
  end

  it("leaves out what .prisnignore lists, and --include brings paths back", function()
    mkdirs("data/raw", "lib", "node_modules/left", "vendor/node_modules/pkg")
    write(tmp .. "/main.py", "import lib.util\n")
    write(tmp .. "/lib/util.py", "")
    write(tmp .. "/data/raw/a.csv", "1\n")
    write(tmp .. "/data/keep.csv", "1\n")
    write(tmp .. "/run.log", "x")
    write(tmp .. "/node_modules/left/i.js", "x")
    write(tmp .. "/vendor/node_modules/pkg/i.js", "x")
    write(tmp .. "/.prisnignore", "# not needed on the server\ndata/\n*.log\n")
    assert.same({ ".prisnignore", "lib/util.py", "main.py" }, listed(tmp))
    assert.same({ ".prisnignore", "data/raw/a.csv", "lib/util.py", "main.py", "vendor/node_modules/pkg/i.js" },
      listed(tmp, { include = { "data/raw", "vendor/node_modules" } }))
    write(tmp .. "/.prisnignore", "!node_modules/\n")
    assert.same({ ".prisnignore", "data/keep.csv", "data/raw/a.csv", "lib/util.py", "main.py",
      "node_modules/left/i.js", "run.log", "vendor/node_modules/pkg/i.js" }, listed(tmp))
  end)

  it("never packs a .git folder or the paths in opts.skip ($PRISN_HOME), even when included", function()
    mkdirs("sub/.git", "home/bundles")
    write(tmp .. "/main.sh", "")
    write(tmp .. "/sub/.git/config", "")
    write(tmp .. "/home/state.db", "")
    assert.same({ "main.sh" }, listed(tmp, { include = { "sub", "home" }, skip = { tmp .. "/home" } }))
  end)

  it("names the five biggest entries of a folder over the limit", function()
    mkdirs("data", "models")
    write(tmp .. "/main.py", "")
    for i, size in ipairs({ 12, 6, 2, 1, 1 }) do
      local f = assert(io.open(tmp .. (i <= 2 and "/data/" or "/") .. "f" .. i, "w"))
      f:seek("set", size * 1024 * 1024 - 1)
      f:write("x")
      f:close()
    end
    local f = assert(io.open(tmp .. "/models/m", "w"))
    f:seek("set", 3 * 1024 * 1024 - 1)
    f:write("x")
    f:close()
    local files, err = bundle.files(tmp)
    assert.is_nil(files)
    assert.equal(tmp .. " holds 25M of files, over the 20M limit; the biggest entries: data/ (18M), models/ (3M), "
      .. "f3 (2M), f4 (1M), f5 (1M)", err)
    write(tmp .. "/.prisnignore", "/data\n")
    assert.same({ ".prisnignore", "f3", "f4", "f5", "main.py", "models/m" }, listed(tmp))
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
