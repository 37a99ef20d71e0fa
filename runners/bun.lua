-- Built-in runner: Bun. It claims no extension (node has .js, deno has .ts):
-- a script reaches it through its shebang (#!/usr/bin/env bun) or
-- --runner bun. An operator who wants .ts under bun writes a bun runner that
-- claims it; operator claims win over built-in ones.
return {
  name = "bun",
  description = "JavaScript and TypeScript run by Bun",
  extensions = {},
  shebangs = { "bun" },
  interpreter = "bun",
  command = { "{interpreter}", "run", "{script}", "{args}" },
  inline = { "{interpreter}", "-e", "{code}", "{args}" },
  deps = "none",
  version = { "{interpreter}", "--version" },
  install_hint = "curl -fsSL https://bun.sh/install | bash (see https://bun.sh)",
}
