-- Built-in runner: bash. It claims .sh as well as .bash because most .sh
-- files are written for bash; a .sh file whose shebang says /bin/sh goes to
-- the sh runner instead (the shebang is consulted before the extension).
return {
  name = "bash",
  description = "Shell scripts run by bash",
  extensions = { ".sh", ".bash" },
  shebangs = { "bash" },
  interpreter = "bash",
  command = { "{interpreter}", "{script}", "{args}" },
  -- bash -c CODE NAME ARGS...: NAME becomes $0, ARGS $1...
  inline = { "{interpreter}", "-c", "{code}", "bash", "{args}" },
  deps = "none",
  version = { "{interpreter}", "--version" },
  install_hint = "apt-get install bash",
}
