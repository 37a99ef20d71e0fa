-- prisn.ids: short, unique, time-sortable ids for jobs and other records.
--
-- An id is 12 characters of lower-case Crockford base32
-- ("0123456789abcdefghjkmnpqrstvwxyz": no i, l, o, u), 60 bits, big-endian:
--
--   bits 59..12  milliseconds since the Unix epoch (48 bits: good until 10889)
--   bits 11..0   random (12 bits)
--
--   e.g. "01kaxq3v2m7r"
--
-- The alphabet is in ASCII order and every id has the same length, so
-- comparing ids as strings compares their creation times: `ORDER BY id` is
-- creation order, and a prefix of an id names the jobs of a time range.
--
-- Within one process ids are strictly increasing: a second id in the same
-- millisecond (or after the clock stepped back) takes the previous id plus
-- one, and when the 12 random bits run out the millisecond part moves on by
-- one. Across processes, two ids made in the same millisecond collide with
-- probability 1/4096; callers that store ids under a unique key retry with a
-- fresh one (prisn.store.jobs does).
local clock = require("prisn.clock")
local crypto = require("prisn.core.crypto")

local M = {}

M.ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
M.LENGTH = 12
M.RANDOM_BITS = 12

local ALPHABET = M.ALPHABET
local RANDOM_MASK = (1 << M.RANDOM_BITS) - 1
local TIME_MAX = (1 << 48) - 1

local DIGITS = {}
for i = 1, #ALPHABET do DIGITS[ALPHABET:sub(i, i)] = i - 1 end

--- The 60-bit integer `n` as an id string.
function M.encode(n)
  local chars = {}
  for i = M.LENGTH, 1, -1 do
    local d = n & 31
    chars[i] = ALPHABET:sub(d + 1, d + 1)
    n = n >> 5
  end
  return table.concat(chars)
end

--- The 60-bit integer of `id`, or nil when it is not a well-formed id.
function M.decode(id)
  if type(id) ~= "string" or #id ~= M.LENGTH then return nil end
  local n = 0
  for i = 1, M.LENGTH do
    local d = DIGITS[id:sub(i, i)]
    if not d then return nil end
    n = (n << 5) | d
  end
  return n
end

--- True when `id` is a well-formed id.
function M.valid(id)
  return M.decode(id) ~= nil
end

--- True when `text` could start an id: 1 to 12 characters of the alphabet.
function M.valid_prefix(text)
  return type(text) == "string" and #text >= 1 and #text <= M.LENGTH
    and text:find("^[0-9a-hjkmnp-tv-z]+$") ~= nil
end

--- The creation time of `id` in milliseconds since the epoch, or nil.
function M.time_ms(id)
  local n = M.decode(id)
  return n and n >> M.RANDOM_BITS
end

local function random_bits()
  local b = crypto.random_bytes(2)
  return ((b:byte(1) << 8) | b:byte(2)) & RANDOM_MASK
end

--- A generator of increasing ids: a function returning a new id each call.
-- `deps` (for specs): `clock` () -> ms since the epoch, `random` () -> an
-- integer whose low 12 bits are used.
function M.generator(deps)
  deps = deps or {}
  local now_ms = deps.clock or clock.now_ms
  local random = deps.random or random_bits
  local last = -1
  return function()
    local n = (math.min(math.max(now_ms(), 0), TIME_MAX) << M.RANDOM_BITS) | (random() & RANDOM_MASK)
    if n <= last then n = last + 1 end
    last = n
    return M.encode(n)
  end
end

--- A new id from the process-wide generator.
M.new = M.generator()

return M
