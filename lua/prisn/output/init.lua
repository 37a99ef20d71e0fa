-- prisn.output: how every command shows its result.
--
-- A command builds one plain value (tables, strings, numbers, booleans,
-- output.null) and hands it to `render` or to its writer, `ctx.out:emit`.
-- The global -o flag picks the format:
--
--   text  aligned tables and key/value blocks for people (prisn.output.text);
--   json  pretty, deterministic JSON (prisn.output.json);
--   yaml  block YAML any parser reads back as the same data (prisn.output.yaml).
--
-- JSON and YAML are an interface: field names are the snake_case keys the
-- command chose, keys are sorted, and both formats carry exactly the same
-- data. Only text may use colour or change how a value looks.
--
--   local output = require("prisn.output")
--   output.render({ { name = "backup", state = "running" } }, "text")
--   --> "NAME     STATE\nbackup   running\n"
local value = require("prisn.output.value")

local M = {}

--- JSON null / YAML null / "-" in text (it is cjson.null).
M.null = value.null

--- Marks table `t` as an array (so an empty one is [] rather than {});
-- returns `t`. A non-empty sequence is an array without it.
M.array = value.array

--- The formats `render` accepts, in the order help lists them.
M.FORMATS = { "text", "json", "yaml" }

-- Each format's module is loaded when something is first rendered in it:
-- every command makes a writer, and one that prints nothing (a quiet
-- `prisn run`) or prints in one format need not load all three (~0.1 ms of
-- a start, tests/bench/run-report.md).
local renderers = {
  text = function(v, opts) return require("prisn.output.text").render(v, opts) end,
  json = function(v) return require("prisn.output.json").encode(v) end,
  yaml = function(v) return require("prisn.output.yaml").encode(v) end,
}

--- Renders `v` in `format` ("text", "json" or "yaml"; text by default) as a
-- string ending in a newline. `opts` are for text only: `columns`, `fields`,
-- `empty`, `color`. Raises "output: <path>: <problem>" for a value that
-- cannot be rendered (a function, a cycle, a mixed table, NaN in JSON...).
function M.render(v, format, opts)
  local renderer = renderers[format or "text"]
  if not renderer then
    error(string.format("output.render: unknown format %q (expected text, json or yaml)",
      tostring(format)), 2)
  end
  return renderer(v, opts or {})
end

local Writer = {}
Writer.__index = Writer

--- Writes `v` rendered in the writer's format to its stream. `opts` as for
-- `render`; the writer's colour setting applies to text.
function Writer:emit(v, opts)
  local merged = { color = self.color }
  for k, o in pairs(opts or {}) do merged[k] = o end
  if self.color == false then merged.color = false end
  self.stdout:write(M.render(v, self.format, merged))
end

--- A writer for command handlers (`ctx.out`). `opts`: `format` (default
-- "text"), `color` (default false; the CLI decides from --no-color, NO_COLOR
-- and whether stdout is a terminal), `stdout` (default io.stdout).
function M.writer(opts)
  opts = opts or {}
  local format = opts.format or "text"
  if not renderers[format] then
    error(string.format("output.writer: unknown format %q (expected text, json or yaml)",
      tostring(format)), 2)
  end
  return setmetatable({
    format = format,
    color = opts.color == true and format == "text",
    stdout = opts.stdout or io.stdout,
  }, Writer)
end

--- The table columns to show: every column of `columns` ({ key, header,
-- wide }) except those marked `wide`, which only `-o wide` (`wide` true)
-- adds.
function M.visible_columns(columns, wide)
  local out = {}
  for _, c in ipairs(columns) do
    if wide or not c.wide then out[#out + 1] = { key = c.key, header = c.header } end
  end
  return out
end

return M
