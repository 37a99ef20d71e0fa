-- Built-in runner: PHP's command-line interpreter.
return {
  name = "php",
  description = "PHP scripts, run by the PHP CLI",
  extensions = { ".php" },
  shebangs = { "php[%d%.]*" },
  interpreter = "php",
  command = { "{interpreter}", "{script}", "{args}" },
  inline = { "{interpreter}", "-r", "{code}", "--", "{args}" },
  deps = "none",
  version = { "{interpreter}", "--version" },
  install_hint = "apt-get install php-cli",
}
