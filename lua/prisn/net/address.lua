-- prisn.net.address: what the listeners (a deployment's port, the ingress)
-- and the CLI agree on about addresses: whether a text is an IP address, and
-- the message for a listen that failed, in the words a user acts on.
local M = {}

--- Whether host is an IPv4 address (four numbers up to 255) or looks like an
-- IPv6 one (hex digits, colons, dots).
function M.is_ip(host)
  if host:find(":", 1, true) then return host:match("^[%x:.]+$") ~= nil end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, x in ipairs({ a, b, c, d }) do
    if tonumber(x) > 255 then return false end
  end
  return true
end

--- The message for a bind or listen on host:port that failed with err/code.
function M.listen_error(host, port, err, code)
  if code == "EADDRINUSE" then return string.format("port %d is already in use", port) end
  if code == "EACCES" then
    return string.format("permission denied to listen on port %d (ports below 1024 need root"
      .. " or CAP_NET_BIND_SERVICE)", port)
  end
  if code == "EADDRNOTAVAIL" then return string.format("address %s is not available on this host", host) end
  return string.format("cannot listen on %s port %d: %s", host, port, tostring(err))
end

return M
