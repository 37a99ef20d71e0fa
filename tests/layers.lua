-- The require graph of prisn's Lua modules and the layer each belongs to.
--
-- prisn is layered `core <- store <- exec <- server | cli`: a module may
-- require modules of its own layer or of a layer below it, never above, so
-- the state sits behind one boundary (the store) and the run path knows
-- nothing of the API or the command line. A handful of leaf modules
-- (output, fs, clock, procfs, error and pure helpers with no prisn
-- dependencies above them) form the base that every layer may use.
--
-- spec/prisn/layers_spec.lua checks the rules; contrib/require-graph.lua
-- prints the graph's figures (modules, edges, cycles, upward edges).
local M = {}

-- The layers, lowest first. A module's layer is that of the longest prefix
-- of its name listed here; an unlisted module is an error (say where a new
-- module belongs).
M.LAYERS = { "base", "store", "exec", "server", "cli" }

M.PREFIXES = {
  -- base: the core's bindings and leaf helpers every layer uses.
  ["prisn.core"] = "base", ["prisn.output"] = "base", ["prisn.fs"] = "base",
  ["prisn.clock"] = "base", ["prisn.procfs"] = "base", ["prisn.error"] = "base",
  ["prisn.ids"] = "base", ["prisn.units"] = "base", ["prisn.version"] = "base",
  ["prisn.home"] = "base", ["prisn.async"] = "base", ["prisn.envfile"] = "base",
  ["prisn.suggest"] = "base", ["prisn.schema"] = "base", ["prisn.cron"] = "base",
  ["prisn.names"] = "base", ["prisn.guard"] = "base", ["prisn.sandbox"] = "base",
  ["prisn.json"] = "base",
  -- the DNS wire format: pure, so a data-plane process can use it alone.
  ["prisn.net.dns.wire"] = "base",
  -- store: the state and what is kept in it.
  ["prisn.store"] = "store", ["prisn.secrets"] = "store",
  -- exec: running workloads and what a run needs.
  ["prisn.exec"] = "exec", ["prisn.bundle"] = "exec", ["prisn.hooks"] = "exec",
  ["prisn.net"] = "exec", ["prisn.logs"] = "exec", ["prisn.deploy_logs"] = "exec",
  ["prisn.policies"] = "exec", ["prisn.manifest"] = "exec", ["prisn.metrics"] = "exec",
  -- the data-plane process (ports, DNS): below the server, which feeds it.
  ["prisn.dataplane"] = "exec",
  ["prisn.http"] = "exec",
  -- server: the control plane.
  ["prisn.server"] = "server",
  -- cli: the command line, its API client and contexts; main starts either.
  ["prisn.cli"] = "cli", ["prisn.client"] = "cli",
  ["prisn.contexts"] = "cli", ["prisn.doctor"] = "cli", ["prisn.main"] = "cli",
  -- Operators' kinds of files, loaded by the exec layer's registries.
  ["runners"] = "exec", ["policies"] = "exec",
}

