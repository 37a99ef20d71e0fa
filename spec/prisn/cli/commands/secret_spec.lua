-- `prisn secret ...` against a fake prisn.client: what each command sends,
-- what it prints, and that values are never echoed except by get --reveal.
local uv = require("luv")
local cjson = require("cjson")
local cli = require("prisn.cli")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local output = require("prisn.output")
local parse = require("prisn.cli.parse")

local root = { name = "prisn", summary = "test root", flags = cli.GLOBAL_FLAGS,
  subcommands = require("prisn.cli.commands.secret") }

-- A stream that remembers what was written.
local function sink()
  local s = { text = "" }
  function s.write(self, ...)
    for _, part in ipairs({ ... }) do self.text = self.text .. tostring(part) end
    return self
  end
  function s.flush(self) return self end
  return s
end

describe("prisn secret", function()
  local requests, answer, stdout, stderr, saved, dir

  before_each(function()
    requests = {}
    answer = function() return {} end
    stdout, stderr = sink(), sink()
    saved = { client = package.loaded["prisn.client"], stderr = io.stderr,
      isatty = require("prisn.core.sys").isatty }
    package.loaded["prisn.client"] = {
      connect = function()
        return { request = function(_, method, path, body)
          requests[#requests + 1] = { method = method, path = path, body = body }
          return answer(method, path, body)
        end }
      end,
      namespace = function(ctx) return ctx.globals.namespace or "default" end,
    }
    io.stderr = stderr -- luacheck: ignore 122 (notes and prompts go to stderr)
    dir = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
  end)

  after_each(function()
    package.loaded["prisn.client"] = saved.client
    io.stderr = saved.stderr -- luacheck: ignore 122
    require("prisn.core.sys").isatty = saved.isatty
    fs.rm_rf(dir)
  end)

  -- Runs `prisn secret WORDS...`; returns the exit status or the error raised.
  local function run(...)
    local parsed = parse.parse(root, { "secret", ... })
    local ctx = { args = parsed.args, flags = parsed.flags, globals = parsed.globals,
      command = parsed.command, path = parsed.path }
    ctx.out = output.writer({ format = parsed.globals.output, stdout = stdout })
    local ok, result = pcall(parsed.command.handler, ctx)
    if not ok then
      assert.is_true(errors.is(result), "expected a prisn.error, got " .. tostring(result))
      return nil, result
    end
    return result
  end

  local function write(name, text)
    local path = dir .. "/" .. name
    assert(fs.write_atomic(path, text, tonumber("600", 8)))
    return path
  end

  local secret_answer = function(_, _, body)
    local keys = {}
    for k in pairs(body and body.data or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    return { namespace = "default", name = "db", keys = keys,
      created_at = "2026-11-26T18:46:00.000Z", updated_at = "2026-11-26T18:46:00.000Z" }
  end

  describe("set", function()
    it("sends words, files and env files as one PUT, printing only the keys", function()
      answer = secret_answer
      local env = write("prod.env", "# prod\nHOST=db.internal\nexport PORT='5432'\n")
      local pw = write("pw.txt", "hunter2\n")
      assert.equal(0, run("set", "db", "USER=app", "--from-file", "PASSWORD=" .. pw, "--from-env-file", env,
        "EMPTY="))
      assert.same({ { method = "PUT", path = "/api/v1/namespaces/default/secrets/db", body = {
        data = { USER = "app", PASSWORD = "hunter2\n", HOST = "db.internal", PORT = "5432", EMPTY = "" },
        merge = false,
      } } }, requests)
      assert.equal("secret 'db' set in namespace 'default' (keys: EMPTY, HOST, PASSWORD, PORT, USER)\n", stdout.text)
      assert.is_nil((stdout.text .. stderr.text):find("hunter2", 1, true))
    end)

    it("sends merge and the namespace", function()
      answer = secret_answer
      assert.equal(0, run("set", "db", "--merge", "A=1", "-n", "prod"))
      assert.equal("/api/v1/namespaces/prod/secrets/db", requests[1].path)
      assert.is_true(requests[1].body.merge)
    end)

    it("prints the server's answer as JSON with -o json", function()
      answer = secret_answer
      assert.equal(0, run("set", "db", "A=hunter2", "-o", "json"))
      local shown = cjson.decode(stdout.text)
      assert.same({ "A" }, shown.keys)
      assert.is_nil(stdout.text:find("hunter2", 1, true))
    end)

    it("refuses bad input before any request, never echoing a value", function()
      local cases = {
        { { "set", "db", "hunter2" }, "argument 1 after the name is not KEY=VALUE" },
        { { "set", "db", "A=1", "1BAD=hunter2" },
          "argument 2 after the name: invalid key \"1BAD\": use letters, digits and '_', not starting with a digit" },
        { { "set", "db", "A=hunter2", "A=hunter3" },
          "key A is given twice (argument 1 after the name and argument 2 after the name)" },
        { { "set", "db" }, "give at least one KEY=VALUE, --from-file KEY=PATH or --from-env-file FILE" },
        { { "set", "Bad_Name", "A=hunter2" },
          "invalid secret name \"Bad_Name\": use 1 to 63 lower-case letters, digits and '-', starting with "
          .. "a letter or digit" },
        { { "set", "db", "--from-file", "A" }, "--from-file #1 is not KEY=VALUE" },
        { { "set", "db", "--from-file", "A=" }, "--from-file A= needs a path" },
      }
      for _, case in ipairs(cases) do
        local status, err = run(table.unpack(case[1]))
        assert.is_nil(status)
        assert.equal("usage", err.code)
        assert.equal(case[2], err.message)
        assert.is_nil(tostring(err):find("hunter", 1, true))
      end
      assert.same({}, requests)
    end)

    it("names a missing file and a bad env-file line without their content", function()
      local _, err = run("set", "db", "--from-file", "A=" .. dir .. "/missing")
      assert.equal("--from-file A: cannot read " .. dir .. "/missing: No such file or directory", err.message)
      local env = write("bad.env", "GOOD=1\nhunter2\n")
      _, err = run("set", "db", "--from-env-file", env)
      assert.equal("line 2 of " .. env .. ": not KEY=VALUE", err.message)
      assert.same({}, requests)
    end)

    it("checks value sizes before sending", function()
      local big = write("big", ("x"):rep(65537))
      local _, err = run("set", "db", "--from-file", "BIG=" .. big)
      assert.equal("invalid", err.code)
      assert.equal("the value of the secret.BIG is 65537 bytes; the limit is 65536 (64 KiB)", err.message)
    end)
  end)

  describe("list", function()
    it("shows names and keys", function()
      answer = function()
        return { items = {
          { namespace = "default", name = "api", keys = { "KEY" }, updated_at = "2026-11-26T18:46:00.000Z" },
          { namespace = "default", name = "db", keys = { "PASSWORD", "USER" },
            updated_at = "2026-11-26T18:47:00.000Z" },
        } }
      end
      assert.equal(0, run("list"))
      assert.same({ { method = "GET", path = "/api/v1/namespaces/default/secrets" } }, requests)
      assert.equal("NAME   KEYS            UPDATED\n"
        .. "api    KEY             2026-11-26T18:46:00.000Z\n"
        .. "db     PASSWORD,USER   2026-11-26T18:47:00.000Z\n", stdout.text)
    end)

    it("says when there are none, and gives [] as JSON", function()
      answer = function() return { items = {} } end
      assert.equal(0, run("list", "-n", "prod"))
      assert.equal("No secrets in namespace 'prod'. Create one with 'prisn secret set NAME KEY=VALUE'.\n", stdout.text)
      stdout.text = ""
      assert.equal(0, run("list", "-o", "json"))
      assert.equal("[]", (stdout.text:gsub("%s", "")))
    end)
  end)

  describe("get", function()
    it("asks for masked values, or revealed ones with --reveal", function()
      answer = function(_, path)
        local revealed = path:find("reveal=1", 1, true)
        return { namespace = "default", name = "db", keys = { "PASSWORD" },
          data = { PASSWORD = revealed and "hunter2" or "****" },
          created_at = "2026-11-26T18:46:00.000Z", updated_at = "2026-11-26T18:46:00.000Z" }
      end
      assert.equal(0, run("get", "db"))
      assert.equal("/api/v1/namespaces/default/secrets/db", requests[1].path)
      assert.matches("\n  PASSWORD:%s+%*%*%*%*\n", stdout.text)
      assert.is_nil(stdout.text:find("hunter2", 1, true))
      stdout.text = ""
      assert.equal(0, run("get", "db", "--reveal", "-o", "json"))
      assert.equal("/api/v1/namespaces/default/secrets/db?reveal=1", requests[2].path)
      assert.equal("hunter2", cjson.decode(stdout.text).data.PASSWORD)
    end)
  end)

  describe("delete", function()
    it("deletes with --yes", function()
      answer = function() return { namespace = "default", name = "db", deleted = true } end
      assert.equal(0, run("delete", "db", "--yes"))
      assert.same({ { method = "DELETE", path = "/api/v1/namespaces/default/secrets/db" } }, requests)
      assert.equal("secret 'db' deleted from namespace 'default'\n", stdout.text)
    end)

    it("refuses without --yes when there is no terminal to ask on", function()
      require("prisn.core.sys").isatty = function() return false end
      local _, err = run("delete", "db")
      assert.equal("usage", err.code)
      assert.equal("refusing to delete secret 'db' without --yes: there is no terminal to confirm on", err.message)
      assert.same({}, requests)
    end)
  end)

  describe("rotate-key", function()
    it("posts and reports the key ids, reminding to back up the key", function()
      answer = function() return { old_key_id = "a9c0ff9f", key_id = "9c26ec69", reencrypted = 3 } end
      assert.equal(0, run("rotate-key"))
      assert.same({ { method = "POST", path = "/api/v1/secrets/rotate-key" } }, requests)
      assert.equal("master key rotated: a9c0ff9f -> 9c26ec69; 3 secrets re-encrypted\n", stdout.text)
      assert.matches("back up the server's master.key", stderr.text, 1, true)
    end)
  end)

  it("declares valid commands, each with an example", function()
    local declaration = require("prisn.cli.declaration")
    for _, cmd in ipairs(require("prisn.cli.commands.secret")) do
      assert.same({ true }, { declaration.check(cmd) })
    end
  end)
end)
