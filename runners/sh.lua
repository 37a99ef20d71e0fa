-- Built-in runner: the POSIX shell. It claims no extension: a script reaches
-- it through its shebang (#!/bin/sh) or --runner sh. dash has no --version,
-- so the version check only proves the shell starts.
return {
  name = "sh",
  description = "POSIX shell scripts (#!/bin/sh)",
  extensions = {},
  shebangs = { "sh", "dash" },
  interpreter = "sh",
  command = { "{interpreter}", "{script}", "{args}" },
  inline = { "{interpreter}", "-c", "{code}", "sh", "{args}" },
  deps = "none",
  version = { "{interpreter}", "-c", "true" },
  install_hint = "apt-get install dash (any POSIX sh will do)",
}
