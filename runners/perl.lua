-- Built-in runner: Perl 5.
return {
  name = "perl",
  description = "Perl scripts",
  extensions = { ".pl" },
  shebangs = { "perl[%d%.]*" },
  interpreter = "perl",
  command = { "{interpreter}", "{script}", "{args}" },
  inline = { "{interpreter}", "-e", "{code}", "--", "{args}" },
  deps = "none",
  version = { "{interpreter}", "--version" },
  install_hint = "apt-get install perl",
}
