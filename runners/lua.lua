-- Built-in runner: Lua 5.4, run by prisn itself (`prisn lua FILE ARGS...`) in
-- a fresh child process, so .lua scripts work where no Lua is installed and
-- can require prisn's modules. Inline code needs `prisn lua -e CODE`.
return {
  name = "lua",
  description = "Lua 5.4 scripts, run by prisn's own Lua",
  extensions = { ".lua" },
  shebangs = { "lua", "lua5%.4" },
  interpreter = "@prisn",
  command = { "{interpreter}", "lua", "{script}", "{args}" },
  inline = { "{interpreter}", "lua", "-e", "{code}", "{args}" },
  deps = "none",
  version = { "{interpreter}", "version" },
  install_hint = "nothing to install: Lua 5.4 is built into prisn",
}
