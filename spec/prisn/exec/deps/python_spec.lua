local python = require("prisn.exec.deps.python")
local fake_tree = require("prisn.exec.deps.fake_tree")

local P = "/home/u/proj"
local APP = P .. "/app.py"

local function lines(...)
  return table.concat({ ... }, "\n") .. "\n"
end

local function detect(tree, overrides, script)
  return python.detect(script or APP, fake_tree(tree, overrides))
end

local PEP723 = lines(
  "#!/usr/bin/env python3",
  "# /// script",
  '# requires-python = ">=3.11"',
  "# dependencies = [",
  '#   "requests<3",   # comment inside the TOML',
  "#   'rich',",
  "# ]",
  "#",
  "# [tool.uv]",
  "# exclude-newer = 2024-01-01T00:00:00Z",
  "# ///",
  "import yaml")

describe("prisn.exec.deps.python", function()
  describe("PEP 723 inline metadata", function()
    it("reads dependencies and requires-python from the script block", function()
      local r = detect({ [APP] = PEP723 })
      assert.same({ source = "pep723", file = APP, dependencies = { "requests<3", "rich" }, options = {},
        requires_python = ">=3.11" }, r)
    end)

    it("beats a requirements.txt and a pyproject.toml beside the script", function()
      local r = detect({ [APP] = PEP723, [P .. "/requirements.txt"] = "flask\n",
        [P .. "/pyproject.toml"] = '[project]\ndependencies = ["django"]\n' })
      assert.equal("pep723", r.source)
      assert.same({ "requests<3", "rich" }, r.dependencies)
    end)

    it("takes a block without dependencies as a declaration of none", function()
      local r = detect({ [APP] = lines("# /// script", '# requires-python = ">=3.8"', "# ///", "import yaml") })
      assert.same({ source = "pep723", file = APP, dependencies = {}, options = {}, requires_python = ">=3.8" }, r)
    end)

    it("ignores blocks of other types and reads CRLF files", function()
      local src = table.concat({ "# /// pyproject", "# whatever = 1", "# ///", "", "# /// script",
        '# dependencies = ["httpx"]', "# ///", "" }, "\r\n")
      assert.same({ "httpx" }, detect({ [APP] = src }).dependencies)
    end)

    it("ignores indented or differently spelled markers", function()
      local r = detect({ [APP] = lines("  # /// script", '  # dependencies = ["x"]', "  # ///",
        "#/// script", "import os") })
      assert.equal("none", r.source)
    end)

    it("reports an unterminated block at its opening line, naming the script as given", function()
      local r, err, code = detect({ [APP] = lines("import os", "# /// script", '# dependencies = ["x"]', "",
        "print(1)") }, { cwd = P }, "app.py")
      assert.is_nil(r)
      assert.equal("app.py:2: unterminated '# /// script' block (no closing '# ///')", err)
      assert.equal("EDEPS", code)
    end)

    it("reports a comment line that does not start with '# '", function()
      local _, err, code = detect({ [APP] = lines("# /// script", "#dependencies = []", "# ///") })
      assert.equal(APP .. ":2: line in '# /// script' block must be '#' or start with '# '", err)
      assert.equal("EDEPS", code)
    end)

    it("refuses a second script block", function()
      local _, err, code = detect({ [APP] = lines("# /// script", "# dependencies = []", "# ///", "",
        "# /// script", '# dependencies = ["x"]', "# ///") })
      assert.equal(APP .. ":5: second '# /// script' block (the first is at line 1)", err)
      assert.equal("EDEPS", code)
    end)

    it("ends the block at the last '# ///' of the comment run, as PEP 723 says", function()
      -- Without a blank line in between, the two blocks are one: its content
      -- then holds a '# /// other' line, which is not TOML.
      local _, err = detect({ [APP] = lines("# /// script", "# dependencies = []", "# ///",
        "# /// other", "# ///") })
      assert.equal(APP .. ":3: expected a key, found '/'", err)
    end)

    it("reports TOML errors at the script's line", function()
      local _, err, code = detect({ [APP] = lines("import os", "# /// script", '# requires-python = ">=3.8"',
        "# dependencies = [", '#   "requests",', "# ///") })
      assert.equal(APP .. ":4: unterminated array", err)
      assert.equal("EDEPS", code)
    end)

    it("checks the types of dependencies and requires-python", function()
      local _, err = detect({ [APP] = lines("# /// script", '# dependencies = "requests"', "# ///") })
      assert.equal(APP .. ":1: 'dependencies' must be an array of strings", err)
      _, err = detect({ [APP] = lines("# /// script", "# dependencies = [1]", "# ///") })
      assert.equal(APP .. ":1: 'dependencies' must be an array of strings", err)
      _, err = detect({ [APP] = lines("# /// script", "# requires-python = 3", "# ///") })
      assert.equal(APP .. ":1: 'requires-python' must be a string", err)
    end)
  end)

  describe("requirements.txt", function()
    it("parses comments, continuations, markers, options and hashes", function()
      local r = detect({
        [APP] = "import flask\n",
        [P .. "/requirements.txt"] = lines(
          "# a comment",
          "",
          "--index-url https://pypi.example/simple",
          "requests  >=2.0,\\",
          "   <3   # trailing comment",
          'foo; python_version<"3.8"',
          "pkg @ https://example.com/pkg-1.0.tar.gz#sha256=abc",
          "git+https://github.com/x/y.git#egg=y",
          "# comment ending in a backslash does not continue \\",
          "bar==1.0 \\",
          "    --hash=sha256:aaa",
          "--pre"),
      })
      assert.same({ source = "requirements.txt", file = P .. "/requirements.txt",
        dependencies = { "requests >=2.0, <3", 'foo; python_version<"3.8"',
          "pkg @ https://example.com/pkg-1.0.tar.gz#sha256=abc", "git+https://github.com/x/y.git#egg=y",
          "bar==1.0 --hash=sha256:aaa" },
        options = { "--index-url https://pypi.example/simple", "--pre" } }, r)
    end)

    it("takes an empty file as a declaration of no dependencies", function()
      local r = detect({ [APP] = "import flask\n", [P .. "/requirements.txt"] = "# nothing\n" })
      assert.same({ source = "requirements.txt", file = P .. "/requirements.txt", dependencies = {},
        options = {} }, r)
    end)

    it("follows -r includes relative to the including file, once each", function()
      local r = detect({
        [APP] = "",
        [P .. "/requirements.txt"] = lines("-r reqs/base.txt", "flask", "--requirement=reqs/extra.txt"),
        [P .. "/reqs/base.txt"] = lines("requests", "-r ../requirements.txt", "-i https://mirror/simple"),
        [P .. "/reqs/extra.txt"] = lines("-rbase.txt", "rich", "requests"),
      })
      assert.same({ "requests", "flask", "rich" }, r.dependencies)
      assert.same({ "-i https://mirror/simple" }, r.options)
    end)

    it("reports a missing include at the line that names it", function()
      local _, err, code = detect({ [APP] = "", [P .. "/requirements.txt"] = lines("flask", "-r missing.txt") })
      assert.equal(P .. "/requirements.txt:2: cannot read included file " .. P .. "/missing.txt", err)
      assert.equal("EDEPS", code)
    end)

    it("makes constraint, find-links and editable paths absolute", function()
      local r = detect({ [APP] = "", [P .. "/requirements.txt"] = lines("-c constraints.txt",
        "--find-links ./wheels", "-f https://example.com/wheels", "-e ./libs/mine",
        "-e git+https://github.com/x/y.git#egg=y", "--constraint=/etc/c.txt") })
      assert.same({ "-c " .. P .. "/constraints.txt", "--find-links " .. P .. "/wheels",
        "-f https://example.com/wheels", "-e " .. P .. "/libs/mine",
        "-e git+https://github.com/x/y.git#egg=y", "--constraint /etc/c.txt" }, r.options)
      assert.same({}, r.dependencies)
    end)

    it("is found in a parent directory, up to the project root", function()
      local r = detect({ [P .. "/.git"] = true, [P .. "/requirements.txt"] = "requests\n",
        [P .. "/tools/sub/run.py"] = "import yaml\n" }, nil, P .. "/tools/sub/run.py")
      assert.equal(P .. "/requirements.txt", r.file)
      assert.same({ "requests" }, r.dependencies)
    end)

    it("takes the nearest file on the way up", function()
      local r = detect({ [P .. "/.git"] = true, [P .. "/requirements.txt"] = "requests\n",
        [P .. "/tools/requirements.txt"] = "rich\n", [P .. "/tools/sub/run.py"] = "" }, nil,
        P .. "/tools/sub/run.py")
      assert.same({ "rich" }, r.dependencies)
    end)

    it("does not look above a project root marker", function()
      for _, marker in ipairs({ ".git", "setup.py", "setup.cfg" }) do
        local r = detect({ ["/srv/requirements.txt"] = "requests\n", ["/srv/repo/" .. marker] = true,
          ["/srv/repo/app/run.py"] = "import yaml\n" }, nil, "/srv/repo/app/run.py")
        assert.same({ source = "imports", file = "/srv/repo/app/run.py", dependencies = { "PyYAML" },
          options = {} }, r, marker)
      end
    end)

    it("does not look into the home directory or /, except beside the script", function()
      local r = detect({ ["/home/u/requirements.txt"] = "requests\n", ["/home/u/scripts/a.py"] = "" }, nil,
        "/home/u/scripts/a.py")
      assert.equal("none", r.source)
      r = detect({ ["/requirements.txt"] = "requests\n", ["/opt/x/a.py"] = "" }, nil, "/opt/x/a.py")
      assert.equal("none", r.source)
      r = detect({ ["/home/u/requirements.txt"] = "requests\n", ["/home/u/a.py"] = "" }, nil, "/home/u/a.py")
      assert.same({ "requests" }, r.dependencies)
    end)
  end)

  describe("pyproject.toml", function()
    local PYPROJECT = lines(
      "[build-system]",
      'requires = ["hatchling"]',
      "[project]",
      'name = "proj"',
      'requires-python = ">=3.10"',
      "dependencies = [",
      '  "httpx>=0.27",',
      '  "Click",  # the CLI',
      "]",
      '[project.optional-dependencies]',
      'dev = ["pytest"]',
      "[[tool.mypy.overrides]]",
      'module = "x.*"')

    it("reads [project].dependencies at the project root", function()
      local r = detect({ [P .. "/pyproject.toml"] = PYPROJECT, [P .. "/src/proj/cli.py"] = "import yaml\n" },
        nil, P .. "/src/proj/cli.py")
      assert.same({ source = "pyproject.toml", file = P .. "/pyproject.toml",
        dependencies = { "httpx>=0.27", "Click" }, options = {}, requires_python = ">=3.10" }, r)
    end)

    it("loses to a requirements.txt in the same directory or below it", function()
      local r = detect({ [APP] = "", [P .. "/pyproject.toml"] = PYPROJECT, [P .. "/requirements.txt"] = "a\n" })
      assert.equal("requirements.txt", r.source)
      r = detect({ [P .. "/pyproject.toml"] = PYPROJECT, [P .. "/tools/requirements.txt"] = "b\n",
        [P .. "/tools/run.py"] = "" }, nil, P .. "/tools/run.py")
      assert.same({ "b" }, r.dependencies)
    end)

    it("ends the search: a requirements.txt above it is not used", function()
      local r = detect({ [P .. "/pyproject.toml"] = PYPROJECT, [P .. "/requirements.txt"] = "a\n",
        [P .. "/sub/pyproject.toml"] = '[project]\ndependencies = ["inner"]\n', [P .. "/sub/run.py"] = "" },
        nil, P .. "/sub/run.py")
      assert.same({ "inner" }, r.dependencies)
    end)

    it("falls through to the import scan when it declares no dependencies", function()
      local r = detect({ [P .. "/pyproject.toml"] = "[tool.black]\nline-length = 100\n",
        [APP] = "import yaml\n" })
      assert.same({ "PyYAML" }, r.dependencies)
      assert.equal("imports", r.source)
      r = detect({ [P .. "/pyproject.toml"] = '[project]\nname = "p"\ndynamic = ["dependencies"]\n',
        [APP] = "import yaml\n" })
      assert.equal("imports", r.source)
    end)

    it("takes a [project] table without dependencies as none", function()
      local r = detect({ [P .. "/pyproject.toml"] = '[project]\nname = "p"\n', [APP] = "import yaml\n" })
      assert.same({ source = "pyproject.toml", file = P .. "/pyproject.toml", dependencies = {}, options = {} }, r)
    end)

    it("reports malformed TOML with the file and line", function()
      local _, err, code = detect({ [P .. "/pyproject.toml"] = '[project]\nname = "p\n', [APP] = "" })
      assert.equal(P .. "/pyproject.toml:2: unterminated string", err)
      assert.equal("EDEPS", code)
    end)
  end)

  describe("import scan", function()
    it("maps imports to distributions, minus the stdlib, sorted and de-duplicated", function()
      local r = detect({ [APP] = lines(
        "from __future__ import annotations",
        "import os, sys",
        "import yaml",
        "import numpy as np, PIL.Image",
        "from sklearn.model_selection import train_test_split",
        "from bs4 import BeautifulSoup",
        "import requests",
        "import requests.adapters",
        "from dotenv import load_dotenv",
        "import cv2, psycopg2, attr, Levenshtein") })
      assert.same({ source = "imports", file = APP, options = {}, dependencies = {
        "Pillow", "PyYAML", "attrs", "beautifulsoup4", "numpy", "opencv-python", "psycopg2-binary",
        "python-Levenshtein", "python-dotenv", "requests", "scikit-learn" } }, r)
    end)

    it("skips relative imports and modules beside the script", function()
      local r = detect({ [APP] = lines("from . import sibling", "from .models import User", "import helpers",
        "from mypkg.sub import thing", "import requests"),
        [P .. "/helpers.py"] = "", [P .. "/mypkg/__init__.py"] = "" })
      assert.same({ "requests" }, r.dependencies)
    end)

    it("ignores imports in strings, docstrings and comments", function()
      local r = detect({ [APP] = lines(
        '"""Usage:',
        "import notreal1",
        '"""',
        "# import notreal2",
        "x = 'import notreal3'",
        "y = '''",
        'import notreal4 """ still inside',
        "'''",
        'z = r"\\" import notreal5"',
        'w = f"{1}" ; import real1',
        "raise ValueError('x') from err",
        "def gen():",
        "    yield from items",
        "import real2") })
      assert.same({ "real1", "real2" }, r.dependencies)
    end)

    it("includes imports at any indentation and in one-line compound statements", function()
      local r = detect({ [APP] = lines(
        "try:",
        "    import ujson as json",
        "except ImportError:",
        "    import json",
        "if True: import toml",
        "def f():",
        "    from httpx import (",
        "        Client,",
        "        AsyncClient,",
        "    )",
        "import a1, \\",
        "    b2") })
      assert.same({ "a1", "b2", "httpx", "toml", "ujson" }, r.dependencies)
    end)

    it("resolves namespace packages by submodule and skips a bare namespace", function()
      local r = detect({ [APP] = lines("import google", "from google.cloud import storage, pubsub_v1",
        "import google.protobuf.json_format", "from google import genai", "import azure.identity",
        "import azure") })
      assert.same({ "azure-identity", "google-cloud-pubsub", "google-cloud-storage", "google-genai", "protobuf" },
        r.dependencies)
    end)

    it("skips private modules and reads a file with a byte order mark", function()
      local r = detect({ [APP] = "\239\187\191import _pytest, __main__, _cffi_backend\nimport requests\n" })
      assert.same({ "cffi", "requests" }, r.dependencies)
    end)

    it("says none when nothing needs installing", function()
      local r = detect({ [APP] = lines("import os", "from pathlib import Path", "print('hi')") })
      assert.same({ source = "none", dependencies = {}, options = {} }, r)
    end)

    it("asks for the stdlib set only when it scans", function()
      local asked = 0
      local stdlib = function()
        asked = asked + 1
        return fake_tree.STDLIB
      end
      detect({ [APP] = PEP723 }, { stdlib = stdlib })
      assert.equal(0, asked)
      local r = detect({ [APP] = "import os, yaml\n" }, { stdlib = stdlib })
      assert.equal(1, asked)
      assert.same({ "PyYAML" }, r.dependencies)
    end)
  end)

  it("resolves a relative script path against ctx.cwd and refuses one without it", function()
    local r = detect({ [APP] = "import yaml\n" }, { cwd = P .. "/sub" }, "../app.py")
    assert.equal(APP, r.file)
    assert.has_error(function() detect({ [APP] = "" }, nil, "app.py") end)
  end)

  it("reports an unreadable script", function()
    local r, err, code = detect({}, nil, APP)
    assert.is_nil(r)
    assert.equal("cannot read " .. APP, err)
    assert.equal("ENOENT", code)
  end)

  describe("normalize", function()
    it("PEP 503-normalizes names and drops whitespace from specifiers", function()
      assert.same({ "foo-bar>=1.0,<2", "pkg[a,b-c]==1", "requests" },
        python.normalize({ "requests", "Foo_Bar >= 1.0, < 2", "PKG [b_c, A] == 1", "Requests" }))
    end)

    it("keeps markers, URLs, hashes and non-PEP 508 lines", function()
      assert.same({
        "./local/pkg",
        "foo; python_version < \"3.8\"",
        "git+https://github.com/x/y.git#egg=y",
        "my-pkg @ https://example.com/My_Pkg-1.0.whl",
        "some_pkg-1.0-py3-none-any.whl",
        "x==1 --hash=sha256:abc",
      }, python.normalize({ 'foo ;  python_version <  "3.8"', "My.Pkg @ https://example.com/My_Pkg-1.0.whl",
        "git+https://github.com/x/y.git#egg=y", "./local/pkg", "X == 1 --hash=sha256:abc",
        "some_pkg-1.0-py3-none-any.whl" }))
    end)
  end)
end)
