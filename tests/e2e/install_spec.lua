-- `cmake --install`, as a packager runs it (DESTDIR, --prefix /usr): the
-- binary, the systemd unit naming it, the three shells' completion scripts
-- where each shell looks for them, and the manual page, which man renders
-- without a warning and finds by name.
local h = require("e2e.helper")

local build_dir = h.bin:match("^(.*)/[^/]*$")
local SHELL_PATH = "/usr/local/bin:/usr/bin:/bin"

local function which(program)
  local r = h.run("/bin/sh", { "-c", "command -v " .. program }, { env = { PATH = os.getenv("PATH") or SHELL_PATH } })
  return r.code == 0 and (r.stdout:gsub("%s+$", "")) or nil
end

describe("cmake --install", function()
  local dest, usr

  -- An environment for the installed prisn and the shells: nothing of the
  -- build tree on PATH, a home of its own.
  local function installed_env(extra)
    local home = h.tempdir("prisn-install-home")
    local env = h.env({ PATH = usr .. "/bin:" .. SHELL_PATH, HOME = home, TERM = "dumb", MANWIDTH = "80",
      XDG_CONFIG_HOME = home .. "/.config", XDG_DATA_HOME = home .. "/.local/share" })
    for k, v in pairs(extra or {}) do env[k] = v end
    return env
  end

  setup(function()
    local cmake = assert(which("cmake"), "cmake is needed to build prisn")
    dest = h.tempdir("prisn-destdir")
    usr = dest .. "/usr"
    local r = h.run(cmake, { "--install", build_dir, "--prefix", "/usr" },
      { env = { PATH = os.getenv("PATH"), DESTDIR = dest }, timeout_ms = 60000 })
    assert(r.code == 0, r.stdout .. r.stderr)
  end)

  teardown(h.cleanup)

  it("installs the binary, which runs", function()
    local r = h.run(usr .. "/bin/prisn", { "version", "-o", "json" }, { env = installed_env() })
    assert.equal(0, r.code, r.stderr)
    assert.matches('"version"', r.stdout)
  end)

  it("installs the systemd unit, starting the installed binary", function()
    local unit = assert(h.read(usr .. "/lib/systemd/system/prisn.service"), "no unit")
    assert.truthy(unit:find("\nExecStart=/usr/bin/prisn server start --foreground\n", 1, true), unit)
    assert.is_nil(unit:find("/usr/local/bin", 1, true))
  end)

  it("installs each shell's completion script, as `prisn completion SHELL` prints it", function()
    for shell, path in pairs({ bash = "/share/bash-completion/completions/prisn",
        zsh = "/share/zsh/site-functions/_prisn", fish = "/share/fish/vendor_completions.d/prisn.fish" }) do
      local want = h.prisn({ "completion", shell }).stdout
      assert.equal(want, h.read(usr .. path), shell)
    end
  end)

  it("installs prisn(1): man renders it without a warning, and finds it as 'man prisn'", function()
    local page = usr .. "/share/man/man1/prisn.1"
    assert.truthy(h.read(page), "no man page")
    local man = which("man")
    if not man then pending("man not installed (Debian package man-db)") return end
    local r = h.run(man, { "--warnings", "-l", page }, { env = installed_env() })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
    for _, needle in ipairs({ "NAME", "prisn - run any script", "SYNOPSIS", "prisn deploy SCRIPT|DIR",
        "prisn run [flags] [SCRIPT] [ARGS...]", "--include PATH", "EXIT STATUS", "PRISN_HOME" }) do
      assert.truthy(r.stdout:find(needle, 1, true), "the page lacks " .. needle)
    end
    -- Every visible command has its section.
    for line in h.prisn({ "help" }).stdout:match("\nCommands:\n(.-)\n\n"):gmatch("[^\n]+") do
      local name = line:match("^%s+(%S+)")
      assert.truthy(r.stdout:find("\n   prisn " .. name .. " ", 1, true), "no section for " .. name)
    end
    r = h.run(man, { "-w", "prisn" }, { env = installed_env({ MANPATH = usr .. "/share/man" }) })
    assert.equal(0, r.code, r.stderr)
    assert.equal(page .. "\n", r.stdout)
  end)

  it("is where bash-completion loads completions on demand", function()
    local package = "/usr/share/bash-completion/bash_completion"
    if not h.read(package) then pending("bash-completion not installed") return end
    local r = h.run("/bin/bash", { "--norc", "--noprofile", "-c",
      "source " .. package .. "; _completion_loader prisn; complete -p prisn" },
      { env = installed_env({ XDG_DATA_DIRS = usr .. "/share" }) })
    assert.equal(0, r.code, r.stderr)
    assert.equal("complete -F _prisn prisn\n", r.stdout)
  end)

  it("is on zsh's $fpath once the site-functions folder is", function()
    local zsh = which("zsh")
    if not zsh then pending("zsh not installed") return end
    local r = h.run(zsh, { "-f", "-c", "fpath=(" .. usr .. "/share/zsh/site-functions $fpath); "
      .. "autoload -Uz compinit && compinit -u -D && print -r -- $_comps[prisn]" }, { env = installed_env() })
    assert.equal(0, r.code, r.stderr)
    assert.equal("_prisn\n", r.stdout)
  end)

  it("is where fish autoloads vendor completions", function()
    local fish = which("fish")
    if not fish then pending("fish not installed") return end
    -- Not --no-config: fish builds its completion path in its own config.fish.
    local r = h.run(fish, { "-c", "complete -C 'prisn vers'" },
      { env = installed_env({ XDG_DATA_DIRS = usr .. "/share" }) })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^version\t", r.stdout)
  end)
end)
