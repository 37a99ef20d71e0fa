-- prisn.metrics: a small Prometheus client — counters, gauges, histograms,
-- values computed at scrape time, and the text exposition format 0.0.4
-- that /metrics serves and `promtool check metrics` accepts.
--
--   local metrics = require("prisn.metrics")
--   local reg = metrics.registry()
--   local requests = reg:counter("prisn_api_requests_total", "API requests.", { "route", "code" })
--   requests:labels("/api/v1/namespaces/{ns}/jobs", 200):inc()
--   local depth = reg:gauge("prisn_queue_depth", "Jobs waiting.")
--   depth:set(3)                       -- an unlabeled family is its own child
--   reg:render()                       -- the exposition text
--
-- A family's children are made on first use of their label values and
-- cached, so the hot path is a few table lookups. Label values must come
-- from a small, fixed set (a route's pattern, never its path; a status code,
-- never a job id): every distinct combination is a series kept forever.
--
-- Families are rendered in registration order, children in creation order;
-- a family with no series yet (a labeled one never used, a function that
-- returned nil) is left out. Numbers are written so Prometheus reads back
-- the same value: integers plainly, other floats in the shortest form that
-- round-trips (as Go's strconv does, %.17g at most), +Inf, -Inf and NaN.
--
-- Not here: summaries, timestamps, exemplars, OpenMetrics. Misuse (a bad
-- name, the wrong number of label values, a counter going down) raises.
local process = require("prisn.metrics.process")
local prisn = require("prisn.metrics.prisn")

local M = {}

M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
M.DEFAULT_BUCKETS = { .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 }

local INF = math.huge
local format, concat, mtype = string.format, table.concat, math.type

-- Text ----------------------------------------------------------------------

--- A number as the exposition format writes it.
function M.format_number(v)
  if mtype(v) == "integer" then return format("%d", v) end
  if v ~= v then return "NaN" end
  if v == INF then return "+Inf" end
  if v == -INF then return "-Inf" end
  if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", math.tointeger(v)) end
  local s = format("%.15g", v)
  if tonumber(s) ~= v then
    s = format("%.16g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
  end
  return s
end
local format_number = M.format_number

local LABEL_ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }
local HELP_ESCAPES = { ["\\"] = "\\\\", ["\n"] = "\\n" }

--- A label value escaped for the inside of "...".
function M.escape_label_value(v)
  return (v:gsub('[\\"\n]', LABEL_ESCAPES))
end

local function escape_help(text)
  return (text:gsub("[\\\n]", HELP_ESCAPES))
end

-- Prometheus wants UTF-8: invalid bytes become U+FFFD.
local function valid_utf8(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local ok, cp = pcall(utf8.codepoint, s, i)
    if ok then
      local c = utf8.char(cp)
      out[#out + 1] = c
      i = i + #c
    else
      out[#out + 1] = "\u{FFFD}"
      i = i + 1
    end
  end
  return concat(out)
end

-- Names ----------------------------------------------------------------------

local function check_name(name, level)
  if type(name) ~= "string" or not name:match("^[a-zA-Z_:][a-zA-Z0-9_:]*$") then
    error(format("metrics: bad metric name %q: use [a-zA-Z_:][a-zA-Z0-9_:]*", tostring(name)), level + 1)
  end
end

local function check_label_name(name, family, level)
  if type(name) ~= "string" or not name:match("^[a-zA-Z_][a-zA-Z0-9_]*$") or name:sub(1, 2) == "__" then
    error(format("metrics: %s: bad label name %q: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with __",
      family, tostring(name)), level + 1)
  end
end

local function check_label_names(names, family, reserved, level)
  names = names or {}
  if type(names) ~= "table" then error("metrics: " .. family .. ": label names must be a list", level + 1) end
  local seen, copy = {}, {}
  for i, n in ipairs(names) do
    check_label_name(n, family, level + 1)
    if seen[n] then error(format("metrics: %s: duplicate label name %q", family, n), level + 1) end
    if n == reserved then error(format("metrics: %s: the label name %q is reserved", family, n), level + 1) end
    seen[n] = true
    copy[i] = n
  end
  return copy
end

-- A label value as text: strings (made valid UTF-8) and numbers.
local function label_text(v, family, level)
  local t = type(v)
  if t == "string" then return valid_utf8(v) end
  if t == "number" then return format_number(v) end
  error(format("metrics: %s: a label value must be a string or a number, got %s", family, t), level + 1)
end

-- '{a="x",b="y"' (open: the caller closes it or adds le) for names and values.
local function label_block(names, values)
  if #names == 0 then return nil end
  local parts = {}
  for i, n in ipairs(names) do parts[i] = n .. '="' .. M.escape_label_value(values[i]) .. '"' end
  return "{" .. concat(parts, ",")
end

-- Children --------------------------------------------------------------------

local Counter, Gauge, Histogram = {}, {}, {}
Counter.__index, Gauge.__index, Histogram.__index = Counter, Gauge, Histogram

--- Adds n (default 1; not negative) to the counter.
function Counter:inc(n)
  n = n or 1
  if type(n) ~= "number" or n ~= n or n < 0 then
    error(format("metrics: %s: a counter only goes up (inc %s)", self.family.name, tostring(n)), 2)
  end
  self.value = self.value + n
end

--- Adds n (default 1) to the gauge.
function Gauge:inc(n)
  n = n or 1
  if type(n) ~= "number" then error("metrics: " .. self.family.name .. ": inc takes a number", 2) end
  self.value = self.value + n
end

--- Subtracts n (default 1) from the gauge.
function Gauge:dec(n)
  n = n or 1
  if type(n) ~= "number" then error("metrics: " .. self.family.name .. ": dec takes a number", 2) end
  self.value = self.value - n
end

--- Sets the gauge to v.
function Gauge:set(v)
  if type(v) ~= "number" then error("metrics: " .. self.family.name .. ": set takes a number", 2) end
  self.value = v
end

--- Counts one observation of v (e.g. a duration in seconds) in its bucket.
function Histogram:observe(v)
  if type(v) ~= "number" then error("metrics: " .. self.family.name .. ": observe takes a number", 2) end
  local bounds, counts = self.family.buckets, self.counts
  local i = 1
  if v ~= v then
    i = #bounds + 1 -- NaN: only in +Inf, as the Go client does
  else
    while i <= #bounds and v > bounds[i] do i = i + 1 end
  end
  counts[i] = counts[i] + 1 -- counts[#bounds + 1] is the +Inf bucket
  self.sum = self.sum + v
  self.count = self.count + 1
end

local CHILD = { counter = Counter, gauge = Gauge, histogram = Histogram }

local function new_child(family, values)
  local child = setmetatable({ family = family, label_values = values }, CHILD[family.type])
  if family.type == "histogram" then
    child.counts, child.sum, child.count = {}, 0, 0
    for i = 1, #family.buckets + 1 do child.counts[i] = 0 end
  else
    child.value = 0
  end
  family.children[#family.children + 1] = child
  return child
end

-- Families --------------------------------------------------------------------

local Family = {}
Family.__index = Family

--- The child for these label values (one per label name, in order),
-- created on first use and cached.
function Family:labels(...)
  local n = select("#", ...)
  local names = self.label_names
  if n ~= #names then
    error(format("metrics: %s: expected %d label value(s) (%s), got %d", self.name, #names,
      concat(names, ", "), n), 2)
  end
  -- A tree keyed by each value in turn: no separator can make two distinct
  -- combinations collide.
  local node = self.tree
  for i = 1, n - 1 do
    local v = select(i, ...)
    local key = type(v) == "string" and v or label_text(v, self.name, 2)
    local next_node = node[key]
    if not next_node then
      next_node = {}
      node[key] = next_node
    end
    node = next_node
  end
  local last = select(n, ...)
  local key = type(last) == "string" and last or label_text(last, self.name, 2)
  local child = node[key]
  if child then return child end
  local values = {}
  for i = 1, n do values[i] = label_text(select(i, ...), self.name, 2) end
  child = new_child(self, values)
  node[key] = child
  return child
end

local function unlabeled(method)
  return function(self, ...)
    local child = self.default
    if not child then
      error(format("metrics: %s has labels (%s): use :labels(...):%s()", self.name,
        concat(self.label_names, ", "), method), 2)
    end
    if not child[method] then error(format("metrics: %s: a %s has no %s", self.name, self.type, method), 2) end
    return child[method](child, ...)
  end
end

Family.inc = unlabeled("inc")
Family.dec = unlabeled("dec")
Family.set = unlabeled("set")
Family.observe = unlabeled("observe")

-- Rendering ---------------------------------------------------------------------

local function render_simple(family, out)
  local name = family.name
  for _, child in ipairs(family.children) do
    local block = label_block(family.label_names, child.label_values)
    out[#out + 1] = name .. (block and block .. "}" or "") .. " " .. format_number(child.value)
  end
end

local function render_histogram(family, out)
  local name, bounds = family.name, family.buckets
  local les = family.le_texts
  for _, child in ipairs(family.children) do
    local block = label_block(family.label_names, child.label_values)
    local open = name .. "_bucket" .. (block and block .. "," or "{") .. 'le="'
    local cumulative = 0
    for i = 1, #bounds + 1 do
      cumulative = cumulative + child.counts[i]
      out[#out + 1] = open .. les[i] .. '"} ' .. format_number(cumulative)
    end
    local labels = block and block .. "}" or ""
    out[#out + 1] = name .. "_sum" .. labels .. " " .. format_number(child.sum)
    out[#out + 1] = name .. "_count" .. labels .. " " .. format_number(child.count)
  end
end

-- Samples of a function family: fn() returns a number, nil (nothing to
-- report), or a list of { labels = {name = value}, value = n } (or
-- { {name = value}, n }).
local function render_fn(family, out, on_error)
  local ok, result = pcall(family.fn)
  if not ok then
    on_error(family.name, result)
    return
  end
  if result == nil then return end
  local name = family.name
  if type(result) == "number" then
    if #family.label_names > 0 then
      on_error(family.name, "returned a number but the family has labels")
      return
    end
    out[#out + 1] = name .. " " .. format_number(result)
    return
  end
  if type(result) ~= "table" then
    on_error(family.name, "returned " .. type(result) .. ", expected a number or a list")
    return
  end
  local lines = {}
  for i, entry in ipairs(result) do
    local labels, value = entry.labels or entry[1], entry.value
    if value == nil then value = entry[2] end
    if type(labels) ~= "table" or type(value) ~= "number" then
      on_error(family.name, format("entry %d is not { labels, value }", i))
      return
    end
    local names = family.label_names
    if #names == 0 then
      names = {}
      for k in pairs(labels) do names[#names + 1] = k end
      table.sort(names)
    end
    local values, count = {}, 0
    for k in pairs(labels) do
      count = count + 1
      if not family.label_set[k] and #family.label_names > 0 then
        on_error(family.name, format("entry %d has the undeclared label %q", i, tostring(k)))
        return
      end
    end
    if #family.label_names > 0 and count ~= #names then
      on_error(family.name, format("entry %d lacks some of the labels %s", i, concat(names, ", ")))
      return
    end
    for j, n in ipairs(names) do
      local okn = pcall(check_label_name, n, family.name, 1)
      local okv, text = pcall(label_text, labels[n], family.name, 1)
      if not okn or not okv then
        on_error(family.name, format("entry %d has a bad label %s", i, tostring(n)))
        return
      end
      values[j] = text
    end
    local block = label_block(names, values)
    lines[#lines + 1] = name .. (block and block .. "}" or "") .. " " .. format_number(value)
  end
  for _, line in ipairs(lines) do out[#out + 1] = line end
end

-- Registry ------------------------------------------------------------------------

local Registry = {}
Registry.__index = Registry

--- A new, empty registry. `opts.on_error(name, err)` hears about a
-- function family that failed at scrape time (default: ignored; the family
-- is left out of that scrape, the others are rendered).
function M.registry(opts)
  opts = opts or {}
  return setmetatable({ families = {}, by_name = {}, taken = {},
    on_error = opts.on_error or function() end }, Registry)
end

-- The sample names a family of `kind` called `name` writes.
local function sample_names(kind, name)
  if kind == "histogram" then return { name, name .. "_bucket", name .. "_sum", name .. "_count" } end
  return { name }
end

function Registry:add(kind, name, help, label_names, level)
  check_name(name, level + 1)
  if type(help) ~= "string" then error("metrics: " .. name .. ": help must be a string", level + 1) end
  for _, n in ipairs(sample_names(kind, name)) do
    if self.taken[n] then
      error(format("metrics: %s: the name %s is already taken by %s", name, n, self.taken[n]), level + 1)
    end
  end
  local names = check_label_names(label_names, name, kind == "histogram" and "le" or nil, level + 1)
  local family = setmetatable({ name = name, help = help, type = kind, label_names = names,
    children = {}, tree = {} }, Family)
  family.label_set = {}
  for _, n in ipairs(names) do family.label_set[n] = true end
  for _, n in ipairs(sample_names(kind, name)) do self.taken[n] = name end
  self.families[#self.families + 1] = family
  self.by_name[name] = family
  return family
end

--- A counter family (a value that only goes up: requests, bytes, errors).
-- Name it ..._total.
function Registry:counter(name, help, label_names)
  local family = self:add("counter", name, help, label_names, 2)
  if #family.label_names == 0 then family.default = new_child(family, {}) end
  return family
end

--- A gauge family (a value that goes up and down: queue depth, memory).
function Registry:gauge(name, help, label_names)
  local family = self:add("gauge", name, help, label_names, 2)
  if #family.label_names == 0 then family.default = new_child(family, {}) end
  return family
end

--- A histogram family: observations counted in `buckets` (upper bounds,
-- increasing; +Inf is implied; default M.DEFAULT_BUCKETS), with their sum
-- and count. The label name "le" is reserved.
function Registry:histogram(name, help, label_names, buckets)
  buckets = buckets or M.DEFAULT_BUCKETS
  if type(buckets) ~= "table" or #buckets == 0 then
    error("metrics: " .. tostring(name) .. ": buckets must be a non-empty list of numbers", 2)
  end
  local bounds, les = {}, {}
  for i, b in ipairs(buckets) do
    if type(b) ~= "number" or b ~= b or (i > 1 and b <= buckets[i - 1]) then
      error(format("metrics: %s: buckets must be increasing numbers (bucket %d is %s)", tostring(name),
        i, tostring(b)), 2)
    end
    if b ~= INF then
      bounds[#bounds + 1] = b
      les[#les + 1] = format_number(b)
    end
  end
  les[#les + 1] = "+Inf"
  local family = self:add("histogram", name, help, label_names, 2)
  family.buckets, family.le_texts = bounds, les
  if #family.label_names == 0 then family.default = new_child(family, {}) end
  return family
end

local function add_fn(self, kind, name, help, fn, label_names)
  if type(fn) ~= "function" then error("metrics: " .. tostring(name) .. ": needs a function", 3) end
  local family = self:add(kind, name, help, label_names, 3)
  family.fn = fn
  return family
end

--- A gauge computed at scrape time: fn() returns a number, nil (nothing to
-- report now), or a list of { labels = { name = value, ... }, value = n }.
-- With `label_names` given, every entry must have exactly those labels
-- (rendered in that order); without, labels are rendered sorted by name.
function Registry:gauge_fn(name, help, fn, label_names)
  return add_fn(self, "gauge", name, help, fn, label_names)
end

--- A counter computed at scrape time (e.g. CPU seconds), as gauge_fn.
function Registry:counter_fn(name, help, fn, label_names)
  return add_fn(self, "counter", name, help, fn, label_names)
end

--- The family registered under `name`, or nil.
function Registry:get(name)
  return self.by_name[name]
end

--- Every family in the text exposition format 0.0.4 (serve it with
-- M.CONTENT_TYPE).
function Registry:render()
  local out = {}
  for _, family in ipairs(self.families) do
    local samples = {}
    if family.fn then
      render_fn(family, samples, self.on_error)
    elseif family.type == "histogram" then
      render_histogram(family, samples)
    else
      render_simple(family, samples)
    end
    if #samples > 0 then
      out[#out + 1] = "# HELP " .. family.name .. " " .. escape_help(family.help)
      out[#out + 1] = "# TYPE " .. family.name .. " " .. family.type
      for _, line in ipairs(samples) do out[#out + 1] = line end
    end
  end
  if #out == 0 then return "" end
  return concat(out, "\n") .. "\n"
end

-- Collectors ----------------------------------------------------------------------

--- Registers the standard process_* metrics (see prisn.metrics.process).
function M.process_collector(reg, deps)
  return process.register(reg, deps)
end

--- Registers prisn's own metrics (see prisn.metrics.prisn); returns the
-- families the server updates.
function M.prisn_metrics(reg, opts)
  return prisn.register(reg, opts)
end

return M
