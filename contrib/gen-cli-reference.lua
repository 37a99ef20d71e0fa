-- Prints docs/CLI.md: build/prisn lua contrib/gen-cli-reference.lua > docs/CLI.md
local cli = require("prisn.cli")
io.stdout:write(require("prisn.cli.reference").markdown(cli.root()))
