-- prisn.exec.install.wheelcache: what pip installed from a wheel is kept
-- read-only and linked into a new environment as pip would have left it; a
-- damaged entry or a distribution prisn could not remake is refused.
local uv = require("luv")
local fs = require("prisn.fs")
local wheelcache = require("prisn.exec.install.wheelcache")
local remove_tree = require("support").remove_tree

local SHA = string.rep("ab", 32)
local ID = "acme_tools-1.0-py3-none-any-abababababababab"

local function report(url)
  return { install = { { download_info = { url = url or "file:///w/acme_tools-1.0-py3-none-any.whl",
    archive_info = { hashes = { sha256 = SHA } } }, metadata = { name = "acme-tools", version = "1.0" } } } }
end

-- A site-packages as pip leaves it after installing acme-tools 1.0.
local function installed(site, extra_record)
  local info = site .. "/acme_tools-1.0.dist-info"
  assert(fs.mkdir_p(site .. "/acme"))
  assert(fs.mkdir_p(info))
  assert(fs.write_atomic(site .. "/acme/__init__.py", "def main():\n    print('hi')\n"))
  assert(fs.write_atomic(info .. "/METADATA", "Metadata-Version: 2.1\nName: acme-tools\nVersion: 1.0\n"))
  assert(fs.write_atomic(info .. "/INSTALLER", "pip\n"))
  assert(fs.write_atomic(info .. "/entry_points.txt", "[console_scripts]\nacme = acme:main\n"))
  assert(fs.write_atomic(info .. "/RECORD", table.concat({ "../../../bin/acme,sha256=x,1",
    "acme/__init__.py,sha256=y,27", "acme/__pycache__/__init__.cpython-311.pyc,,",
    "acme_tools-1.0.dist-info/INSTALLER,sha256=z,4", "acme_tools-1.0.dist-info/METADATA,,",
    "acme_tools-1.0.dist-info/RECORD,,", "acme_tools-1.0.dist-info/entry_points.txt,,", extra_record }, "\n")))
end

describe("prisn.exec.install.wheelcache", function()
  local tmp, site, root

  before_each(function()
    tmp = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    site, root = tmp .. "/a/site-packages", tmp .. "/cache"
  end)
  after_each(function() remove_tree(tmp) end)

  it("names an entry by the wheel file and its hash, and has none for an sdist", function()
    assert.equal(ID, wheelcache.entry_id("https://x/acme_tools-1.0-py3-none-any.whl", SHA))
    assert.equal("a_b-1.0+local-py3-none-any-abababababababab",
      wheelcache.entry_id("file:///w/a_b-1.0%2Blocal-py3-none-any.whl", SHA))
    assert.is_nil(wheelcache.entry_id("https://x/acme-1.0.tar.gz", SHA))
    assert.is_nil(wheelcache.entry_id("https://x/acme-1.0-py3-none-any.whl", nil))
  end)

  it("reads RECORD paths and entry points as pip writes them", function()
    assert.equal("a,b.py", wheelcache.record_path('"a,b.py",sha256=x,1'))
    assert.equal("a.py", wheelcache.record_path("a.py,,"))
    assert.same({ { name = "acme", module = "acme.cli", attr = "App.run" } },
      wheelcache.scripts("[console_scripts]\nacme = acme.cli:App.run\n[other]\nx = y:z\n"))
  end)

  it("fills from an install and links the same files, read-only, with RECORD, INSTALLER and scripts", function()
    installed(site)
    local wheels = assert(wheelcache.fill(root, report(), site))
    assert.same({ { id = ID, name = "acme-tools", version = "1.0" } }, wheels)
    local m = assert(wheelcache.verify(root, ID))
    local site2, bin2 = tmp .. "/b/site-packages", tmp .. "/b/bin"
    assert(fs.mkdir_p(site2))
    assert(fs.mkdir_p(bin2))
    assert(wheelcache.link({ m }, site2, bin2, "/envs/b/bin/python"))
    local a, b = uv.fs_stat(site .. "/acme/__init__.py"), uv.fs_stat(site2 .. "/acme/__init__.py")
    assert.equal(a.ino, b.ino)
    assert.equal(tonumber("444", 8), b.mode & tonumber("777", 8))
    assert.equal("prisn\n", fs.read_file(site2 .. "/acme_tools-1.0.dist-info/INSTALLER"))
    assert.equal(table.concat({ "acme/__init__.py,sha256=y,27", "acme/__pycache__/__init__.cpython-311.pyc,,",
      "acme_tools-1.0.dist-info/METADATA,,", "acme_tools-1.0.dist-info/entry_points.txt,,",
      "../../../bin/acme,,", "acme_tools-1.0.dist-info/INSTALLER,,", "acme_tools-1.0.dist-info/RECORD,," }, "\n")
      .. "\n", fs.read_file(site2 .. "/acme_tools-1.0.dist-info/RECORD"))
    local script = fs.read_file(bin2 .. "/acme")
    assert.matches("^#!/envs/b/bin/python\n", script)
    assert.matches("from acme import main\n", script, 1, true)
    assert.matches("sys.exit(main())", script, 1, true)
    assert.equal(tonumber("755", 8), uv.fs_stat(bin2 .. "/acme").mode & tonumber("777", 8))
  end)

  it("refuses an entry whose file changed (through a hard link, say)", function()
    installed(site)
    assert(wheelcache.fill(root, report(), site))
    local path = site .. "/acme/__init__.py"
    uv.fs_chmod(path, tonumber("644", 8))
    local f = assert(io.open(path, "a"))
    f:write("import os  # planted\n")
    f:close()
    local m, why = wheelcache.verify(root, ID)
    assert.is_nil(m)
    assert.equal("changed: acme/__init__.py", why)
  end)

  it("caches nothing of a set it could not remake: an sdist, data files, plain scripts", function()
    installed(site)
    assert.is_nil(wheelcache.fill(root, report("https://x/acme-1.0.tar.gz"), site))
    remove_tree(tmp .. "/a")
    installed(site, "../../../share/acme/data.txt,,")
    local _, why = wheelcache.fill(root, report(), site)
    assert.equal("a file outside site-packages: ../../../share/acme/data.txt", why)
    remove_tree(tmp .. "/a")
    installed(site, "../../../bin/helper.sh,,")
    _, why = wheelcache.fill(root, report(), site)
    assert.equal("a script that is not an entry point: ../../../bin/helper.sh", why)
    assert.is_nil(uv.fs_stat(root .. "/" .. ID))
  end)
end)
