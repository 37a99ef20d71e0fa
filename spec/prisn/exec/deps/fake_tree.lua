-- A fake filesystem for the dependency detection specs: the `ctx` that
-- prisn.exec.deps.detect expects, over a table of path -> content.
--
--   local ctx = fake_tree({ ["/home/u/p/app.py"] = "import requests\n", ["/home/u/p/.git"] = true })
--
-- `true` makes a directory; every parent of a listed path exists as a
-- directory. ctx.reads lists the files read, in order.
local M = {}

M.HOME = "/home/u"

-- A small stdlib set: enough names for the specs.
M.STDLIB = {}
for _, name in ipairs({ "os", "sys", "json", "re", "typing", "collections", "subprocess", "pathlib",
  "__future__", "importlib", "tomllib", "dataclasses", "asyncio", "logging", "_thread", "urllib" }) do
  M.STDLIB[name] = true
end

M.BUILTINS = {}
for _, name in ipairs({ "fs", "fs/promises", "path", "http", "child_process", "url", "util", "events",
  "node:test", "node:sqlite" }) do
  M.BUILTINS[name] = true
end

function M.new(tree, overrides)
  local files, dirs = {}, { ["/"] = true }
  for path, content in pairs(tree) do
    if content == true then dirs[path] = true else files[path] = content end
    local parent = path:match("^(.*)/[^/]*$")
    while parent and parent ~= "" do
      dirs[parent] = true
      parent = parent:match("^(.*)/[^/]*$")
    end
  end
  local ctx = { reads = {}, home = M.HOME, stdlib = M.STDLIB, builtins = M.BUILTINS }
  function ctx.read_file(path)
    ctx.reads[#ctx.reads + 1] = path
    return files[path]
  end
  function ctx.exists(path) return files[path] ~= nil or dirs[path] ~= nil end
  function ctx.is_dir(path) return dirs[path] == true end
  for k, v in pairs(overrides or {}) do ctx[k] = v end
  return ctx
end

return setmetatable(M, { __call = function(_, ...) return M.new(...) end })
