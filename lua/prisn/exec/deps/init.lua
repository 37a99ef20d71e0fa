-- prisn.exec.deps: which packages a script needs before it can run, detected
-- without installing or running anything. The environment cache and the
-- installer live elsewhere; they consume what this returns.
--
--   local result, err, code = deps.detect("python", "/srv/jobs/report.py", ctx)
--   -- { source = "requirements.txt", file = "/srv/jobs/requirements.txt",
--   --   dependencies = { "pandas>=2", "requests" }, options = { "--index-url https://..." } }
--   local key_part = deps.normalize("python", result.dependencies)
--
-- A result always has:
--   source        "pep723" | "requirements.txt" | "pyproject.toml" | "imports"
--                 (Python); "package.json" | "imports" (Node); "none" when
--                 nothing is needed (no manager, or a scan that found nothing)
--   file          the file the list came from (the script itself for "pep723"
--                 and "imports"), nil for "none"
--   dependencies  requirement strings: PEP 508 specifiers as written
--                 (whitespace squeezed) for Python, "name@range" or bare
--                 package names (scan) for Node
--   options       pip options from requirements files, one per string, in a
--                 form pip accepts in a requirements file; {} otherwise
--   requires_python  the declared `requires-python` (pep723, pyproject.toml)
--
-- Failures are `nil, message, code`: "EDEPS" for malformed metadata (the
-- message names the file and line: "app.py:3: unterminated '# /// script'
-- block (no closing '# ///')"), "ENOENT" for an unreadable script.
--
-- ctx, supplied by the caller (specs pass a fake tree):
--   read_file(path) -> string|nil     exists(path) -> bool     is_dir(path) -> bool
--   home      the user's home: the manifest search never climbs into it
--   cwd       needed only when the script path is relative
--   stdlib    Python: set of stdlib top-level module names (sys.stdlib_module_names),
--             or a function returning it, called only if the import scan runs
--   builtins  Node: set of builtin module names (require('module').builtinModules),
--             or a function returning it, called only if the scan runs
local python = require("prisn.exec.deps.python")
local node = require("prisn.exec.deps.node")

local M = {}

M.MANAGERS = { python = python, node = node }

local function manager_module(manager)
  local mod = M.MANAGERS[manager]
  if not mod and manager ~= "none" then
    error(string.format("unknown dependency manager %q (python, node or none)", tostring(manager)), 3)
  end
  return mod
end

--- Detects the dependencies of `script_path` for `manager` ("python", "node"
-- or "none"). Raises for an unknown manager; see the header for the rest.
function M.detect(manager, script_path, ctx)
  local mod = manager_module(manager)
  if not mod then return { source = "none", dependencies = {}, options = {} } end
  assert(type(script_path) == "string", "script_path must be a string")
  assert(type(ctx) == "table", "ctx must be a table")
  return mod.detect(script_path, ctx)
end

--- The canonical dependency list for the environment cache key: sorted and
-- de-duplicated; for Python, names PEP 503-normalized ("Foo_Bar >= 1" ->
-- "foo-bar>=1") with specifiers and markers kept. A cache key should also
-- cover `options` and `requires_python`, which change what gets installed.
function M.normalize(manager, list)
  local mod = manager_module(manager)
  if not mod then return {} end
  return mod.normalize(list or {})
end

return M
