-- prisn.server.ingress.certs: where each host name's certificate comes
-- from, and loading it: self-signed (kept in the home), from files
-- (reloaded when they change, the self-signed one while they are broken).
local uv = require("luv")
local certs = require("prisn.server.ingress.certs")
local tls = require("prisn.net.tls")
local remove_tree = require("support").remove_tree

describe("prisn.server.ingress.certs", function()
  local home, c, logged

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    logged = {}
    local log = { error = function(_, fmt, ...) logged[#logged + 1] = string.format(fmt, ...) end,
      info = function() end }
    c = certs.new({ home = home, log = log }, { poll_ms = 3600000 })
  end)

  after_each(function()
    c:close()
    uv.run("nowait")
    remove_tree(home)
  end)

  local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  end

  it("takes a host name's source from the first of its deployments, by path, that names one", function()
    local sources = certs.sources({
      a = { ns = "a", row = { hostname = "x.example.com", path = "/v1", tls_secret = "x-tls" } },
      b = { ns = "a", row = { hostname = "x.example.com", path = "/" } },
      c = { ns = "a", row = { hostname = "y.example.com", path = "/", tls_cert = "/c", tls_key = "/k" } },
      d = { ns = "a", row = { hostname = "z.example.com", path = "/" } },
      e = { ns = "a", row = {} },
      f = { ns = "a", deleted = true, row = { hostname = "gone.example.com" } },
    })
    assert.same({ "secret", "a", "x-tls" }, { sources["x.example.com"].kind, sources["x.example.com"].ns,
      sources["x.example.com"].name })
    assert.same({ "file", "/c", "/k" }, { sources["y.example.com"].kind, sources["y.example.com"].cert,
      sources["y.example.com"].key })
    assert.equal("self-signed", sources["z.example.com"].kind)
    assert.is_nil(sources["gone.example.com"])
  end)

  it("makes a self-signed certificate once and keeps it in the home; unknown names get none", function()
    c:set_sources(certs.sources({ a = { ns = "a", row = { hostname = "s.example.com", path = "/" } } }))
    assert.is_nil(c:info("s.example.com"), "not loaded before a client or describe asks")
    local info = c:info("s.example.com", true)
    assert.truthy(c:pair("S.Example.com"))
    assert.same({ "CN=s.example.com", true }, { info.subject, info.self_signed })
    local kept = assert(io.open(home .. "/tls/ingress/s.example.com.crt")):read("a")
    assert.equal(info.fingerprint, tls.cert_info(kept).fingerprint)
    assert.is_nil(c:pair("other.example.com"))
    assert.truthy(c:default_pair())
  end)

  it("loads files, reloads them when they change, and serves the self-signed one while they are broken", function()
    local one, two = tls.new_leaf({ "f.example.com" }), tls.new_leaf({ "f.example.com" })
    local cert, key = home .. "/f.crt", home .. "/f.key"
    write(cert, one.cert); write(key, one.key)
    c:set_sources(certs.sources({ a = { ns = "a", row = { hostname = "f.example.com", path = "/", tls_cert = cert,
      tls_key = key } } }))
    assert.truthy(c:pair("f.example.com"))
    assert.equal(tls.cert_info(one.cert).fingerprint, c:info("f.example.com").fingerprint)
    write(cert, two.cert .. "\n"); write(key, two.key)
    c:check()
    assert.equal(tls.cert_info(two.cert).fingerprint, c:info("f.example.com").fingerprint)
    write(key, "not a key")
    c:check()
    local info = c:info("f.example.com")
    assert.is_true(info.self_signed)
    assert.truthy(info.error)
    assert.matches("f%.example%.com %(file%)", logged[#logged])
  end)
end)
