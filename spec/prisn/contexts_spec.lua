local contexts = require("prisn.contexts")
local uv = require("luv")
local raised = require("support").raised

local TOKEN_A = "prisn_06h1jdn4hxhr_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
local TOKEN_B = "prisn_07k2mfp5jyjs_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
local ADMIN = "prisn_01admin00000_cccccccccccccccccccccccccccccccc"

local function env(vars)
  return function(name) return vars[name] end
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("prisn.contexts", function()
  local home

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-contexts-spec-XXXXXX"))
    write(home .. "/admin.token", ADMIN .. "\n")
  end)
  after_each(function() os.execute("rm -rf '" .. home .. "'") end)

  describe("resolve", function()
    local function setup()
      contexts.add(home, "a", { server = "http://10.0.0.1:7433", token = TOKEN_A, namespace = "ns-a" })
      contexts.add(home, "b", { server = "unix:/run/b.sock", token = TOKEN_B })
      contexts.use(home, "a")
    end

    local function pick(opts, vars)
      local r = contexts.resolve(home, { context = opts.context, env = env(vars or {}) })
      return { r.name, r.source, r.namespace }
    end

    it("is local, with the admin token and socket, when nothing is set up", function()
      local r = contexts.resolve(home, { env = env({}) })
      assert.same({ name = "local", address = "unix:" .. home .. "/prisn.sock", token = ADMIN,
        namespace = "default", is_local = true, source = "default" }, r)
    end)

    it("follows --context > PRISN_CONTEXT > PRISN_SERVER > current > local", function()
      setup()
      local srv = { PRISN_SERVER = "http://h:1", PRISN_TOKEN = TOKEN_B }
      local cases = {
        -- opts, environment, expected { name, source, namespace }
        { {}, {}, { "a", "current", "ns-a" } },
        { {}, srv, { "env", "PRISN_SERVER", "default" } },
        { {}, { PRISN_CONTEXT = "b", PRISN_SERVER = "http://h:1", PRISN_TOKEN = TOKEN_B },
          { "b", "PRISN_CONTEXT", "default" } },
        { { context = "local" }, { PRISN_CONTEXT = "b" }, { "local", "flag", "default" } },
        { { context = "b" }, srv, { "b", "flag", "default" } },
        { {}, { PRISN_NAMESPACE = "ns-x" }, { "a", "current", "ns-x" } },
        { { context = "a" }, { PRISN_NAMESPACE = "ns-x" }, { "a", "flag", "ns-x" } },
        { {}, { PRISN_CONTEXT = "", PRISN_SERVER = "", PRISN_NAMESPACE = "" }, { "a", "current", "ns-a" } },
      }
      for i, case in ipairs(cases) do
        assert.same(case[3], pick(case[1], case[2]), "case " .. i)
      end
      contexts.use(home, "local")
      assert.same({ "local", "default", "default" }, pick({}))
    end)

    it("gives the ad-hoc env context the server and token from the environment", function()
      local r = contexts.resolve(home, { env = env({ PRISN_SERVER = "http://h:7433/", PRISN_TOKEN = TOKEN_B }) })
      assert.same({ "env", "http://h:7433", TOKEN_B, false }, { r.name, r.address, r.token, r.is_local })
    end)

    it("refuses PRISN_SERVER without PRISN_TOKEN, with a hint", function()
      local err = raised(contexts.resolve, home, { env = env({ PRISN_SERVER = "http://h:1" }) })
      assert.equal("no_token", err.code)
      assert.equal("PRISN_SERVER is set but PRISN_TOKEN is not", err.message)
      assert.matches("PRISN_TOKEN=prisn_", err.hint, 1, true)
    end)

    it("refuses a PRISN_SERVER that is not an address", function()
      local err = raised(contexts.resolve, home, { env = env({ PRISN_SERVER = "h:1", PRISN_TOKEN = TOKEN_A }) })
      assert.equal("PRISN_SERVER: 'h:1' is not a server address", err.message)
    end)

    it("names an unknown context and lists the known ones", function()
      setup()
      local err = raised(contexts.resolve, home, { context = "prod", env = env({}) })
      assert.equal("unknown_context", err.code)
      assert.equal("unknown context 'prod'", err.message)
      assert.equal("known contexts: local, a, b (see 'prisn context list')", err.hint)
      err = raised(contexts.resolve, home, { env = env({ PRISN_CONTEXT = "prod" }) })
      assert.equal("unknown context 'prod'", err.message)
      assert.equal("PRISN_CONTEXT names it; known contexts: local, a, b (see 'prisn context list')", err.hint)
    end)

    it("says how to add one when only local exists", function()
      local err = raised(contexts.resolve, home, { context = "prod", env = env({}) })
      assert.equal("the only context is 'local'; add one with 'prisn context add NAME --server URL --token TOKEN'",
        err.hint)
    end)

    it("leaves the local token out when no server was set up", function()
      os.remove(home .. "/admin.token")
      local r = contexts.resolve(home, { env = env({}) })
      assert.same({ "local", true }, { r.name, r.is_local })
      assert.is_nil(r.token)
    end)
  end)

  describe("validation", function()
    local function message(fields, name)
      local err = raised(contexts.add, home, name or "x", fields)
      assert.equal(2, err.status)
      return err.message
    end
    local ok = { server = "http://127.0.0.1:7433", token = TOKEN_A }
    local function with(k, v)
      local t = { server = ok.server, token = ok.token }
      t[k] = v
      return t
    end

    it("checks names", function()
      assert.equal("'Prod' is not a context name", message(ok, "Prod"))
      assert.equal("'-x' is not a context name", message(ok, "-x"))
      assert.equal("'a b' is not a context name", message(ok, "a b"))
      assert.equal("'" .. string.rep("a", 64) .. "' is not a context name", message(ok, string.rep("a", 64)))
      for _, good in ipairs({ "prod", "eu-1.prod", "a_b", "0" }) do
        contexts.add(home, good, ok)
      end
    end)

    it("checks server addresses", function()
      assert.equal("'10.0.0.5:7433' is not a server address", message(with("server", "10.0.0.5:7433")))
      assert.equal("'http://h:99999' is not a server address", message(with("server", "http://h:99999")))
      assert.equal("https://h:1 speaks HTTPS and no CA fingerprint is given to check it with",
        message(with("server", "https://h:1")))
      assert.equal("'https://h:1#sha256=abc': the part after '#' is not a SHA-256 fingerprint",
        message(with("server", "https://h:1#sha256=abc")))
      assert.equal("the server address is empty", message(with("server", "")))
      assert.equal("the server address is empty", message({ token = TOKEN_A }))
      assert.equal("http://h:1", contexts.add(home, "a", with("server", "http://h:1/")).server)
      assert.equal("http://[::1]:7433", contexts.add(home, "a", with("server", "http://[::1]:7433")).server)
      assert.equal("unix:/run/prisn.sock", contexts.add(home, "a", with("server", "unix:/run/prisn.sock")).server)
    end)

    it("pins an https server's CA: given in the address, as a flag, or this machine's own", function()
      local fp = string.rep("ab", 32)
      local e = contexts.add(home, "a", with("server", "https://10.0.0.5:7433#sha256=" .. fp:upper()))
      assert.same({ "https://10.0.0.5:7433", fp }, { e.server, e.fingerprint })
      local f = contexts.add(home, "b", { server = "https://h:7433", token = TOKEN_A, fingerprint = fp })
      assert.equal(fp, f.fingerprint)
      assert.same({ fingerprint = fp }, contexts.resolve(home, { context = "b", env = env({}) }).tls)
      assert.equal("'xyz' is not a SHA-256 fingerprint",
        message({ server = "https://h:7433", token = TOKEN_A, fingerprint = "xyz" }))
      -- this machine's CA, when there is one
      local ca = require("prisn.net.tls").new_ca()
      write(home .. "/ca.crt", ca.cert)
      local own = require("prisn.net.tls").cert_info(ca.cert).fingerprint
      assert.equal(own, contexts.add(home, "c", with("server", "https://h:1")).fingerprint)
      local r = contexts.resolve(home, { env = env({ PRISN_SERVER = "https://h:1", PRISN_TOKEN = TOKEN_A }) })
      assert.same({ fingerprint = own }, r.tls)
      assert.is_nil(contexts.add(home, "d", ok).fingerprint) -- plain http pins nothing
    end)

    it("checks tokens without ever echoing them", function()
      assert.equal("the token does not start with 'prisn_'", message(with("token", "secret123")))
      assert.equal("the token is not a whole prisn token (prisn_ID_SECRET, no spaces or newlines)",
        message(with("token", "prisn_abc_def\nX-Evil: 1")))
      assert.equal("the token is empty", message(with("token", "")))
    end)

    it("checks namespaces", function()
      assert.equal("'NS' is not a namespace name", message(with("namespace", "NS")))
      assert.equal("'*' is not a namespace name", message(with("namespace", "*")))
      assert.equal("default", contexts.add(home, "a", ok).namespace)
    end)

    it("keeps local and env for themselves", function()
      assert.equal("the context 'local' is built in and cannot be overwritten", message(ok, "local"))
      assert.equal("the context name 'env' is reserved and cannot be overwritten", message(ok, "env"))
      assert.equal("the context 'local' is built in and cannot be deleted",
        raised(contexts.delete, home, "local").message)
    end)
  end)

  describe("the file", function()
    it("is written 0600, as JSON prisn reads back, also over a file that was too open", function()
      write(home .. "/contexts.json", '{"contexts":{}}')
      assert(uv.fs_chmod(home .. "/contexts.json", tonumber("644", 8)))
      contexts.add(home, "a", { server = "http://h:1", token = TOKEN_A, namespace = "ns-a" })
      assert.equal(tonumber("600", 8), uv.fs_stat(home .. "/contexts.json").mode & tonumber("777", 8))
      local data = require("cjson").decode(io.open(home .. "/contexts.json"):read("a"))
      assert.same({ current = require("cjson").null,
        contexts = { a = { server = "http://h:1", token = TOKEN_A, namespace = "ns-a" } } }, data)
      contexts.use(home, "a")
      assert.same({ current = "a", contexts = { a = { server = "http://h:1", token = TOKEN_A, namespace = "ns-a" } } },
        contexts.load(home))
      for _, e in ipairs(require("prisn.fs").list_dir(home)) do
        assert.is_nil(e.name:match("%.tmp$"), "left behind: " .. e.name)
      end
    end)

    it("refuses a file that is not what prisn writes, naming it", function()
      write(home .. "/contexts.json", "{ nope")
      local err = raised(contexts.load, home)
      assert.equal("bad_contexts", err.code)
      assert.equal(home .. "/contexts.json: not a JSON object", err.message)
      write(home .. "/contexts.json", '{"contexts":{"a":{"server":"http://h:1"}}}')
      assert.equal(home .. "/contexts.json: context 'a' needs a server and a token",
        raised(contexts.load, home).message)
    end)
  end)

  describe("use, delete, list, current", function()
    before_each(function()
      contexts.add(home, "b", { server = "http://h:2", token = TOKEN_B })
      contexts.add(home, "a", { server = "http://h:1", token = TOKEN_A, namespace = "ns-a" })
    end)

    it("switches, and deleting the current context makes local current again", function()
      assert.equal("local", contexts.current(home))
      contexts.use(home, "a")
      assert.equal("a", contexts.current(home))
      assert.is_false(contexts.delete(home, "b"))
      assert.equal("a", contexts.current(home))
      assert.is_true(contexts.delete(home, "a"))
      assert.equal("local", contexts.current(home))
      assert.equal(1, #contexts.list(home))
    end)

    it("refuses to use or delete an unknown context", function()
      assert.equal("unknown context 'c'", raised(contexts.use, home, "c").message)
      assert.equal("unknown context 'c'", raised(contexts.delete, home, "c").message)
    end)

    it("lists local first, then by name, marking the current one", function()
      contexts.use(home, "b")
      local rows = {}
      for i, c in ipairs(contexts.list(home)) do
        rows[i] = { c.name, c.server, c.namespace, c.current, c.builtin }
      end
      assert.same({
        { "local", "unix:" .. home .. "/prisn.sock", "default", false, true },
        { "a", "http://h:1", "ns-a", false, false },
        { "b", "http://h:2", "default", true, false },
      }, rows)
      contexts.use(home, "local")
      assert.is_true(contexts.list(home)[1].current)
    end)

    it("masks tokens to their first characters", function()
      assert.equal("prisn_06h1…", contexts.mask(TOKEN_A))
      assert.equal("prisn_…", contexts.mask("prisn_ab_cd12"))
      assert.is_nil(contexts.mask(nil))
    end)
  end)
end)
