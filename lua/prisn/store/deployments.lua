-- prisn.store.deployments: deployments, their revisions and instances in
-- the state database.
--
-- A deployment is a name in a namespace with a desired replica count, an
-- optional public port, and a current revision. A revision is an immutable
-- template for instances: where the script is (bundle + entry), its args,
-- environment, secret names, limits, isolation, health check and restart
-- policy, as one JSON `spec`. Changing any of those makes a new revision
-- (numbered 1, 2, ... per deployment); changing replicas or the port does not.
--
-- An instance is one supervised process of a revision: `number` is its
-- ordinal in the deployment (api-1, api-2, ... never reused, so logs and
-- events name one instance for good), with its internal port, its pid and
-- start time (so a restarted server can re-adopt it), state and restarts.
--
-- In Lua every row is a plain table with its columns; `spec` and `autoscale`
-- decoded; NULL columns absent. The supervisor (prisn.server.supervisor) is
-- the only writer while the server runs.
local cjson = require("cjson")
local errors = require("prisn.error")
local store = require("prisn.store")
local clock = require("prisn.clock")

local M = {}


M.MAX_NAME = 63
M.STRATEGIES = { ["round-robin"] = true, ["least-connections"] = true }

local check = store.check

--- Whether `name` may name a deployment (as a cron job's: lower-case
-- letters, digits and dashes). Returns true, or nil and a message.
function M.valid_name(name)
  if type(name) ~= "string" or name == "" then return nil, "a deployment needs a name" end
  if #name > M.MAX_NAME or not name:match("^[a-z0-9]$") and not name:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$") then
    return nil, string.format("invalid deployment name '%s': use lower-case letters, digits and dashes "
      .. "(at most %d, starting and ending with a letter or digit)", name, M.MAX_NAME)
  end
  return true
end

local function decode(text)
  if text == nil then return nil end
  local ok, v = pcall(cjson.decode, text)
  return ok and type(v) == "table" and store.plain_json(v) or nil
end

local function deployment_row(row)
  if not row then return nil end
  row.autoscale = decode(row.autoscale)
  return row
end

--- The deployment `name` of `ns`, or nil.
function M.get(db, ns, name)
  return deployment_row(check(db:first("SELECT * FROM deployments WHERE namespace = ? AND name = ?", ns, name)))
end

--- Deployments by name; opts: namespace ("default"), all_namespaces.
function M.list(db, opts)
  opts = opts or {}
  local rows
  if opts.all_namespaces then
    rows = check(db:rows("SELECT * FROM deployments ORDER BY namespace, name"))
  else
    rows = check(db:rows("SELECT * FROM deployments WHERE namespace = ? ORDER BY name", opts.namespace or "default"))
  end
  for i, row in ipairs(rows) do rows[i] = deployment_row(row) end
  return rows
end

--- The deployment that owns public `port`, or nil.
function M.by_port(db, port)
  return deployment_row(check(db:first("SELECT * FROM deployments WHERE port = ?", port)))
end

--- The deployments routed from ingress host name `hostname` (any
-- namespace), by path.
function M.by_hostname(db, hostname)
  local rows = check(db:rows("SELECT * FROM deployments WHERE hostname = ? ORDER BY path", hostname))
  for i, row in ipairs(rows) do rows[i] = deployment_row(row) end
  return rows
end

-- The conflict a write of `fields` ran into (SQLITE_CONSTRAINT `message`):
-- raises it as a prisn.error (409), naming only what the writer's own
-- namespace holds; returns when it is not an ingress conflict.
local function raise_route_conflict(db, ns, fields, message)
  if not fields.hostname then return end
  if tostring(message):find("hostname of another namespace", 1, true) then
    errors.raise("conflict", string.format("host %s is used by another namespace", fields.hostname),
      { http_status = 409, hint = "choose another --host" })
  end
  if tostring(message):find("deployments.hostname", 1, true) then
    local path = fields.path or "/"
    for _, row in ipairs(M.by_hostname(db, fields.hostname)) do
      if row.namespace == ns and row.path == path then
        errors.raise("conflict", string.format("host %s path %s is already used by deployment %s", fields.hostname,
          path, row.name), { http_status = 409, hint = "choose another --path, or change that deployment" })
      end
    end
    errors.raise("conflict", string.format("host %s path %s is already used", fields.hostname, path),
      { http_status = 409 })
  end
