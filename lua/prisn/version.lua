-- prisn.version: what this binary is and what it was built with. Used by
-- `prisn version` and the API's /version.
local sys = require("prisn.core.sys")
local uv = require("luv")
local store = require("prisn.core.store")
local crypto = require("prisn.core.crypto")

local M = {}

--- The version record; field names are part of the JSON/YAML interface.
function M.info()
  local uname = uv.os_uname()
  return {
    version = sys.version,
    commit = sys.commit,
    build_date = sys.build_date,
    target = sys.target,
    linkage = sys.linkage,
    lua = sys.lua_version,
    libuv = uv.version_string(),
    sqlite = store.version(),
    libsodium = crypto.version(),
    os = uname.sysname:lower(),
    arch = uname.machine,
  }
end

return M
