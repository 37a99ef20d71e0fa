-- prisn.secrets: the name, key and value rules with messages that name the
-- field and never the value; associated data; masking (env files: envfile_spec).
local rules = require("prisn.secrets")
local raised = require("support").raised

describe("prisn.secrets", function()
  describe("names", function()
    it("accepts lower-case names of 1 to 63 characters", function()
      for _, name in ipairs({ "db", "a", "0", "api-keys", "x1-", ("a"):rep(63) }) do
        assert.is_true(rules.valid_name(name), name)
        assert.equal(name, rules.check_name(name))
      end
    end)

    it("refuses anything else with an 'invalid' error naming the field", function()
      for _, name in ipairs({ "", "-db", "DB", "d_b", "d.b", "d/b", "d b", ("a"):rep(64), "db\0" }) do
        assert.is_false(rules.valid_name(name), name)
        local err = raised(rules.check_name, name)
        assert.equal("invalid", err.code)
        assert.equal(422, err.http_status)
        assert.equal("name", err.field)
      end
      assert.equal("invalid secret name \"Bad_Name\": use 1 to 63 lower-case letters, digits and '-', "
        .. "starting with a letter or digit", raised(rules.check_name, "Bad_Name").message)
      assert.equal("invalid secret name (nil): use 1 to 63 lower-case letters, digits and '-', "
        .. "starting with a letter or digit", raised(rules.check_name, nil).message)
    end)
  end)

  describe("values", function()
    it("accepts environment variable names and string values up to 64 KiB", function()
      local values = { DB_PASSWORD = "x", _private = "", a1 = ("v"):rep(65536) }
      assert.equal(values, rules.check_values(values))
    end)

    it("names a bad key in the message and the field", function()
      local err = raised(rules.check_values, { ["1X"] = "v" })
      assert.equal("invalid", err.code)
      assert.equal("data.1X", err.field)
      assert.equal("invalid key \"1X\" in data: use letters, digits and '_', not starting with a digit", err.message)
      assert.equal("data.A-B", raised(rules.check_values, { ["A-B"] = "v" }).field)
    end)

    it("never shows what follows '=' in a bad key, which may be a value", function()
      local err = raised(rules.check_values, { ["PASSWORD=hunter2"] = "v" })
      assert.equal("invalid key \"PASSWORD\" in data: use letters, digits and '_', not starting with a digit",
        err.message)
      assert.is_nil(tostring(err):find("hunter2", 1, true))
    end)

    it("names the field of a value that is too long, not a string or holds NUL, never the value", function()
      local err = raised(rules.check_values, { TOKEN = "s3cr3t" .. ("x"):rep(65536) })
      assert.equal("data.TOKEN", err.field)
      assert.equal("the value of data.TOKEN is 65542 bytes; the limit is 65536 (64 KiB)", err.message)
      err = raised(rules.check_values, { PORT = 5432 })
      assert.equal("the value of data.PORT must be a string, not number", err.message)
      err = raised(rules.check_values, { PORT = require("cjson").null })
      assert.equal("the value of data.PORT must be a string, not null", err.message)
      err = raised(rules.check_values, { PASSWORD = "s3cr3t\0tail" })
      assert.equal("the value of data.PASSWORD contains a NUL byte, which an environment variable cannot hold",
        err.message)
      assert.is_nil(err.message:find("s3cr3t", 1, true))
    end)

    it("needs an object with at least one key and at most 256", function()
      assert.equal("data needs at least one KEY: value pair", raised(rules.check_values, {}).message)
      assert.equal("data must be an object of KEY: value pairs", raised(rules.check_values, { "a" }).message)
      assert.equal("data must be an object of KEY: value pairs", raised(rules.check_values, "A=b").message)
      local many = {}
      for i = 1, 257 do many["K" .. i] = "v" end
      assert.equal("data has 257 keys; the limit is 256", raised(rules.check_values, many).message)
      assert.equal("the secret needs at least one KEY: value pair",
        raised(rules.check_values, {}, "the secret").message)
    end)
  end)

  it("binds ciphertexts to namespace and name through the associated data", function()
    assert.equal("prisn-secret\0default\0db", rules.associated_data("default", "db"))
    assert.are_not.equal(rules.associated_data("a", "b-c"), rules.associated_data("a-b", "c"))
  end)

  it("masks every value as ****", function()
    assert.same({ A = "****", B = "****" }, rules.masked({ "A", "B" }))
    assert.same({ "A", "B", "C" }, rules.key_names({ C = "1", A = "2", B = "3" }))
  end)
end)
