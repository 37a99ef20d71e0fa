-- Shell completion as a user installs it: the scripts `prisn completion SHELL`
-- prints, loaded into the real shells, completing through the real binary
-- (found on PATH as "prisn", as it will be once installed).
local h = require("e2e.helper")

local bin_dir = h.bin:match("^(.*)/[^/]*$")

-- Where a program is, or nil: the shells are optional on a developer's box.
local function which(program)
  local r = h.run("/bin/sh", { "-c", "command -v " .. program },
    { env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" } })
  if r.code ~= 0 then return nil end
  return (r.stdout:gsub("%s+$", ""))
end

-- An environment where "prisn" is the binary under test and the shells keep
-- their history and caches out of the real home.
local function shell_env()
  local home = h.tempdir("prisn-shell-home")
  return h.env({ PATH = bin_dir .. ":/usr/bin:/bin", HOME = home, XDG_CONFIG_HOME = home .. "/.config",
                 XDG_DATA_HOME = home .. "/.local/share", TERM = "dumb" })
end

local function script_file(shell, name)
  local r = h.prisn({ "completion", shell })
  assert.equal(0, r.code, r.stderr)
  assert.equal("", r.stderr)
  local path = h.tempdir("prisn-completion") .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(r.stdout)
  f:close()
  return path, r.stdout
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

local function sorted(list)
  table.sort(list)
  return list
end

describe("prisn __complete", function()
  after_each(h.cleanup)

  it("completes a command name, with its summary, then the directive", function()
    local r = h.prisn({ "__complete", "--", "vers" })
    assert.equal(0, r.code)
    assert.equal("", r.stderr)
    assert.matches("^version\t[^\n]+\n:none\n$", r.stdout)
  end)

  it("completes the values of -o for an empty word", function()
    local r = h.prisn({ "__complete", "--", "-o", "" })
    assert.equal(0, r.code)
    assert.equal("text\nwide\njson\nyaml\n:none\n", r.stdout)
  end)

  it("asks for file names after 'lua'", function()
    assert.equal(":file\n", h.prisn({ "__complete", "--", "lua", "" }).stdout)
  end)

  it("lists the commands, not itself, for an empty request", function()
    local r = h.prisn({ "__complete", "--", "" })
    assert.equal(0, r.code)
    assert.matches("\ncompletion\t", r.stdout)
    assert.is_nil(r.stdout:find("__complete", 1, true))
  end)

  it("is not listed in help", function()
    assert.is_nil(h.prisn({ "help" }).stdout:find("__complete", 1, true))
  end)
end)

describe("prisn completion", function()
  after_each(h.cleanup)

  it("rejects an unknown shell as a usage error naming the choices", function()
    local r = h.prisn({ "completion", "tcsh" })
    assert.equal(2, r.code)
    assert.equal("", r.stdout)
    assert.equal("Error: unknown shell 'tcsh'\nHint: choose one of: bash, zsh, fish, powershell\n", r.stderr)
  end)

  it("needs a shell", function()
    local r = h.prisn({ "completion" })
    assert.equal(2, r.code)
    assert.matches("Error: ", r.stderr)
  end)

  it("explains in its help how to install each script", function()
    local r = h.prisn({ "help", "completion" })
    assert.equal(0, r.code)
    for _, needle in ipairs({ "/etc/bash_completion.d/prisn", "_prisn", "$fpath",
        "~/.config/fish/completions/prisn.fish", "Out-String | Invoke-Expression", "$PROFILE" }) do
      assert.truthy(r.stdout:find(needle, 1, true), "help lacks " .. needle)
    end
  end)
end)

describe("bash completion", function()
  local script

  -- Calls _prisn the way bash does on TAB: COMP_WORDS as bash split the line
  -- (at '=' too), COMP_CWORD the last, COMP_LINE/COMP_POINT the line so far.
  -- `setup` runs before the script is sourced.
  local DRIVER = [[
eval "$SETUP"
source "$1"
COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
_prisn
printf '%s\n' "${COMPREPLY[@]}"
]]

  local function complete_bash(line, words, opts)
    opts = opts or {}
    local env = shell_env()
    env.SETUP = opts.setup or ""
    local args = { "--norc", "--noprofile", "-c", DRIVER, "bash", script, line }
    for _, w in ipairs(words) do args[#args + 1] = w end
    local r = h.run("/bin/bash", args, { env = env, cwd = opts.cwd })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
    return lines(r.stdout)
  end

  setup(function() script = script_file("bash", "prisn.bash") end)
  teardown(h.cleanup)

  it("registers _prisn for prisn", function()
    local _, text = script_file("bash", "again.bash")
    assert.truthy(text:find("\ncomplete -F _prisn prisn\n", 1, true))
  end)

  it("completes 'prisn vers' to 'version'", function()
    assert.same({ "version" }, complete_bash("prisn vers", { "prisn", "vers" }))
  end)

  it("completes 'prisn -o <TAB>' to the output formats", function()
    assert.same({ "json", "text", "wide", "yaml" }, sorted(complete_bash("prisn -o ", { "prisn", "-o", "" })))
  end)

  it("completes --output=j although bash splits the word at '='", function()
    assert.same({ "json" }, complete_bash("prisn --output=j", { "prisn", "--output", "=", "j" }))
    assert.same({ "json", "text", "wide", "yaml" },
      sorted(complete_bash("prisn --output=", { "prisn", "--output", "=" })))
  end)

  it("completes flags after the command", function()
    assert.same({ "--namespace", "--no-color" },
      sorted(complete_bash("prisn completion --n", { "prisn", "completion", "--n" })))
  end)

  it("falls back to file names where prisn asks for them", function()
    local dir = h.tempdir("prisn-cwd")
    assert(io.open(dir .. "/script.lua", "w")):close()
    assert.same({ "script.lua" }, complete_bash("prisn lua scr", { "prisn", "lua", "scr" }, { cwd = dir }))
  end)

  it("offers no file names where they make no sense", function()
    local dir = h.tempdir("prisn-cwd")
    assert(io.open(dir .. "/file", "w")):close()
    assert.same({}, complete_bash("prisn version ", { "prisn", "version", "" }, { cwd = dir }))
  end)

  it("uses bash-completion's _filedir when that package is loaded", function()
    local fake = [[_filedir() { COMPREPLY+=("_filedir:$cur:$*"); }]]
    assert.same({ "_filedir:scr:" }, complete_bash("prisn lua scr", { "prisn", "lua", "scr" }, { setup = fake }))
  end)

  it("works inside the real bash-completion package", function()
    local package = "/usr/share/bash-completion/bash_completion"
    if not io.open(package) then
      pending("bash-completion not installed")
      return
    end
    local setup = "source " .. package
    assert.same({ "version" }, complete_bash("prisn vers", { "prisn", "vers" }, { setup = setup }))
  end)
end)

describe("zsh completion", function()
  local zsh = which("zsh")

  it("passes zsh -n", function()
    if not zsh then pending("zsh not installed") return end
    local path = script_file("zsh", "_prisn")
    local r = h.run(zsh, { "-n", path }, { env = shell_env() })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
  end)

  it("starts with #compdef prisn", function()
    local _, text = script_file("zsh", "_prisn")
    assert.matches("^#compdef prisn\n", text)
  end)

  -- The completion system itself needs a terminal; here _describe, _files and
  -- compdef are stand-ins that print what the script hands them.
  it("hands zsh the candidates prisn gives", function()
    if not zsh then pending("zsh not installed") return end
    local path = script_file("zsh", "_prisn")
    local r = h.run(zsh, { "-f", "-c", [[
compdef() { print -r -- "compdef $*"; }
_describe() { print -rl -- "${(@P)4}"; }
_files() { print -r -- "_files $*"; }
source "$1"
words=(prisn vers); CURRENT=2; _prisn
words=(prisn -o ''); CURRENT=3; _prisn
words=(prisn lua ''); CURRENT=3; _prisn
]], "zsh", path }, { env = shell_env() })
    assert.equal(0, r.code, r.stderr)
    local got = lines(r.stdout)
    assert.equal("compdef _prisn prisn", got[1])
    assert.matches("^version:Show ", got[2])
    assert.same({ "text", "wide", "json", "yaml", "_files " }, { got[3], got[4], got[5], got[6], got[7] })
  end)
end)

describe("fish completion", function()
  local fish = which("fish")

  it("passes fish --no-execute", function()
    if not fish then pending("fish not installed") return end
    local path = script_file("fish", "prisn.fish")
    local r = h.run(fish, { "--no-execute", path }, { env = shell_env() })
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
  end)

  -- `complete -C LINE` runs fish's real completion for LINE.
  it("completes through fish's own completion machinery", function()
    if not fish then pending("fish not installed") return end
    local path = script_file("fish", "prisn.fish")
    local r = h.run(fish, { "--no-config", "-c", [[
source $argv[1]
complete -C 'prisn vers'
echo ==
complete -C 'prisn -o '
echo ==
complete -C 'prisn --output=y'
]], path }, { env = shell_env() })
    assert.equal(0, r.code, r.stderr)
    local got = lines(r.stdout)
    assert.matches("^version\tShow ", got[1])
    assert.same({ "==", "json", "text", "wide", "yaml", "==", "--output=yaml" },
      { got[2], got[3], got[4], got[5], got[6], got[7], got[8] })
  end)
end)

describe("PowerShell completion", function()
  it("registers a native completer that asks prisn __complete", function()
    local _, text = script_file("powershell", "prisn.ps1")
    assert.truthy(text:find("Register-ArgumentCompleter -Native -CommandName prisn", 1, true))
    assert.truthy(text:find("'__complete', '--'", 1, true))
    assert.truthy(text:find("CompletionResult]::new", 1, true))
  end)

  it("parses in pwsh", function()
    local pwsh = which("pwsh")
    if not pwsh then pending("pwsh not installed") return end
    local path = script_file("powershell", "prisn.ps1")
    local r = h.run(pwsh, { "-NoProfile", "-NonInteractive", "-Command", [[
$errors = $null
[void][System.Management.Automation.Language.Parser]::ParseFile(']] .. path .. [[', [ref]$null, [ref]$errors)
if ($errors.Count -gt 0) { $errors | ForEach-Object { [Console]::Error.WriteLine($_.ToString()) }; exit 1 }
]] }, { env = shell_env() })
    assert.equal(0, r.code, r.stderr)
  end)
end)
