-- `prisn completion SHELL` prints a shell's completion script;
-- `prisn __complete -- WORDS... CURRENT` (hidden) is what those scripts call.
--
-- The scripts are thin: they pass the words before the cursor to
-- `__complete` and show what it prints, so every command, flag and value
-- completes from the one command tree (prisn.cli.complete) in every shell.
local errors = require("prisn.error")

local SHELLS = { "bash", "zsh", "fish", "powershell" }

local DESCRIPTION = [[
Prints a script that makes SHELL complete prisn's commands, flags and flag
values (and, for commands that know them, names such as deployments). The
script asks prisn itself what may come next, so it stays right as prisn is
upgraded; install it once.

bash (needs 'prisn' on $PATH; works with or without the bash-completion
package):
  prisn completion bash > /etc/bash_completion.d/prisn          (system-wide)
  prisn completion bash > ~/.local/share/bash-completion/completions/prisn
  or add to ~/.bashrc:  source <(prisn completion bash)

zsh: save it as _prisn in a directory on $fpath, then start a new shell:
  prisn completion zsh > "${fpath[1]}/_prisn"
  or add to ~/.zshrc, after 'autoload -Uz compinit && compinit':
  source <(prisn completion zsh)

fish:
  prisn completion fish > ~/.config/fish/completions/prisn.fish

PowerShell: add this line to your profile ($PROFILE):
  prisn completion powershell | Out-String | Invoke-Expression]]

local function print_script(ctx)
  local shell = ctx.args.SHELL
  for _, known in ipairs(SHELLS) do
    if shell == known then
      io.stdout:write(require("prisn.cli.completion." .. shell).script())
      return 0
    end
  end
  errors.usage(string.format("unknown shell '%s'", shell),
    "choose one of: " .. table.concat(SHELLS, ", "))
end

-- Runs while the user waits for a TAB: whatever goes wrong, the shell gets
-- ":default" (file names) and never an error in the middle of the line.
local function answer(ctx)
  local ok, text = pcall(function()
    return require("prisn.cli.complete").respond(nil, ctx.args.WORDS or {})
  end)
  io.stdout:write(ok and text or ":default\n")
  return 0
end

return {
  {
    name = "completion",
    summary = "Print the shell completion script for bash, zsh, fish or PowerShell",
    description = DESCRIPTION,
    args = {
      { name = "SHELL", summary = "The shell: bash, zsh, fish or powershell",
        required = true, complete = SHELLS },
    },
    examples = {
      { "prisn completion bash > /etc/bash_completion.d/prisn", "Install bash completion for everyone" },
      { "prisn completion zsh > \"${fpath[1]}/_prisn\"", "Install zsh completion" },
      { "prisn completion fish > ~/.config/fish/completions/prisn.fish", "Install fish completion" },
      { "prisn completion powershell | Out-String | Invoke-Expression",
        "Load PowerShell completion (put the line in $PROFILE)" },
    },
    handler = print_script,
  },
  {
    name = "__complete",
    summary = "Answer a shell's completion request (used by the completion scripts)",
    description = "Prints the candidates for the last word, one a line\n"
      .. "(\"value<TAB>description\"), then \":default\", \":file\", \":dir\" or \":none\".",
    args = {
      { name = "WORDS", summary = "The words after 'prisn', the last being the one to complete",
        rest = true },
    },
    hidden = true,
    handler = answer,
  },
}
