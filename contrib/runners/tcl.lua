-- An operator-written runner: Tcl scripts, run by tclsh.
--
-- Install it by copying this file to $PRISN_HOME/runners/tcl.lua (the file
-- name must be the runner's name), then check it and use it:
--
--   prisn runner check $PRISN_HOME/runners/tcl.lua
--   prisn run hello.tcl
--
-- This is the complete example of docs/RUNNERS.md.
return {
  name = "tcl",
  description = "Tcl scripts, run by tclsh",
  extensions = { ".tcl" },
  -- #!/usr/bin/tclsh, #!/usr/bin/env tclsh8.6 ...: patterns match the whole
  -- interpreter name.
  shebangs = { "tclsh[%d%.]*" },
  -- A bare name is looked up on PATH; an absolute path is used as is.
  interpreter = "tclsh",
  command = { "{interpreter}", "{script}", "{args}" },
  -- No `inline`: tclsh has no -c flag, so `prisn run --exec` refuses this
  -- runner instead of guessing.
  -- Tcl takes its system encoding from the locale: UTF-8 unless the caller's
  -- environment already sets LANG.
  env = { LANG = "C.UTF-8" },
  deps = "none",
  -- tclsh has no --version: ask it for its patch level through sh, which
  -- gets the interpreter's path as $0.
  version = { "/bin/sh", "-c", "echo 'puts [info patchlevel]' | \"$0\"", "{interpreter}" },
  install_hint = "apt-get install tcl",
  -- Lets scripts `package require` packages kept in a lib/ folder beside
  -- them, on top of whatever TCLLIBPATH the caller set.
  prepare = function(ctx)
    local lib = "{" .. ctx.script_dir .. "/lib}"
    local current = ctx.env.TCLLIBPATH
    ctx.env.TCLLIBPATH = current and (current .. " " .. lib) or lib
  end,
}
