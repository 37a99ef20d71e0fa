-- Built-in runner: Python 3. Output is unbuffered so it streams live into
-- prisn's log and terminal even when stdout is a pipe.
return {
  name = "python3",
  description = "Python 3 scripts",
  extensions = { ".py", ".pyw" },
  shebangs = { "python3[%d%.]*", "python" },
  interpreter = "python3",
  command = { "{interpreter}", "{script}", "{args}" },
  inline = { "{interpreter}", "-c", "{code}", "{args}" },
  env = { PYTHONUNBUFFERED = "1" },
  deps = "python",
  version = { "{interpreter}", "--version" },
  install_hint = "apt-get install python3 (or your distribution's python3 package)",
}
