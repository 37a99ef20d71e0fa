-- Shell completion as a user installs it: the scripts `prisn completion SHELL`
-- prints, loaded into the real shells, completing through the real binary
-- (found on PATH as "prisn", as it will be once installed).
local h = require("e2e.helper")
local uv = require("luv")

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

-- The values prisn offers for -o, in its order: what every shell must show.
local function formats()
  local values = lines(h.prisn({ "__complete", "--", "-o", "" }).stdout)
  table.remove(values)
  return values
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
    local got = lines(r.stdout)
    assert.equal(":none", table.remove(got))
    local set = {}
    for _, v in ipairs(got) do
      assert.matches("^%l+$", v)
      set[v] = true
    end
    assert.is_true(set.text and set.json and set.yaml)
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
    assert.same(sorted(formats()), sorted(complete_bash("prisn -o ", { "prisn", "-o", "" })))
  end)

  it("completes --output=j although bash splits the word at '='", function()
    assert.same({ "json" }, complete_bash("prisn --output=j", { "prisn", "--output", "=", "j" }))
    assert.same(sorted(formats()), sorted(complete_bash("prisn --output=", { "prisn", "--output", "=" })))
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
words=(prisn vers); CURRENT=2; PREFIX=vers; _prisn
words=(prisn -o ''); CURRENT=3; PREFIX=; _prisn
words=(prisn lua ''); CURRENT=3; PREFIX=; _prisn
]], "zsh", path }, { env = shell_env() })
    assert.equal(0, r.code, r.stderr)
    local got = lines(r.stdout)
    assert.equal("compdef _prisn prisn", got[1])
    assert.matches("^version:Show ", got[2])
    local want = formats()
    want[#want + 1] = "_files "
    assert.same(want, { table.unpack(got, 3) })
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
    local want = sorted(formats())
    table.insert(want, 1, "==")
    want[#want + 1] = "=="
    want[#want + 1] = "--output=yaml"
    assert.same(want, { table.unpack(got, 2) })
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

-- The shells as a user has them: bash (with and without the bash-completion
-- package) and zsh run interactively in a pseudo-terminal (script(1)), with
-- keys typed into their line editor; a key bound to a capture function
-- writes the edited line to a file, so what TAB did is read back exactly.
-- TAB completes; ^Y inserts every candidate (readline's insert-completions,
-- zsh's _all_matches). fish answers `complete -C LINE` with the same
-- machinery its TAB uses. A server runs with deployment web in the default
-- namespace and api in namespace team-a, for the live names.
describe("completion in real shells", function()
  local script_bin, zsh, fish = which("script"), which("zsh"), which("fish")
  local env, work, scripts

  -- Whether the command tree declares the completer of `what`: "namespace"
  -- (the -n flag's) or a command's first argument's. Live names come from
  -- completers in the declarations; "scale" stands for all of a verb's.
  local function declares(what)
    local probe = work .. "/probe.lua"
    h.write(probe, [[
local root = require("prisn.cli").root()
local want = ...
if want == "namespace" then
  for _, f in ipairs(root.flags) do if f.name == "namespace" and f.complete then print("yes") end end
else
  for _, c in ipairs(root.subcommands) do
    if c.name == want and c.args and c.args[1] and type(c.args[1].complete) == "function" then print("yes") end
  end
end
]])
    return h.prisn({ "lua", probe, what }).stdout == "yes\n"
  end

  -- Starts `command` in a pseudo-terminal; once the shell's startup has
  -- written `ready`, types `keys` and "exit". Returns the lines captured in
  -- `out` and what the terminal showed (for failure messages).
  local function type_into(command, shell_env_, keys)
    local ready, out = work .. "/ready", work .. "/out"
    os.remove(ready)
    os.remove(out)
    local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
    local shown, exited = {}, false
    local env_list = {}
    for k, v in pairs(shell_env_) do env_list[#env_list + 1] = k .. "=" .. v end
    local handle
    handle = assert(uv.spawn(script_bin, { args = { "-qfec", command, "/dev/null" }, env = env_list,
      cwd = work, stdio = { stdin, stdout, stderr } }, function()
        exited = true
        handle:close()
      end))
    local function keep(_, data) if data then shown[#shown + 1] = data end end
    stdout:read_start(keep)
    stderr:read_start(keep)
    local function wait(pred, ms)
      local deadline = uv.now() + ms
      while not pred() and uv.now() < deadline do
        uv.run("nowait")
        uv.sleep(20)
        uv.update_time()
      end
      return pred()
    end
    local started = wait(function() return h.read(ready) ~= nil end, 15000)
    if started then stdin:write(keys .. "exit\r") end
    if not wait(function() return exited end, 30000) then handle:kill("sigkill") end
    wait(function() return exited end, 5000)
    for _, pipe in ipairs({ stdin, stdout, stderr }) do pipe:close() end
    uv.run("nowait")
    assert(started, "the shell did not start: " .. table.concat(shown))
    return lines(h.read(out) or ""), table.concat(shown)
  end

  -- Each of `typed` followed by the capture key (^T).
  local function keys_of(typed)
    local parts = {}
    for _, t in ipairs(typed) do parts[#parts + 1] = t .. "\20" end
    return table.concat(parts)
  end

  local function bash_lines(typed, with_package)
    local rc = work .. "/bashrc"
    h.write(rc, table.concat({
      "PS1='$ '",
      with_package and "source /usr/share/bash-completion/bash_completion" or "",
      "source " .. scripts.bash,
      [[_cap() { printf '[%s]\n' "$READLINE_LINE" >> out; READLINE_LINE=; READLINE_POINT=0; }]],
      [[bind -x '"\C-t": _cap']],
      [[bind '"\C-y": insert-completions']],
      "touch ready", "" }, "\n"))
    return type_into("bash --noprofile --rcfile " .. rc .. " -i", env, keys_of(typed))
  end

  local function zsh_lines(typed)
    h.write(work .. "/zdot/.zshrc", table.concat({
      "PS1='$ '",
      "fpath=(" .. scripts.zsh_dir .. " $fpath)",
      "autoload -Uz compinit && compinit -u -D",
      "zle -C all-matches complete-word _generic",
      "bindkey '^Y' all-matches",
      "zstyle ':completion:all-matches:*' completer _all_matches _complete",
      "zstyle ':completion:all-matches:*' insert true",
      [[_cap() { print -r -- "[$BUFFER]" >> out; BUFFER=; }]],
      "zle -N _cap", "bindkey '^T' _cap",
      "touch ready", "" }, "\n"))
    local zenv = {}
    for k, v in pairs(env) do zenv[k] = v end
    zenv.ZDOTDIR = work .. "/zdot"
    return type_into("zsh -i", zenv, keys_of(typed))
  end

  local function fish_complete(line)
    local r = h.run(fish, { "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", scripts.fish, line },
      { env = env, cwd = work })
    assert.equal(0, r.code, r.stderr)
    local values = {}
    for _, l in ipairs(lines(r.stdout)) do values[#values + 1] = l:match("^[^\t]*") end
    return values
  end

  -- What every shell must make of each line: { typed, bash/zsh line after, fish's candidates }.
  local STATIC = {
    { "prisn sc\t", "[prisn scale ]", { "scale" } },
    { "prisn -o \25", "(set in setup: every format)" },
    { "prisn get deploy -o y\t", "[prisn get deploy -o yaml ]", { "yaml" } },
    { "prisn --output=j\t", "[prisn --output=json ]", { "--output=json" } },
    { "prisn lua scr\t", "[prisn lua script.lua ]", { "script.lua" } },
    -- The shell's quoting is not part of the word prisn completes.
    { "prisn lua 'scr\t", "[prisn lua 'script.lua' ]", { "script.lua" } },
    -- zsh does not split the word at "=": it replaces all of it, quote included.
    { "prisn --output='j\t", "[prisn --output='json' ]", { "--output=json" }, zsh = "[prisn --output=json ]" },
  }
  local LIVE = {
    { "prisn scale w\t", "[prisn scale web ]", { "web" }, "scale" },
    { "prisn -n team-a scale a\t", "[prisn -n team-a scale api ]", { "api" }, "scale" },
    { "prisn get deploy -n te\t", "[prisn get deploy -n team-a ]", { "team-a" }, "namespace" },
    { "prisn scale \"w\t", "[prisn scale \"web\" ]", { "web" }, "scale" },
    { "prisn -n 'team-a' get deploy \25", "[prisn -n 'team-a' get deploy api ]", { "api" }, "scale" },
  }

  setup(function()
    work = h.tempdir("prisn-shells")
    STATIC[2][3] = sorted(formats())
    STATIC[2][2] = "[prisn -o " .. table.concat(STATIC[2][3], " ") .. " ]"
    local home = h.tempdir("prisn-shell-home")
    env = h.env({ PATH = bin_dir .. ":/usr/bin:/bin", HOME = home, XDG_CONFIG_HOME = home .. "/.config",
      XDG_DATA_HOME = home .. "/.local/share", TERM = "dumb", SHELL = "/bin/sh" })
    scripts = { bash = script_file("bash", "prisn.bash"), fish = script_file("fish", "prisn.fish") }
    scripts.zsh_dir = script_file("zsh", "_prisn"):match("^(.*)/")
    assert(io.open(work .. "/script.lua", "w")):close()
    assert(os.execute("mkdir -p '" .. work .. "/zdot'"))
    h.write(work .. "/svc.sh", "exec sleep 600\n")
    local function ok(args)
      local r = h.prisn(args, { env = env })
      assert(r.code == 0, table.concat(args, " ") .. ": " .. r.stderr)
    end
    ok({ "server", "start", "-q" })
    ok({ "deploy", work .. "/svc.sh", "--name", "web", "--isolation", "0", "-q" })
    ok({ "deploy", work .. "/svc.sh", "--name", "api", "-n", "team-a", "--isolation", "0", "-q" })
  end)

  teardown(function()
    h.teardown_server(env)
  end)

  -- Runs the cases through `complete_lines` (a shell), one session for all.
  local function check_line_editor(complete_lines, shell)
    local typed, want = {}, {}
    for _, case in ipairs(STATIC) do
      typed[#typed + 1], want[#want + 1] = case[1], case[shell] or case[2]
    end
    local live = {}
    for _, case in ipairs(LIVE) do
      if declares(case[4]) then
        typed[#typed + 1], want[#want + 1] = case[1], case[2]
      else
        live[#live + 1] = case[1]
      end
    end
    local got, shown = complete_lines(typed)
    assert.same(want, got, shown)
    return live
  end

  local function pending_live(missing)
    if #missing > 0 then
      pending("no completer declared on this build for: " .. table.concat(missing, ", "):gsub("\t", "<TAB>"))
    end
  end

  it("bash with the bash-completion package completes commands, values, files and live names", function()
    if not script_bin then pending("script(1) not installed (util-linux)") return end
    if not h.read("/usr/share/bash-completion/bash_completion") then pending("bash-completion not installed") return end
    pending_live(check_line_editor(function(typed) return bash_lines(typed, true) end))
  end)

  it("bash without the bash-completion package does the same", function()
    if not script_bin then pending("script(1) not installed (util-linux)") return end
    pending_live(check_line_editor(function(typed) return bash_lines(typed, false) end))
  end)

  it("zsh with compinit completes commands, values, files and live names", function()
    if not script_bin or not zsh then pending("zsh or script(1) not installed") return end
    pending_live(check_line_editor(zsh_lines, "zsh"))
  end)

  it("fish says nothing when prisn is not on PATH (an uninstalled prisn's script)", function()
    if not fish then pending("fish not installed") return end
    local bare = {}
    for k, v in pairs(env) do bare[k] = v end
    bare.PATH = "/usr/bin:/bin"
    local r = h.run(fish, { "--no-config", "-c", "source $argv[1]; complete -C 'prisn sc'", scripts.fish },
      { env = bare, cwd = work })
    assert.equal(0, r.code)
    assert.equal("", r.stderr)
    assert.equal("", r.stdout)
  end)

  it("fish completes commands, values, files and live names", function()
    if not fish then pending("fish not installed") return end
    local missing = {}
    for _, case in ipairs(STATIC) do
      assert.same(case[3], sorted(fish_complete((case[1]:gsub("[\t\25]$", "")))), case[1])
    end
    for _, case in ipairs(LIVE) do
      if declares(case[4]) then
        assert.same(case[3], fish_complete((case[1]:gsub("[\t\25]$", ""))), case[1])
      else
        missing[#missing + 1] = case[1]
      end
    end
    pending_live(missing)
  end)
end)
