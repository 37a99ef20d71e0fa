local imports = require("prisn.exec.deps.python_imports")

local function scan(...)
  return imports.scan(table.concat({ ... }, "\n"))
end

describe("prisn.exec.deps.python_imports", function()
  it("reports dotted modules, and imported names under their module", function()
    assert.same({ "a.b.c", "d", "x.y.z", "x.y.w", "m" },
      scan("import a.b.c as abc, d", "from x.y import z as zz, w", "from m import *"))
  end)

  it("reads parenthesized and continued import lists", function()
    assert.same({ "p.a", "p.b", "p.c", "q", "r" },
      scan("from p import (", "  a,  # first", "  b as bb,", "  c,", ")", "import q, \\", "  r"))
  end)

  it("skips relative imports", function()
    assert.same({}, scan("from . import a", "from .. import b", "from .c import d", "from ...e.f import g"))
  end)

  it("finds statements after ';' and a top-level ':' only", function()
    assert.same({ "a", "b", "c.d" }, scan("x = 1; import a", "if x: import b", "else: from c import d"))
    assert.same({}, scan("d = {k: v for k in y}", "raise E from err", "x = (yield from g)", "print(from_)"))
  end)

  it("skips every kind of string literal", function()
    assert.same({ "real" }, scan(
      "s = 'it''s import no1'",
      'b = b"import no2"',
      "r = Rb'\\' import no3'",
      'f = F"""',
      "import no4",
      '"""',
      "u = u'''import no5 ''' ; import real",
      "t = '\\'' \"import no6\""))
  end)

  it("survives unterminated strings and odd input", function()
    assert.same({ "a" }, scan("x = 'unterminated", "import a"))
    assert.same({}, scan('x = """never closed', "import a"))
    assert.same({}, scan("import", "from", "from x", "import ."))
  end)

  it("treats non-ASCII identifiers as names", function()
    assert.same({ "módulo" }, scan("café = 1", "import módulo"))
  end)
end)
