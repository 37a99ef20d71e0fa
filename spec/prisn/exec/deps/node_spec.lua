local node = require("prisn.exec.deps.node")
local fake_tree = require("prisn.exec.deps.fake_tree")

local P = "/home/u/proj"
local APP = P .. "/app.js"

local function lines(...)
  return table.concat({ ... }, "\n") .. "\n"
end

local function detect(tree, overrides, script)
  return node.detect(script or APP, fake_tree(tree, overrides))
end

local function scan_deps(src)
  return detect({ [APP] = src }).dependencies
end

describe("prisn.exec.deps.node", function()
  describe("package.json", function()
    it("lists dependencies as name@range, sorted; devDependencies are not for running", function()
      local r = detect({ [APP] = "require('ignored')\n", [P .. "/package.json"] = [[{
        "name": "proj",
        "dependencies": { "lodash": "^4.17.21", "@scope/pkg": "~1.2.0", "any": "", "local": "file:../lib",
          "rel": "./vendor/x", "gh": "github:user/repo#v1" },
        "devDependencies": { "jest": "^29" },
        "optionalDependencies": { "fsevents": "*" }
      }]] })
      assert.same({ source = "package.json", file = P .. "/package.json", options = {}, dependencies = {
        "@scope/pkg@~1.2.0", "any@*", "gh@github:user/repo#v1", "local@file:/home/u/lib", "lodash@^4.17.21",
        "rel@file:" .. P .. "/vendor/x" } }, r)
    end)

    it("is found in a parent directory, up to a .git", function()
      local r = detect({ [P .. "/package.json"] = '{"dependencies": {"a": "1"}}', [P .. "/src/bin/run.js"] = "" },
        nil, P .. "/src/bin/run.js")
      assert.same({ "a@1" }, r.dependencies)
      r = detect({ [P .. "/package.json"] = '{"dependencies": {"a": "1"}}', [P .. "/tool/.git"] = true,
        [P .. "/tool/run.js"] = "require('b')" }, nil, P .. "/tool/run.js")
      assert.same({ source = "imports", file = P .. "/tool/run.js", dependencies = { "b" }, options = {} }, r)
    end)

    it("without a dependencies field ends the search and leaves it to the scan", function()
      local r = detect({ [P .. "/package.json"] = '{"dependencies": {"a": "1"}}',
        [P .. "/esm/package.json"] = '{"type": "module", "dependencies": null}',
        [P .. "/esm/run.mjs"] = "import x from 'chalk'\n" }, nil, P .. "/esm/run.mjs")
      assert.same({ source = "imports", file = P .. "/esm/run.mjs", dependencies = { "chalk" }, options = {} }, r)
    end)

    it("with an empty dependencies object declares none", function()
      local r = detect({ [APP] = "require('x')", [P .. "/package.json"] = '{"dependencies": {}}' })
      assert.same({ source = "package.json", file = P .. "/package.json", dependencies = {}, options = {} }, r)
    end)

    it("does not look into the home directory", function()
      local r = detect({ ["/home/u/package.json"] = '{"dependencies": {"a": "1"}}', [APP] = "" })
      assert.equal("none", r.source)
    end)

    it("reports malformed files with the line", function()
      local _, err, code = detect({ [APP] = "", [P .. "/package.json"] = '{\n  "dependencies": {\n    "a": 1,\n' })
      assert.matches("^" .. P:gsub("%p", "%%%0") .. "/package%.json:%d+: invalid JSON: ", err)
      assert.equal("EDEPS", code)
      _, err, code = detect({ [APP] = "", [P .. "/package.json"] = '{"dependencies": {"a": 1}}' })
      assert.equal(P .. "/package.json: dependencies.a: expected a version range string", err)
      assert.equal("EDEPS", code)
      _, err = detect({ [APP] = "", [P .. "/package.json"] = '{"dependencies": "a"}' })
      assert.equal(P .. "/package.json: 'dependencies' must be an object", err)
      _, err = detect({ [APP] = "", [P .. "/package.json"] = '[]' })
      assert.is_nil(err) -- an empty array decodes as an empty object: nothing declared
    end)
  end)

  describe("scan", function()
    it("finds require, import, dynamic import and export-from", function()
      assert.same({ "a", "b", "c", "d", "e", "f", "g", "h", "i" }, scan_deps(lines(
        "const a = require('a')",
        'import b from "b"',
        "import { x, y as z } from 'c'",
        "import * as ns from 'd'",
        "import 'e'",
        "const f = await import('f')",
        "export { q } from 'g'",
        "export * from \"h\"",
        "const p = require.resolve('i')")))
    end)

    it("reduces subpaths and scoped packages to the package name", function()
      assert.same({ "@babel/core", "@scope/pkg", "lodash" }, scan_deps(lines(
        "require('lodash/fp')", "require('lodash')", "import x from '@scope/pkg/sub/deep.js'",
        "import y from '@babel/core'", "import bad from '@scope'")))
    end)

    it("skips relative, absolute, node:, URL and #internal specifiers and builtins", function()
      assert.same({ "express" }, scan_deps(lines(
        "require('./local')", "require('../up/x')", "require('/abs/x')", "require('node:fs')",
        "import t from 'node:test'", "import d from 'data:text/javascript,1'", "import h from 'https://x/y.js'",
        "import i from '#internal/x'", "require('fs')", "require('fs/promises')", "require('path')",
        "import cp from 'child_process'", "require('express')")))
    end)

    it("ignores comments, strings, template text and regular expressions", function()
      assert.same({ "real1", "real2", "real3", "real4" }, scan_deps(lines(
        "#!/usr/bin/env node",
        "// require('no1')",
        "/* import x from 'no2'",
        "   require('no3') */",
        "const s = \"require('no4')\"",
        "const t = `import 'no5' ${require('real1')} and ${ { a: 1 }.a } require('no6')`",
        "const re = /require\\('no7'\\)[\"']/g",
        "const half = 10 / 2; require('real2') / 3",
        "obj.require('no8'); this.import('no9')",
        "const dyn = require(name); import(`./${x}`)",
        "if (x) return /['\"]/.test(y) || require('real3')",
        "import q from 'real4'")))
    end)

    it("reads a file with a byte order mark", function()
      assert.same({ "a" }, scan_deps("\239\187\191import x from 'a'\n"))
    end)

    it("says none when nothing needs installing", function()
      assert.same({ source = "none", dependencies = {}, options = {} },
        detect({ [APP] = "const fs = require('fs')\nconsole.log('hi')\n" }))
    end)

    it("asks for the builtin set only when it scans", function()
      local asked = 0
      local builtins = function()
        asked = asked + 1
        return fake_tree.BUILTINS
      end
      detect({ [APP] = "", [P .. "/package.json"] = '{"dependencies": {"a": "1"}}' }, { builtins = builtins })
      assert.equal(0, asked)
      assert.same({ "b" }, detect({ [APP] = "require('fs'); require('b')" }, { builtins = builtins }).dependencies)
      assert.equal(1, asked)
    end)
  end)

  describe("package_name", function()
    it("names the package of a bare specifier", function()
      assert.equal("lodash", node.package_name("lodash/fp"))
      assert.equal("@scope/pkg", node.package_name("@scope/pkg/sub"))
      assert.equal("left-pad", node.package_name("left-pad"))
      assert.is_nil(node.package_name("@scope"))
      assert.is_nil(node.package_name("./x"))
      assert.is_nil(node.package_name("node:fs"))
      assert.is_nil(node.package_name("C:\\x"))
      assert.is_nil(node.package_name("_private"))
      assert.is_nil(node.package_name("has space"))
    end)
  end)

  it("normalize sorts and de-duplicates, keeping entries as written", function()
    assert.same({ "@a/b@1", "Zed@2", "lodash@^4" }, node.normalize({ "lodash@^4", "Zed@2", "@a/b@1", "lodash@^4" }))
  end)
end)
