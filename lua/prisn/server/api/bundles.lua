-- Bundles: /api/v1/bundles/{hash}. A script's folder packed by prisn.bundle,
-- stored unpacked under $PRISN_HOME/bundles/<hash>/ and addressed by the
-- hash of its bytes, so uploading the same folder twice is a no-op.
local uv = require("luv")
local api = require("prisn.server.api")
local bundle = require("prisn.bundle")
local fs = require("prisn.fs")

-- A bundle that cannot be written (nothing of it is kept): 507 for a full
-- disk, 500 otherwise. The message has no server path.
local function cannot_store(code, err)
  local full = code == "ENOSPC" or code == "EDQUOT"
  api.fail(full and 507 or 500, full and "insufficient_storage" or (code or "EIO"),
    "cannot store the bundle: " .. (full and "the disk is full (" .. code .. ")"
      or tostring(err):gsub("/[^%s:]*/", "")), full and api.STORAGE_HINT or "see the server log")
end

local function exists(dir)
  local st = dir and uv.fs_stat(dir)
  return st and st.type == "directory"
end

return {
  { method = "GET", pattern = "/api/v1/bundles/{hash}", auth = "view", handler = function(req)
    local dir = bundle.dir(req.server.home, req.params.hash)
    if not exists(dir) then api.fail(404, "not_found", "no bundle " .. req.params.hash) end
    return 200, { hash = req.params.hash:lower() }
  end },
  { method = "PUT", pattern = "/api/v1/bundles/{hash}", auth = "edit", handler = function(req)
    local dir = bundle.dir(req.server.home, req.params.hash)
    if not dir then api.fail(400, "bad_request", "a bundle hash is 64 hex digits") end
    if exists(dir) then return 200, { hash = req.params.hash:lower(), created = false } end
    if bundle.hash(req.body or "") ~= req.params.hash:lower() then
      api.fail(422, "invalid", "the body does not match the bundle hash in the path",
        "upload exactly the bytes prisn.bundle packed, to /api/v1/bundles/<their hash>")
    end
    local tmp = string.format("%s.tmp-%d", dir, uv.os_getpid())
    fs.rm_rf(tmp)
    local n, err, code = bundle.unpack(req.body, tmp)
    if not n then
      fs.rm_rf(tmp)
      if code then cannot_store(code, err) end
      api.fail(422, "invalid", "bad bundle: " .. tostring(err))
    end
    local ok, rerr, rcode = uv.fs_rename(tmp, dir)
    if not ok then
      fs.rm_rf(tmp)
      if not exists(dir) then cannot_store(rcode, rerr) end
    end
    if req.server.events then
      req.server.events:record({ actor = req.actor, action = "bundle.uploaded",
        object = "bundle/" .. req.params.hash:lower(), message = string.format("%d files", n) })
    end
    return 201, { hash = req.params.hash:lower(), created = true, files = n }
  end },
}
