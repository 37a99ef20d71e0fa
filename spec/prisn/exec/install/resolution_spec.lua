-- prisn.exec.install.resolution: pip's answer for a requirement set is
-- reused only under the key pip's choice depends on, and only while pip
-- would still give it.
local uv = require("luv")
local resolution = require("prisn.exec.install.resolution")
local remove_tree = require("support").remove_tree

describe("prisn.exec.install.resolution", function()
  local py = { executable = "/usr/bin/python3", version = "3.11.2" }
  local no_files = function() return nil end
  local WHEELS = { { id = "acme-1.0-py3-none-any-0123456789abcdef", name = "acme", version = "1.0" } }

  describe("key", function()
    local base = resolution.key(py, { "acme" }, { "PIP_NO_INDEX=1" }, no_files)

    it("is the same for the same set, whatever pip logs or caches", function()
      assert.equal(base, resolution.key(py, { "acme" }, { "PIP_NO_INDEX=1", "PIP_LOG=/tmp/x",
        "PIP_CACHE_DIR=/tmp/c", "PATH=/bin" }, no_files))
    end)

    it("changes with the interpreter, the lines, a resolving variable and pip's configuration", function()
      local keys = {
        resolution.key({ executable = "/usr/bin/python3", version = "3.12.1" }, { "acme" }, { "PIP_NO_INDEX=1" },
          no_files),
        resolution.key(py, { "acme", "extra" }, { "PIP_NO_INDEX=1" }, no_files),
        resolution.key(py, { "--find-links /w", "acme" }, { "PIP_NO_INDEX=1" }, no_files),
        resolution.key(py, { "acme" }, { "PIP_NO_INDEX=1", "PIP_INDEX_URL=https://mirror" }, no_files),
        resolution.key(py, { "acme" }, { "PIP_NO_INDEX=1", "HOME=/h" }, function(path)
          return path == "/h/.config/pip/pip.conf" and "[global]\nindex-url = https://other\n" or nil
        end),
      }
      local seen = { [base] = true }
      for _, k in ipairs(keys) do
        assert.is_nil(seen[k])
        seen[k] = true
      end
    end)
  end)

  it("changes when a local folder or file pip reads from changes: a wheel rebuilt there is pip's new answer", function()
    local dir = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    local function keys()
      return { resolution.key(py, { "acme" }, { "PIP_FIND_LINKS=" .. dir }, no_files),
        resolution.key(py, { "--find-links " .. dir, "acme" }, {}, no_files),
        resolution.key(py, { "acme @ file://" .. dir .. "/acme-1.0-py3-none-any.whl" }, {}, no_files) }
    end
    local before = keys()
    assert.same(before, keys())
    assert(require("prisn.fs").write_atomic(dir .. "/acme-1.0-py3-none-any.whl", "a newer build"))
    local after = keys()
    remove_tree(dir)
    for i = 1, 3 do assert.are_not.equal(before[i], after[i], "case " .. i) end
  end)

  it("knows a set of exact pins that installed nothing else", function()
    assert.is_true(resolution.pinned({ "acme==1.0" }, WHEELS))
    assert.is_false(resolution.pinned({ "acme" }, WHEELS))
    assert.is_false(resolution.pinned({ "acme>=1.0" }, WHEELS))
    assert.is_false(resolution.pinned({ "acme==1.0" }, { WHEELS[1], { id = "x", name = "dep", version = "2" } }))
  end)

  describe("load and save", function()
    local root
    before_each(function() root = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX")) end)
    after_each(function() remove_tree(root) end)

    it("gives back what pip picked while it is fresh", function()
      assert(resolution.save(root, "k", { "acme" }, WHEELS, 1000))
      assert.same(WHEELS, resolution.load(root, "k", 1000 + resolution.TTL_S))
    end)

    it("forgets an unpinned answer after TTL_S: a new release would be pip's answer", function()
      assert(resolution.save(root, "k", { "acme" }, WHEELS, 1000))
      assert.is_nil(resolution.load(root, "k", 1001 + resolution.TTL_S))
    end)

    it("keeps an exactly pinned answer", function()
      assert(resolution.save(root, "k", { "acme==1.0" }, WHEELS, 1000))
      assert.same(WHEELS, resolution.load(root, "k", 1000 + 100 * resolution.TTL_S))
    end)

    it("is unknown when missing or damaged", function()
      assert.is_nil(resolution.load(root, "nope", 1000))
      assert(require("prisn.fs").mkdir_p(root .. "/resolutions"))
      for _, text in ipairs({ "{", "[]", '{"created_at":1,"wheels":[]}',
        '{"created_at":1,"pinned":true,"wheels":[{"id":"../../etc"}]}' }) do
        assert(require("prisn.fs").write_atomic(resolution.path(root, "bad"), text))
        assert.is_nil(resolution.load(root, "bad", 2))
      end
    end)
  end)
end)
