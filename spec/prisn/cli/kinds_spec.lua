-- prisn.cli.kinds: one registry of the kinds the verbs act on, the words for
-- each, KIND/NAME, and the `[KIND] NAME` targets of restart and rollout.
local kinds = require("prisn.cli.kinds")
local cli = require("prisn.cli")

local function usage_error(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.equal("usage", err.code)
  assert.equal(2, err.status)
  return err
end

describe("prisn.cli.kinds", function()
  it("knows every word of every kind, kubectl's short names included", function()
    for word, name in pairs({ deploy = "deploy", deployment = "deploy", deployments = "deploy",
        cron = "cron", cronjob = "cron", cronjobs = "cron", job = "job", jobs = "job", instance = "instance",
        instances = "instance", inst = "instance", secret = "secret", secrets = "secret", token = "token",
        tokens = "token", node = "node", nodes = "node" }) do
      assert.equal(name, kinds.find(word).name, word)
    end
    assert.is_nil(kinds.find("pod"))
  end)

  it("splits KIND/NAME, and only for a known kind", function()
    local kind, name = kinds.split("deployments/web")
    assert.equal("deploy", kind.name)
    assert.equal("web", name)
    assert.equal("01kax/x", select(2, kinds.split("job/01kax/x")))
    assert.is_nil(kinds.split("pods/web"))
    assert.is_nil(kinds.split("web"))
    assert.is_nil(kinds.split("./app.py"))
  end)

  it("names a verb's subcommand for a kind with the kind's other words as aliases", function()
    local name, aliases = kinds.words("instance", "instances")
    assert.equal("instances", name)
    assert.same({ "instance", "inst" }, aliases)
  end)

  it("resolves [KIND] NAME targets, refusing other kinds with exit 2", function()
    local allowed = { "deploy" }
    for _, words in ipairs({ { "web" }, { "deploy/web" }, { "deploy", "web" }, { "deployments", "web" } }) do
      local kind, name = kinds.target("restart", words[1], words[2], allowed)
      assert.equal("deploy", kind.name)
      assert.equal("web", name)
    end
    assert.equal("prisn restart does not act on cron jobs",
      usage_error(function() kinds.target("restart", "cron/web", nil, allowed) end).message)
    assert.equal("'pods' is not a kind of object",
      usage_error(function() kinds.target("restart", "pods", "web", allowed) end).message)
    usage_error(function() kinds.target("restart", "deploy/web", "extra", allowed) end)
  end)

  it("is what the verbs use: get, describe and delete name each kind by its words", function()
    local root = cli.root()
    for _, verb in ipairs({ "get", "describe" }) do
      for _, kind in ipairs(kinds.KINDS) do
        for _, word in ipairs(kind.words) do
          assert.truthy(cli.find(cli.find(root, verb), word), verb .. " " .. word)
        end
      end
    end
    for _, kind in ipairs(kinds.KINDS) do
      assert.truthy(cli.find(cli.find(root, "delete"), kind.name), "delete " .. kind.name)
    end
  end)

  it("completes nothing, and does not raise, when no server answers", function()
    local ctx = { globals = { namespace = "default" }, args = {} }
    assert.same({}, kinds.live_names("deploy", "", ctx))
    assert.same({}, kinds.second_completer("TARGET")("", { args = { TARGET = "web" }, globals = {} }))
  end)

  it("always offers the default namespace after -n", function()
    local found = false
    for _, ns in ipairs(kinds.complete_namespace("")) do found = found or ns == "default" end
    assert.is_true(found)
    assert.same({}, kinds.complete_namespace("zzz-no-such"))
  end)
end)
