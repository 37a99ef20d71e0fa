-- Built-in runner: Node.js. `--` after inline code keeps script flags away
-- from node's own option parser.
return {
  name = "node",
  description = "JavaScript run by Node.js",
  extensions = { ".js", ".mjs", ".cjs" },
  shebangs = { "node", "nodejs" },
  interpreter = "node",
  command = { "{interpreter}", "{script}", "{args}" },
  inline = { "{interpreter}", "-e", "{code}", "--", "{args}" },
  deps = "node",
  version = { "{interpreter}", "--version" },
  install_hint = "apt-get install nodejs (or install Node.js from https://nodejs.org)",
}
