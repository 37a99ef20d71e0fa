-- Built-in runner: Ruby.
return {
  name = "ruby",
  description = "Ruby scripts",
  extensions = { ".rb" },
  shebangs = { "ruby[%d%.]*" },
  interpreter = "ruby",
  command = { "{interpreter}", "{script}", "{args}" },
  inline = { "{interpreter}", "-e", "{code}", "--", "{args}" },
  deps = "none",
  version = { "{interpreter}", "--version" },
  install_hint = "apt-get install ruby",
}
