-- prisn.dataplane.zone: the names of prisn.local the DNS answers, kept per
-- deployment, and the lookup the responder (prisn.net.dns) calls.
--
-- The server builds each deployment's records (prisn.server.dns.records)
-- and puts them here, in its own process or, through the control protocol,
-- in the data plane's: the lookup is a table read either way. Names between
-- a record and the zone exist while a name below them does (empty
-- non-terminals answer NODATA, not NXDOMAIN), so they are counted.
local M = {}

local Zone = {}
Zone.__index = Zone

--- An empty zone `zone` ("prisn.local").
function M.new(zone)
  return setmetatable({ zone = zone, names = {}, parents = {}, by_key = {} }, Zone)
end

-- Counts (delta +1 or -1) the names between `name` and the zone.
function Zone:count_parents(name, delta)
  local parent = name:match("^[^.]+%.(.+)$")
  while parent and parent ~= self.zone and #parent > #self.zone do
    local n = (self.parents[parent] or 0) + delta
    self.parents[parent] = n > 0 and n or nil
    parent = parent:match("^[^.]+%.(.+)$")
  end
end

--- Replaces the records of `key` (a deployment, "ns/name") with `records`
-- (name -> list of { type, data }), or removes them when records is nil.
function Zone:set(key, records)
  for name in pairs(self.by_key[key] or {}) do
    self.names[name] = nil
    self:count_parents(name, -1)
  end
  self.by_key[key] = nil
  if records == nil then return end
  for name, list in pairs(records) do
    self.names[name] = list
    self:count_parents(name, 1)
  end
  self.by_key[key] = records
end

--- Every key's records: key -> records (what set was given).
function Zone:all()
  return self.by_key
end

--- The records of `name` (lower case), {} for a name that only has names
-- below it, nil for none.
function Zone:lookup(name)
  return self.names[name] or (self.parents[name] and {}) or nil
end

return M
