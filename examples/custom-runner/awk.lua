-- An operator-written runner: awk programs, a language prisn does not ship
-- a runner for. Copy it to $PRISN_HOME/runners/awk.lua (the file name is the
-- runner's name); prisn reads that folder on every run. The format is in
-- docs/RUNNERS.md.
return {
  name = "awk",
  description = "awk programs, run by awk -f",
  extensions = { ".awk" },
  -- #!/usr/bin/awk -f, #!/usr/bin/env gawk, mawk ...
  shebangs = { "[gm]?awk" },
  interpreter = "awk",
  -- awk reads the program from -f; the script's arguments are its input files.
  command = { "{interpreter}", "-f", "{script}", "{args}" },
  inline = { "{interpreter}", "{code}", "{args}" },
  deps = "none",
  -- mawk says its version with -W version, gawk with --version: ask for the
  -- first line of either.
  version = { "/bin/sh", "-c", "\"$0\" -W version 2>/dev/null | head -n 1", "{interpreter}" },
  install_hint = "apt-get install gawk (or mawk)",
}