-- Requires that stay inside a function outside the command handlers, each
-- for a reason: "module -> required" = why.
M.LAZY_ALLOWED = {
  -- Only runs whose runner has a dependency manager need the detectors and
  -- installers: loading them at the top made every `prisn run` of a bash
  -- script load 28 modules instead of 9 (~0.6 ms more).
  ["prisn.exec.job -> prisn.exec.environment"] = true,
  -- Every command loads prisn.cli.kinds (the global flags' completion); only
  -- a completer needs the client, the store and the job CLI (~1 ms a start).
  ["prisn.cli.kinds -> prisn.client"] = true,
  ["prisn.cli.kinds -> prisn.contexts"] = true,
  ["prisn.cli.kinds -> prisn.home"] = true,
  ["prisn.cli.kinds -> prisn.store"] = true,
  ["prisn.cli.kinds -> prisn.store.deployments"] = true,
  ["prisn.cli.kinds -> prisn.store.cronjobs"] = true,
  ["prisn.cli.kinds -> prisn.cli.jobs"] = true,
  -- A run whose detection is cached and needs no packages (a python hello
  -- world) loads neither the detectors nor the environment cache (~0.7 ms).
  ["prisn.exec.environment -> prisn.exec.deps"] = true,
  ["prisn.exec.environment -> prisn.exec.envcache"] = true,
  -- `prisn run` declares its flags with prisn.cli.workload; only an upload
  -- (--detach, a remote context, deploy, cron) packs a bundle (~0.15 ms).
  ["prisn.cli.workload -> prisn.bundle"] = true,
  -- Every command makes a writer; a formatter is loaded when something is
  -- rendered in its format (a quiet run renders nothing: ~0.1 ms).
  ["prisn.output -> prisn.output.text"] = true,
  ["prisn.output -> prisn.output.json"] = true,
  ["prisn.output -> prisn.output.yaml"] = true,
  -- A run whose environment is cached only applies it (M.apply); the
  -- resolution cache, the venv template and the wheel cache serve a build.
  ["prisn.exec.install.python -> prisn.exec.install.resolution"] = true,
  ["prisn.exec.install.python -> prisn.exec.install.venv"] = true,
  ["prisn.exec.install.python -> prisn.exec.install.wheelcache"] = true,
}

local RANK = {}
for i, name in ipairs(M.LAYERS) do RANK[name] = i end

--- The layer of module `name` (a string), or nil when unlisted.
function M.layer(name)
  local best, best_len = nil, -1
  for prefix, layer in pairs(M.PREFIXES) do
    if (name == prefix or name:sub(1, #prefix + 1) == prefix .. ".") and #prefix > best_len then
      best, best_len = layer, #prefix
    end
  end
  return best
end

--- Whether a module of layer `from` may require one of layer `to`: the same
-- layer or a lower one; base modules only base ones; cli may start the
-- server (`prisn server start`), the server never reaches into the cli.
function M.allowed(from, to)
  if from == "base" then return to == "base" end
  return RANK[to] <= RANK[from]
end

local function module_name(path)
  return (path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", "."))
end

--- The modules under `root` (the source tree): a list of { name, path,
-- lines, requires = { { name, line, lazy } } }, sorted by name. A require on
-- an indented line is counted as lazy (inside a function): prisn's style
-- indents every body and nothing at a module's top level. Requires of a
-- name made at run time (`require("prisn.runners." .. name)`) are left out.
function M.modules(root)
  local list = {}
  local find = io.popen("cd '" .. root .. "' && find lua runners policies -name '*.lua' | sort")
  for path in find:lines() do
    local mod = { name = module_name(path), path = path, lines = 0, requires = {} }
    local n = 0
    for line in io.lines(root .. "/" .. path) do
      n = n + 1
      if not line:match("^%s*%-%-") then
        for dep in line:gmatch("require%s*%(?%s*[\"']([%w%._]+)[\"']") do
          -- (a name ending in "." is the start of one built at run time:
          -- a command family, a runner, a policy, an API handler)
          if dep:match("^prisn%.") and not dep:match("%.$") then
            mod.requires[#mod.requires + 1] = { name = dep, line = n, lazy = line:match("^%s") ~= nil }
          end
        end
      end
    end
    mod.lines = n
    list[#list + 1] = mod
  end
  find:close()
  return list
end

--- The cycles among `mods` (Tarjan's strongly connected components of more
-- than one module, or a module requiring itself), each a sorted list.
function M.cycles(mods)
  local graph, known = {}, {}
  for _, mod in ipairs(mods) do known[mod.name] = true end
  for _, mod in ipairs(mods) do
    graph[mod.name] = {}
    for _, dep in ipairs(mod.requires) do
      if known[dep.name] then graph[mod.name][dep.name] = true end
    end
  end
  local index, low, on_stack, stack, counter, found = {}, {}, {}, {}, 0, {}
  local function visit(v)
    counter = counter + 1
    index[v], low[v] = counter, counter
    stack[#stack + 1], on_stack[v] = v, true
    for w in pairs(graph[v]) do
      if not index[w] then
        visit(w)
        low[v] = math.min(low[v], low[w])
      elseif on_stack[w] then
        low[v] = math.min(low[v], index[w])
      end
    end
    if low[v] == index[v] then
      local component = {}
      repeat
        local w = table.remove(stack)
        on_stack[w] = nil
        component[#component + 1] = w
      until w == v
      if #component > 1 or graph[v][v] then
        table.sort(component)
        found[#found + 1] = component
      end
    end
  end
  local names = {}
  for name in pairs(graph) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if not index[name] then visit(name) end
  end
  return found
end

--- The requires of `mods` that break the layering: a list of
-- "from (layer) -> to (layer), path:line" strings; unlisted modules too.
function M.violations(mods)
  local out = {}
  for _, mod in ipairs(mods) do
    local from = M.layer(mod.name)
    if not from then
      out[#out + 1] = string.format("%s (%s) has no layer: add it to tests/layers.lua", mod.name, mod.path)
    else
      for _, dep in ipairs(mod.requires) do
        local to = M.layer(dep.name)
        if to and not M.allowed(from, to) then
          out[#out + 1] = string.format("%s (%s) -> %s (%s), %s:%d", mod.name, from, dep.name, to, mod.path, dep.line)
        end
      end
    end
  end
  return out
end

return M