end

--- Creates a deployment with its first revision. fields: namespace, name,
-- replicas, port, host, hostname and path (the ingress route; path "/" when
-- absent), tls_cert, tls_key, tls_secret, strategy, spec (the revision's), actor. Returns the deployment.
-- Raises "exists" when the name is taken, "conflict" when the port or the
-- route is.
function M.create(db, fields)
  local now = clock.now_ms()
  store.transaction(db, function()
    local ok, message, code = db:run("INSERT INTO deployments (namespace, name, revision, replicas, port, host, "
      .. "hostname, path, tls_cert, tls_key, tls_secret, strategy, created_at, updated_at) "
      .. "VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      fields.namespace, fields.name, fields.replicas, fields.port, fields.host, fields.hostname,
      fields.hostname and (fields.path or "/") or nil, fields.tls_cert, fields.tls_key, fields.tls_secret,
      fields.strategy or "round-robin", now, now)
    if not ok then
      if code == "SQLITE_CONSTRAINT" then
        raise_route_conflict(db, fields.namespace, fields, message)
        if fields.port and M.by_port(db, fields.port) then
          errors.raise("conflict", string.format("port %d is already used by another deployment", fields.port),
            { http_status = 409 })
        end
        errors.raise("exists", string.format("deployment '%s' already exists in namespace '%s'", fields.name,
          fields.namespace), { http_status = 409 })
      end
      store.fail(message, code)
    end
    check(db:run("INSERT INTO revisions (namespace, name, revision, spec, state, created_at, created_by) "
      .. "VALUES (?, ?, 1, ?, 'rolling_out', ?, ?)", fields.namespace, fields.name, cjson.encode(fields.spec), now,
      fields.actor))
  end)
  return M.get(db, fields.namespace, fields.name)
end

--- Adds revision (current + 1 over every revision ever made) with `spec`
-- and makes it the deployment's current one. Returns its number.
function M.add_revision(db, ns, name, spec, actor)
  local now = clock.now_ms()
  local number
  store.transaction(db, function()
    local row = check(db:first("SELECT MAX(revision) AS n FROM revisions WHERE namespace = ? AND name = ?", ns, name))
    number = (row and row.n or 0) + 1
    check(db:run("INSERT INTO revisions (namespace, name, revision, spec, state, created_at, created_by) "
      .. "VALUES (?, ?, ?, ?, 'rolling_out', ?, ?)", ns, name, number, cjson.encode(spec), now, actor))
    check(db:run("UPDATE deployments SET revision = ?, updated_at = ? WHERE namespace = ? AND name = ?", number,
      now, ns, name))
  end)
  return number
end

--- Changes columns of a deployment: replicas, port, host, hostname, path,
-- tls_cert, tls_key, tls_secret, strategy, autoscale (a table, or false to clear), revision. Raises
-- "conflict" (409) when the port or the ingress route is taken.
function M.update(db, ns, name, fields)
  -- values may hold NULLs (false clears a column): count, never use #.
  local sets, values, n = {}, {}, 0
  local function set(column, value)
    sets[#sets + 1] = column .. " = ?"
    n = n + 1
    values[n] = value
  end
  for _, column in ipairs({ "replicas", "port", "host", "hostname", "path", "tls_cert", "tls_key", "tls_secret",
    "strategy", "revision" }) do
    if fields[column] ~= nil then set(column, fields[column] ~= false and fields[column] or nil) end
  end
  if fields.autoscale ~= nil then set("autoscale", fields.autoscale and cjson.encode(fields.autoscale) or nil) end
  set("updated_at", clock.now_ms())
  n = n + 2
  values[n - 1], values[n] = ns, name
  local ok, message, code = db:run("UPDATE deployments SET " .. table.concat(sets, ", ")
    .. " WHERE namespace = ? AND name = ?", table.unpack(values, 1, n))
  if not ok then
    if code == "SQLITE_CONSTRAINT" then
      raise_route_conflict(db, ns, fields, message)
      errors.raise("conflict", string.format("port %s is already used by another deployment", tostring(fields.port)),
        { http_status = 409 })
    end
    store.fail(message, code)
  end
end

--- Deletes a deployment with its revisions and instance records.
function M.delete(db, ns, name)
  return check(db:run("DELETE FROM deployments WHERE namespace = ? AND name = ?", ns, name)) > 0
end

local function revision_row(row)
  if not row then return nil end
  row.spec = decode(row.spec) or {}
  return row
end

--- Revision `number` of a deployment, or nil.
function M.revision(db, ns, name, number)
  return revision_row(check(db:first("SELECT * FROM revisions WHERE namespace = ? AND name = ? AND revision = ?",
    ns, name, number)))
end

-- The query of current_revisions for `keys`: the keys' values read by
-- SQLite's json_extract as one JSON array (`listed`), NULL for a spec that
-- is not valid JSON (as a spec that does not decode gives {} in Lua); and
-- each key split once ({ key } or { outer, inner }), not once a row. Kept by
-- keys list.
local listed_query = setmetatable({}, { __mode = "k" })

local function current_revisions_query(keys)
  local query = listed_query[keys]
  if query then return query end
  local paths, split = {}, {}
  for i, key in ipairs(keys) do
    assert(type(key) == "string" and (key:match("^[%a_][%w_]*$") or key:match("^[%a_][%w_]*%.[%a_][%w_]*$")),
      "current_revisions: bad spec key")
    paths[i] = "'$." .. key .. "'"
    local outer, inner = key:match("^([^.]+)%.(.+)$")
    split[i] = outer and { outer, inner } or { key }
  end
  -- With one path json_extract gives the value itself, not an array of one.
  if #paths == 1 then paths[2] = paths[1] end
  query = { split = split, sql = "SELECT r.namespace, r.name, r.revision, r.state, r.message, r.created_at, "
    .. "r.created_by, CASE WHEN json_valid(r.spec) THEN json_extract(r.spec, " .. table.concat(paths, ", ")
    .. ") END AS listed FROM deployments d JOIN revisions r ON r.namespace = d.namespace AND r.name = d.name "
    .. "AND r.revision = d.revision WHERE d.namespace = ?" }
  listed_query[keys] = query
  return query
end

-- Sets spec[key] (spec[outer][inner] for a key split as { outer, inner })
-- to the JSON value v, made plain.
local function set_listed(spec, split, v)
  if v == cjson.null then return end
  if type(v) == "table" then
    v = store.plain_json(v)
  elseif type(v) == "number" then
    v = math.tointeger(v) or v
  end
  local outer, inner = split[1], split[2]
  if not inner then
    spec[outer] = v
    return
  end
  local t = spec[outer]
  if not t then
    t = {}
    spec[outer] = t
  end
  t[inner] = v
end

--- The current revision of every deployment of `ns`, by deployment name: one
-- query for a whole list instead of one per deployment. With `keys` (a list
-- of spec fields; "health.kind" for a field of an object field), each spec
-- holds only those, made plain: a list shows six. SQLite picks them out
-- (json_extract), so Lua decodes a small array per spec, not the spec:
-- decoding a thousand specs of 600 bytes and making them plain took 8-17 ms
-- of a list's 30 ms target, against about 4 ms now
-- (tests/bench/deployments-report.md).
function M.current_revisions(db, ns, keys)
  local by_name = {}
  if not keys then
    local rows = check(db:rows("SELECT r.* FROM deployments d JOIN revisions r ON r.namespace = d.namespace "
      .. "AND r.name = d.name AND r.revision = d.revision WHERE d.namespace = ?", ns))
    for _, row in ipairs(rows) do by_name[row.name] = revision_row(row) end
    return by_name
  end
  local query = current_revisions_query(keys)
  local split = query.split
  for _, row in ipairs(check(db:rows(query.sql, ns))) do
    local ok, values = pcall(cjson.decode, row.listed or "")
    local spec = {}
    if ok and type(values) == "table" then
      for i = 1, #split do set_listed(spec, split[i], values[i]) end
    end
    row.listed, row.spec = nil, spec
    by_name[row.name] = row
  end
  return by_name
end

--- Every revision of a deployment, oldest first.
function M.revisions(db, ns, name)
  local rows = check(db:rows("SELECT * FROM revisions WHERE namespace = ? AND name = ? ORDER BY revision", ns, name))
  for i, row in ipairs(rows) do rows[i] = revision_row(row) end
  return rows
end

--- Sets a revision's state (and message).
function M.set_revision_state(db, ns, name, number, state, message)
  check(db:run("UPDATE revisions SET state = ?, message = ? WHERE namespace = ? AND name = ? AND revision = ?",
    state, message, ns, name, number))
end

--- Takes the next instance number of a deployment.
function M.next_number(db, ns, name)
  local row = check(db:first("SELECT next_number FROM deployments WHERE namespace = ? AND name = ?", ns, name))
  check(db:run("UPDATE deployments SET next_number = next_number + 1 WHERE namespace = ? AND name = ?", ns, name))
  return row and row.next_number or 1
end

local function instance_row(row)
  if not row then return nil end
  row.last_exit = decode(row.last_exit)
  return row
end

--- Records an instance (insert or replace). fields: namespace, deployment,
-- number, revision, port, pid, started_at, state, restarts, last_exit.
function M.save_instance(db, fields)
  check(db:run("INSERT INTO instances (namespace, deployment, number, revision, port, pid, started_at, state, "
    .. "restarts, last_exit, created_at) VALUES (:namespace, :deployment, :number, :revision, :port, :pid, "
    .. ":started_at, :state, :restarts, :last_exit, :created_at) "
    .. "ON CONFLICT (namespace, deployment, number) DO UPDATE SET revision = :revision, port = :port, pid = :pid, "
    .. "started_at = :started_at, state = :state, restarts = :restarts, last_exit = :last_exit", {
      namespace = fields.namespace, deployment = fields.deployment, number = fields.number,
      revision = fields.revision, port = fields.port, pid = fields.pid, started_at = fields.started_at,
      state = fields.state, restarts = fields.restarts or 0,
      last_exit = fields.last_exit and cjson.encode(fields.last_exit) or nil,
      created_at = fields.created_at or clock.now_ms(),
    }))
end

--- Forgets an instance.
function M.delete_instance(db, ns, deployment, number)
  check(db:run("DELETE FROM instances WHERE namespace = ? AND deployment = ? AND number = ?", ns, deployment, number))
end

--- The instances of a deployment (or of every deployment of `ns` when
-- `deployment` is nil; of every namespace when `ns` is nil), by number.
function M.instances(db, ns, deployment)
  local rows
  if ns == nil then
    rows = check(db:rows("SELECT * FROM instances ORDER BY namespace, deployment, number"))
  elseif deployment == nil then
    rows = check(db:rows("SELECT * FROM instances WHERE namespace = ? ORDER BY deployment, number", ns))
  else
    rows = check(db:rows("SELECT * FROM instances WHERE namespace = ? AND deployment = ? ORDER BY number", ns,
      deployment))
  end
  for i, row in ipairs(rows) do rows[i] = instance_row(row) end
  return rows
end

--- The instances of every deployment of `ns`, as lists by deployment name
-- (each by number); a deployment without instances is absent.
function M.instances_by_deployment(db, ns)
  local by_name = {}
  for _, row in ipairs(M.instances(db, ns)) do
    local list = by_name[row.deployment]
    if not list then
      list = {}
      by_name[row.deployment] = list
    end
    list[#list + 1] = row
  end
  return by_name
end

return M
