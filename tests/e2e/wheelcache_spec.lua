-- Cold Python environments from prisn's cache of unpacked wheels (issue
-- 17), with the real binary, python3 and pip, offline: the first
-- environment of a requirement set is built by pip and fills the cache; a
-- second environment of the same set (another script, another environment
-- key) is linked from it without pip, and works as pip's would (imports,
-- console scripts, importlib.metadata, pip list and uninstall). Whenever
-- the cache could be wrong (a damaged entry, a wheel rebuilt in the
-- find-links folder) pip builds it.
--
-- Whether pip ran is read from PIP_LOG, which pip appends to on every run,
-- and from the environment's marker (env.json: installer).
local h = require("e2e.helper")
local read, write = h.read, h.write
local cjson = require("cjson")
local uv = require("luv")
local wheels = require("e2e.wheels").build

local WIDGETS = { dist = "acme-widgets", version = "1.0", package = "widgets", value = "widgets 1.0",
  script = "widgets-cli" }

-- A script needing acme-widgets; `variant` makes its environment key differ
-- (a requires-python line) while what pip is asked stays the same.
local function script(dir, name, variant)
  local path = dir .. "/" .. name
  write(path, table.concat({
    "# /// script",
    variant and ("# requires-python = \">=3." .. variant .. "\"") or "#",
    "# dependencies = [\"acme-widgets\"]",
    "# ///",
    "import importlib.metadata as md, subprocess, widgets",
    "print(widgets.VALUE, md.version('acme-widgets'))",
    "print(subprocess.run(['widgets-cli'], capture_output=True, text=True, check=True).stdout.strip())",
  }, "\n") .. "\n")
  return path
end

local function setup()
  local scratch = h.tempdir("prisn-pip")
  local wheel_dir = wheels({ WIDGETS })
  local env = h.env({ PIP_NO_INDEX = "1", PIP_FIND_LINKS = wheel_dir, PIP_CONFIG_FILE = "/dev/null",
    PIP_CACHE_DIR = scratch .. "/cache", PIP_LOG = scratch .. "/pip.log" })
  return env, h.tempdir(), wheel_dir
end

local function pip_log_size(env)
  local st = uv.fs_stat(env.PIP_LOG)
  return st and st.size or 0
end

local function run(env, path)
  return h.prisn({ "run", path }, { env = env, timeout_ms = 60000 })
end

-- The environments of the home, by key: { path, marker }.
local function envs(env)
  local r = h.prisn({ "env", "list", "-o", "json" }, { env = env })
  assert.equal(0, r.code, r.stderr)
  local by_key = {}
  for _, e in ipairs(cjson.decode(r.stdout)) do
    by_key[e.key] = { path = e.path, marker = cjson.decode(read(e.path .. "/env.json")) }
  end
  return by_key
end

local function newest_env(env, not_key)
  for key, e in pairs(envs(env)) do
    if key ~= not_key then return e, key end
  end
end

-- The one cached copy of widgets/__init__.py.
local function cached_init(env)
  local root = env.PRISN_HOME .. "/wheels/shared"
  local scan = assert(uv.fs_scandir(root))
  while true do
    local name = uv.fs_scandir_next(scan)
    if not name then break end
    if name:match("^acme_widgets%-1%.0%-py3%-none%-any%-%x+$") then
      return root .. "/" .. name .. "/files/widgets/__init__.py"
    end
  end
  error("no cache entry for acme-widgets under " .. root)
end

local EXPECTED = "widgets 1.0 1.0\nwidgets 1.0\n"

