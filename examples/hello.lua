-- A first script for prisn: `build/prisn lua examples/hello.lua [NAME]`.
-- It runs in the Lua built into prisn, with prisn's own modules available.
local version = require("prisn.core.sys").version
local uv = require("luv")
local name = arg[1] or "world"
print(string.format("hello, %s, from prisn %s on libuv %s", name, version, uv.version_string()))
