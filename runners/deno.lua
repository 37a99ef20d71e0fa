-- Built-in runner: Deno, for TypeScript (.ts files are Deno's by default; bun
-- claims no extension). `deno run -A` grants every permission: prisn runs a
-- script the way `python3 script.py` would, with the rights of its user, and
-- limits come from prisn's own isolation, not from Deno's prompts. An
-- operator who wants Deno's sandbox writes a deno runner with narrower flags.
return {
  name = "deno",
  description = "TypeScript and JavaScript run by Deno (all permissions)",
  extensions = { ".ts", ".tsx", ".mts" },
  shebangs = { "deno" },
  interpreter = "deno",
  command = { "{interpreter}", "run", "-A", "{script}", "{args}" },
  inline = { "{interpreter}", "eval", "{code}", "{args}" },
  env = { DENO_NO_UPDATE_CHECK = "1" },
  deps = "none",
  version = { "{interpreter}", "--version" },
  install_hint = "curl -fsSL https://deno.land/install.sh | sh (see https://deno.com)",
}