describe("prisn run: cold environments from the wheel cache", function()
  after_each(h.cleanup)

  it("makes a second environment of the same set without pip, as pip would have", function()
    local env, dir = setup()
    local r = run(env, script(dir, "one.py"))
    assert.equal(0, r.code, r.stderr)
    assert.equal(EXPECTED, r.stdout)
    local first, first_key = newest_env(env)
    assert.equal("pip", first.marker.installer)
    assert.equal("cached", first.marker.wheel_cache)
    local logged = pip_log_size(env)
    assert.is_true(logged > 0, "pip wrote no log: PIP_LOG does not tell whether it ran")

    r = run(env, script(dir, "two.py", "8"))
    assert.equal(0, r.code, r.stderr)
    assert.equal(EXPECTED, r.stdout)
    local second = newest_env(env, first_key)
    assert.is_not_nil(second, "no second environment")
    assert.equal("prisn", second.marker.installer)
    assert.equal("linked", second.marker.wheel_cache)
    assert.equal(logged, pip_log_size(env), "pip ran for the second environment")

    -- The files are the cache's, read-only, shared by both environments.
    local site = second.path .. "/lib/python" .. first.marker.interpreter_version:match("^%d+%.%d+")
      .. "/site-packages"
    local st = uv.fs_stat(site .. "/widgets/__init__.py")
    assert.equal(uv.fs_stat(cached_init(env)).ino, st.ino)
    assert.equal(3, st.nlink)
    assert.equal(tonumber("444", 8), st.mode & tonumber("777", 8))
    assert.equal("prisn\n", read(site .. "/acme_widgets-1.0.dist-info/INSTALLER"))
    -- The venv (copied from a template) names its own folder, as venv would.
    assert.matches('VIRTUAL_ENV="' .. second.path .. '"', read(second.path .. "/bin/activate"), 1, true)
    assert.matches("(" .. second.marker.key .. ") ", read(second.path .. "/bin/activate"), 1, true)
    assert.matches("venv --without-pip " .. second.path .. "\n", read(second.path .. "/pyvenv.cfg"), 1, true)

    -- pip sees the distribution, and uninstalls it from this environment
    -- only (RECORD is right; the links go, the other copies stay).
    local pip = { env = { PATH = env.PATH, HOME = env.HOME, PIP_CONFIG_FILE = "/dev/null" } }
    local python = first.marker.interpreter
    local list = h.run(python, { "-m", "pip", "--python", second.path .. "/bin/python", "list", "--format", "json",
      "--disable-pip-version-check" }, pip)
    assert.equal(0, list.code, list.stderr)
    local versions = {}
    for _, d in ipairs(cjson.decode(list.stdout)) do versions[d.name] = d.version end
    assert.equal("1.0", versions["acme-widgets"])
    local un = h.run(python, { "-m", "pip", "--python", second.path .. "/bin/python", "uninstall", "-y",
      "acme-widgets", "--disable-pip-version-check" }, pip)
    assert.equal(0, un.code, un.stderr)
    assert.is_nil(uv.fs_stat(site .. "/widgets/__init__.py"))
    assert.is_nil(uv.fs_stat(second.path .. "/bin/widgets-cli"))
    assert.is_nil(uv.fs_stat(site .. "/acme_widgets-1.0.dist-info"))
    assert.equal("VALUE = 'widgets 1.0'\ndef main():\n    print(VALUE)\n", read(cached_init(env)))
    r = run(env, dir .. "/one.py")
    assert.equal(0, r.code, r.stderr)
    assert.equal(EXPECTED, r.stdout)
  end)

  it("goes back to pip when a cache entry was changed, and the environment is pip's", function()
    local env, dir = setup()
    local r = run(env, script(dir, "one.py"))
    assert.equal(0, r.code, r.stderr)
    local _, first_key = newest_env(env)
    local init = cached_init(env)
    uv.fs_chmod(init, tonumber("644", 8))
    write(init, "VALUE = 'planted'\ndef main():\n    print(VALUE)\n")
    local logged = pip_log_size(env)

    r = run(env, script(dir, "two.py", "8"))
    assert.equal(0, r.code, r.stderr)
    assert.equal(EXPECTED, r.stdout)
    local second, second_key = newest_env(env, first_key)
    assert.equal("pip", second.marker.installer)
    assert.matches("changed: widgets/__init__.py", second.marker.not_linked, 1, true)
    assert.is_true(pip_log_size(env) > logged, "pip did not run")

    -- pip's build put an intact entry back: the next one links again.
    logged = pip_log_size(env)
    r = run(env, script(dir, "three.py", "9"))
    assert.equal(0, r.code, r.stderr)
    assert.equal(EXPECTED, r.stdout)
    local by_key = envs(env)
    by_key[first_key], by_key[second_key] = nil, nil
    local _, third = next(by_key)
    assert.equal("prisn", third.marker.installer)
    assert.equal(logged, pip_log_size(env))
  end)

  it("goes back to pip when the wheel was rebuilt in the find-links folder", function()
    local env, dir, wheel_dir = setup()
    local r = run(env, script(dir, "one.py"))
    assert.equal(0, r.code, r.stderr)
    local _, first_key = newest_env(env)
    local rebuilt = {}
    for k, v in pairs(WIDGETS) do rebuilt[k] = v end
    rebuilt.value = "widgets 1.0 rebuilt"
    wheels({ rebuilt }, wheel_dir)
    local logged = pip_log_size(env)

    r = run(env, script(dir, "two.py", "8"))
    assert.equal(0, r.code, r.stderr)
    assert.equal("widgets 1.0 rebuilt 1.0\nwidgets 1.0 rebuilt\n", r.stdout)
    assert.equal("pip", newest_env(env, first_key).marker.installer)
    assert.is_true(pip_log_size(env) > logged, "pip did not run")
  end)
end)
