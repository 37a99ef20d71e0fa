-- The release tooling, quickly: contrib/release.sh's refusals (usage, a dirty
-- tree, no CHANGELOG entry, failing tests) in a throwaway git repository, so
-- nothing is built; and contrib/smoke.sh against the binary under test. The
-- real release (four builds, arm64 under qemu) is contrib/release.sh itself,
-- never part of the suite.
local h = require("e2e.helper")

local function sh(script, opts)
  return h.run("/bin/sh", { "-c", script }, opts)
end

local function git_env(extra)
  local env = h.env({
    GIT_AUTHOR_NAME = "t", GIT_AUTHOR_EMAIL = "t@example.invalid",
    GIT_COMMITTER_NAME = "t", GIT_COMMITTER_EMAIL = "t@example.invalid",
  })
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- A repository with the release script, a CMakeLists.txt that holds the
-- version and a CHANGELOG.md with `entry` as its first section.
local function fake_repo(entry)
  local dir = h.tempdir("prisn-release")
  local script = table.concat({
    "set -e", "cd " .. dir, "git init -q .", "mkdir contrib",
    "cp " .. h.source_dir .. "/contrib/release.sh contrib/",
    "printf 'project(prisn VERSION 0.1.0 LANGUAGES C)\\n' > CMakeLists.txt",
    "printf '# Changelog\\n\\n## " .. entry .. "\\n\\n- a change\\n' > CHANGELOG.md",
    "git add -A", "git commit -q -m init",
  }, "\n")
  local r = sh(script, { env = git_env() })
  assert(r.code == 0, r.stderr)
  return dir
end

local function release(dir, args, extra_env)
  return h.run(dir .. "/contrib/release.sh", args, { env = git_env(extra_env), cwd = dir })
end

local function head_and_version(dir)
  local r = sh("cd " .. dir .. " && git rev-parse HEAD && cat CMakeLists.txt", { env = git_env() })
  return r.stdout
end

describe("contrib/release.sh", function()
  teardown(h.cleanup)

  it("needs one MAJOR.MINOR.PATCH version (usage error, exit 2)", function()
    local dir = fake_repo("1.2.3")
    local r = release(dir, {})
    assert.equal(2, r.code)
    assert.matches("Error: usage: contrib/release.sh VERSION", r.stderr, 1, true)
    r = release(dir, { "v1.2" })
    assert.equal(2, r.code)
    assert.matches("Error: version 'v1.2' is not MAJOR.MINOR.PATCH", r.stderr, 1, true)
  end)

  it("refuses a working tree with uncommitted changes, and changes nothing", function()
    local dir = fake_repo("1.2.3")
    local before = head_and_version(dir)
    assert.equal(0, sh("echo x > " .. dir .. "/stray.txt").code)
    local r = release(dir, { "1.2.3" }, { PRISN_RELEASE_TESTS = "true" })
    assert.equal(1, r.code)
    assert.matches("Error: the working tree has uncommitted changes\nHint: commit or stash them first",
      r.stderr, 1, true)
    assert.equal(before, head_and_version(dir))
  end)

  it("refuses a CHANGELOG.md without an entry for the version", function()
    local dir = fake_repo("Unreleased")
    local before = head_and_version(dir)
    local r = release(dir, { "1.2.3" }, { PRISN_RELEASE_TESTS = "true" })
    assert.equal(1, r.code)
    assert.matches("Error: CHANGELOG.md has no entry for 1.2.3\nHint: add a '## 1.2.3' section", r.stderr, 1, true)
    assert.equal(before, head_and_version(dir))
    -- "## 1.2.30" is not an entry for 1.2.3.
    dir = fake_repo("1.2.30")
    assert.equal(1, release(dir, { "1.2.3" }, { PRISN_RELEASE_TESTS = "true" }).code)
  end)

  it("refuses when the tests fail, before bumping the version", function()
    local dir = fake_repo("1.2.3 - 2026-12-07")
    local before = head_and_version(dir)
    local r = release(dir, { "1.2.3" }, { PRISN_RELEASE_TESTS = "echo some test failed; exit 1" })
    assert.equal(1, r.code)
    assert.matches("some test failed", r.stderr, 1, true)
    assert.matches("Error: the tests failed: no release", r.stderr, 1, true)
    assert.equal(before, head_and_version(dir))
    assert.matches("project(prisn VERSION 0.1.0 ", before, 1, true)
  end)
end)

describe("contrib/smoke.sh", function()
  teardown(h.cleanup)

  local info
  setup(function()
    local r = h.prisn({ "version", "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    info = require("cjson").decode(r.stdout)
  end)

  it("runs every step of the smoke test on the binary under test", function()
    local r = h.run(h.source_dir .. "/contrib/smoke.sh", { h.bin, info.version, info.target },
      { timeout_ms = 60000 })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    for _, step in ipairs({ "version names", "run a bash script", "run a Lua script", "lua with contrib/smoke.lua",
      "server start", "a detached job", "server stop" }) do
      assert.matches("ok       " .. step, r.stdout, 1, true)
    end
    assert.matches("7 passed, 0 failed", r.stdout, 1, true)
  end)

  it("fails when the binary is not the version asked for", function()
    local r = h.run(h.source_dir .. "/contrib/smoke.sh", { h.bin, "9.9.9", info.target }, { timeout_ms = 60000 })
    assert.equal(1, r.code)
    assert.matches("FAIL     version is 9.9.9", r.stdout, 1, true)
  end)
end)
