-- `prisn logs TARGET`: the output a job or a deployment printed.
--
-- A job's log (prisn.logs) is read from state.db and the log file on this
-- machine, or through the API of a remote server; what the job wrote to
-- stdout goes to stdout and what it wrote to stderr to stderr, in the order
-- it was written, byte for byte; --tail and --timestamps work line by line
-- instead.
--
-- A deployment's logs (prisn.deploy_logs) always come through the server's
-- API (GET .../deployments/NAME/logs): its instances' lines merged in time
-- order, each prefixed with its instance ("[api-2] GET / 200"), stdout lines
-- to stdout and stderr lines to stderr; -f keeps following across restarts,
-- scale-ups and rolling updates.
--
-- Which one a bare TARGET names is decided by its form: a job id (or a
-- prefix of one) is at most 12 characters of Crockford base32 (no i, l, o,
-- u); a deployment name is lower-case letters, digits and dashes. A word
-- that could be both (like "web" or "01kax") is the deployment when one of
-- that name exists in the namespace, else a job id. job/ID and deploy/NAME
-- say which. Like `prisn get`, this command only reads.
local cjson = require("cjson")
local clock = require("prisn.clock")
local errors = require("prisn.error")
local job_cli = require("prisn.cli.jobs")

local FORMS_HINT = "use 'prisn logs job/ID' or 'prisn logs deploy/NAME' (or just the id or name); "
  .. "'prisn get jobs' lists the ids"

local JOB_KINDS = { job = true, jobs = true }
local DEPLOY_KINDS = { deploy = true, deployment = true, deployments = true }
-- Characters of a job id (prisn.ids: Crockford base32, lower case).
local JOB_ID_PATTERN = "^[0-9a-hjkmnp-tv-z]+$"

-- What TARGET names: "job", "deployment" or "either" (a bare word of both
-- forms), and the id or name. Raises a usage error for another kind or an
-- empty name.
local function parse_target(target)
  local kind, name = target:match("^([^/]*)/(.*)$")
  if name == "" or (name and name:find("/", 1, true)) then
    errors.usage(string.format("'%s' does not name a job or a deployment", target), FORMS_HINT)
  end
  if kind then
    if JOB_KINDS[kind] then return "job", name end
    if DEPLOY_KINDS[kind] then
      local ok, message = require("prisn.store.deployments").valid_name(name)
      if not ok then errors.usage(message, FORMS_HINT) end
      return "deployment", name
    end
    errors.usage(string.format("cannot show logs of '%s': logs are kept for jobs and deployments", target),
      FORMS_HINT)
  end
  local job_like = #target <= require("prisn.ids").LENGTH and target:match(JOB_ID_PATTERN) ~= nil
  local deploy_like = require("prisn.store.deployments").valid_name(target) == true
  if job_like and deploy_like then return "either", target end
  if deploy_like then return "deployment", target end
  return "job", target
end

-- Whether deployment `name` exists in `ns`: asked of the state database on
-- this machine, of the server for a remote context (a 404 means no).
local function deployment_exists(ctx, ns, name)
  local remote = job_cli.remote(ctx)
  if remote then
    local ok, err = pcall(remote.request, remote, "GET",
      string.format("/api/v1/namespaces/%s/deployments/%s/logs?tail=0", ns, name))
    if ok then return true end
    if errors.is(err) and err.http_status == 404 then return false end
    error(err, 0)
  end
  local db = job_cli.open_store()
  if not db then return false end
  local ok, found = pcall(require("prisn.store.deployments").get, db, ns, name)
  db:close()
  return ok and found ~= nil
end

-- Completion of a deployment name: the names on this machine starting with
-- `partial` (every namespace). Never raises.
local function complete_deployment(partial)
  local ok, result = pcall(function()
    local db = job_cli.open_store()
    if not db then return {} end
    local list = require("prisn.store.deployments").list(db, { all_namespaces = true })
    db:close()
    local out, seen = {}, {}
    for _, d in ipairs(list) do
      if d.name:sub(1, #partial) == partial and not seen[d.name] then
        seen[d.name] = true
        out[#out + 1] = d.name
      end
    end
    return out
  end)
  return ok and result or {}
end

-- Percent-encodes a query value.
local function escape(text)
  return (tostring(text):gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Prints a deployment's lines (through the API) until the stream ends.
local function deployment_logs(ctx, name)
  local flags, globals = ctx.flags, ctx.globals
  local iso = clock.iso_time
  if flags.instance and flags.instance < 1 then
    errors.usage("--instance must be an instance number of 1 or more, got " .. flags.instance,
      "the instances of " .. name .. " are " .. name .. "-1, " .. name .. "-2, ...: give the number")
  end
  if flags.follow and globals.output == "yaml" then
    errors.usage("-f cannot print YAML", "use -o json with -f: one JSON object per line")
  end
  local client = require("prisn.client")
  local ns = client.namespace(ctx)
  local query = {}
  if flags.follow then query[#query + 1] = "follow=1" end
  if flags.since then query[#query + 1] = "since=" .. escape(flags.since) end
  if flags.tail then query[#query + 1] = "tail=" .. flags.tail end
  if flags.instance then query[#query + 1] = "instance=" .. flags.instance end
  local path = string.format("/api/v1/namespaces/%s/deployments/%s/logs", ns, name)
  if #query > 0 then path = path .. "?" .. table.concat(query, "&") end

  local text = globals.output == "text"
  local collected = require("prisn.output").array({})
  local final
  local function on_line(rec)
    if rec["end"] then final = rec return end
    if flags.stream ~= "all" and rec.stream ~= flags.stream then return end
    if not text then
      local item = { instance = rec.instance, stream = rec.stream, time = iso(rec.time_ms), data = rec.data }
      if flags.follow then
        io.stdout:write(cjson.encode(item), "\n")
        io.stdout:flush()
      else
        collected[#collected + 1] = item
      end
      return
    end
    local f = rec.stream == "stderr" and io.stderr or io.stdout
    local data = tostring(rec.data)
    f:write("[", tostring(rec.instance), "] ", flags.timestamps and (iso(rec.time_ms) .. " ") or "", data,
      data:sub(-1) == "\n" and "" or "\n")
    f:flush()
  end
  local pending, head = "", ""
  local c = client.connect(ctx)
  local ok, err = pcall(c.request, c, "GET", path, nil, {
    timeout_ms = flags.follow and 7 * 24 * 3600 * 1000 or 600 * 1000,
    on_chunk = function(chunk)
      if #head < 65536 then head = head .. chunk end
      pending = pending .. chunk
      local pos = 1
      while true do
        local nl = pending:find("\n", pos, true)
        if not nl then break end
        local ok, rec = pcall(cjson.decode, pending:sub(pos, nl - 1))
        if ok and type(rec) == "table" then on_line(rec) end
        pos = nl + 1
      end
      pending = pending:sub(pos)
    end,
  })
  if not ok then
    -- A streamed request hands an error's body to on_chunk too: the
    -- server's {"error": ...} is in `head`.
    local decoded, body = pcall(cjson.decode, head)
    local e = decoded and type(body) == "table" and type(body.error) == "table" and body.error
    if errors.is(err) and err.http_status and e then
      errors.raise(e.code or err.code, e.message or err.message,
        { hint = e.hint ~= cjson.null and e.hint or nil, http_status = err.http_status })
    end
    error(err, 0)
  end
  if not text and not flags.follow then
    ctx.out:emit({ namespace = ns, deployment = name, lines = collected })
  end
  if final and not globals.quiet then
    if final.reason == "deleted" then
      io.stderr:write(string.format("prisn: deployment %s was deleted\n", name))
    elseif final.reason == "server_stopping" then
      io.stderr:write("prisn: the server is stopping; no more logs\n")
      return 1
    end
  end
  return 0
end

-- Writes `chunks` to the terminal, stdout chunks to stdout and stderr chunks
-- to stderr, flushing when the stream changes so the order survives when
-- both go to the same terminal.
local function write_chunks(chunks, timestamps)
  local iso = clock.iso_time
  local current
  for _, c in ipairs(chunks) do
    local f = c.stream == "stderr" and io.stderr or io.stdout
    if current and current ~= f then current:flush() end
    current = f
    if timestamps then f:write(iso(c.time_ms), " ") end
    f:write(c.data)
  end
  if current then current:flush() end
end

-- Follows a job through the server's API: stored output, then live output
-- until the job ends.
local function follow(ctx, id)
  local client = require("prisn.client")
  local final = client.connect(ctx):follow_job(client.namespace(ctx), id, function(stream, data)
    if ctx.flags.stream == "all" or stream == ctx.flags.stream then
      local f = stream == "stderr" and io.stderr or io.stdout
      f:write(data)
      f:flush()
    end
  end)
  if final and not ctx.globals.quiet and final.state ~= "succeeded" then
    io.stderr:write(string.format("prisn: job %s %s (%s)\n", id, tostring(final.state), tostring(final.reason)))
  end
  return 0
end

local function handler(ctx)
  local logs = require("prisn.logs")
  local output = require("prisn.output")
  local tail = ctx.flags.tail
  if tail and tail < 0 then errors.usage("--tail must be 0 or more, got " .. tail) end
  local kind, id = parse_target(ctx.args.TARGET)
  if kind == "either" then
    kind = deployment_exists(ctx, job_cli.namespace(ctx), id) and "deployment" or "job"
  end
  if kind == "deployment" then return deployment_logs(ctx, id) end
  for _, flag in ipairs({ "since", "instance" }) do
    if ctx.flags[flag] ~= nil then
      errors.usage(string.format("--%s is for deployment logs, and %s names a job", flag, ctx.args.TARGET),
        "for a job use --tail; 'prisn logs deploy/NAME' names a deployment")
    end
  end
  if ctx.flags.follow then return follow(ctx, id) end
  local job, records, truncated, max_bytes
  local remote = job_cli.remote(ctx)
  if remote then
    local res = remote:request("GET", string.format("/api/v1/namespaces/%s/jobs/%s/logs",
      job_cli.namespace(ctx), id))
    job = { id = res.id, namespace = res.namespace }
    records, truncated = {}, res.truncated == true
    local parse_time = require("prisn.store.events").parse_time
    for i, r in ipairs(res.records or {}) do
      records[i] = { stream = r.stream, data = r.data, time_ms = parse_time(r.time) }
    end
  else
    job = job_cli.load_job(job_cli.namespace(ctx), id)
    local path = job.log_path
    if not path then
      path = logs.job_path(require("prisn.home").path(), job.namespace, job.id)
    end
    records, truncated, max_bytes = logs.read(path)
    if not records then
      if max_bytes ~= "ENOENT" then
        errors.raise(max_bytes or "EIO", "cannot read the log of job " .. job.id .. ": " .. tostring(truncated),
          { hint = "check that you own PRISN_HOME and may read it ('prisn doctor' checks it)" })
      end
      records, truncated, max_bytes = {}, false, nil
    end
  end
  local chunks = {}
  for _, r in ipairs(records) do
    if ctx.flags.stream == "all" or r.stream == ctx.flags.stream then chunks[#chunks + 1] = r end
  end
  local by_line = tail ~= nil or ctx.flags.timestamps
  if by_line then chunks = logs.lines(chunks) end
  local dropped = truncated
  if tail then
    -- The note matters only when the kept output is shorter than asked for.
    dropped = truncated and #chunks <= tail
    local last = {}
    for i = math.max(#chunks - tail + 1, 1), #chunks do last[#last + 1] = chunks[i] end
    chunks = last
  end
  if ctx.globals.output ~= "text" then
    local list = output.array({})
    for i, c in ipairs(chunks) do
      list[i] = { stream = c.stream, time = clock.iso_time(c.time_ms), data = c.data }
    end
    ctx.out:emit({ id = job.id, namespace = job.namespace, truncated = truncated == true, records = list })
    return 0
  end
  if dropped and not ctx.globals.quiet then
    local size = require("prisn.units").format_size(max_bytes or logs.DEFAULT_MAX_BYTES)
    io.stderr:write(string.format("Note: older output was dropped; the log keeps the last %s\n", size))
  end
  io.stdout:flush()
  write_chunks(chunks, ctx.flags.timestamps)
  return 0
end

return {
  {
    name = "logs",
    summary = "Show the output of a job or a deployment",
    description = "Prints what job ID wrote, as kept in its log: its standard output to\n"
      .. "stdout and its standard error to stderr, in the order they were written.\n"
      .. "TARGET is job/ID or just ID; any unique prefix of the id will do. A log\n"
      .. "keeps the last 10M of output: when older output was dropped, a note says\n"
      .. "so on stderr (not with -q). With -o json or -o yaml the result is\n"
      .. "{id, namespace, truncated, records: [{stream, time, data}]}.\n"
      .. "\n"
      .. "For a deployment (deploy/NAME, or just NAME) it prints the lines of all\n"
      .. "its instances merged in time order, each prefixed with its instance, as\n"
      .. "in \"[api-2] GET / 200\": stdout lines to stdout, stderr lines to stderr.\n"
      .. "They come from the server (which must be running). --since, --tail and\n"
      .. "--instance choose lines; -f keeps following, across restarts, scale-ups\n"
      .. "and rolling updates, until the deployment is deleted or you press\n"
      .. "Ctrl-C. A deployment keeps 50M of logs in all (PRISN_DEPLOY_LOG_MAX_BYTES\n"
      .. "on the server). With -o json the result is {namespace, deployment,\n"
      .. "lines: [{instance, stream, time, data}]}; with -f, one such line object\n"
      .. "per output line.\n"
      .. "\n"
      .. "A bare word that could be both a job id prefix and a deployment name\n"
      .. "(like \"web\") means the deployment when one of that name exists in the\n"
      .. "namespace, else the job.",
    args = {
      { name = "TARGET", summary = "job/ID or a job id (a unique prefix will do), deploy/NAME or a deployment name",
        required = true,
        complete = function(partial)
          local out = {}
          local kind, rest = partial:match("^([%a]+)/(.*)$")
          if not kind or DEPLOY_KINDS[kind] then
            local prefix = kind and (kind .. "/") or ""
            for _, name in ipairs(complete_deployment(rest or partial)) do
              out[#out + 1] = { prefix .. name, "deployment" }
            end
          end
          if not kind or JOB_KINDS[kind] then
            local prefix = kind and (kind .. "/") or ""
            for _, c in ipairs(job_cli.complete_job_id(rest or partial)) do
              out[#out + 1] = { prefix .. c[1], c[2] }
            end
          end
          return out
        end },
    },
    flags = {
      { name = "stream", type = "string", values = { "all", "stdout", "stderr" }, default = "all",
        placeholder = "STREAM", summary = "Which output to show: all, stdout or stderr" },
      { name = "tail", type = "int", placeholder = "N",
        summary = "Show only the last N lines (of all instances together, for a deployment)" },
      { name = "since", type = "string", placeholder = "WHEN",
        summary = "Deployments: only lines since a duration ago (1h, 30m) or a time (2026-11-26T18:46:00Z)" },
      { name = "instance", type = "int", placeholder = "N",
        summary = "Deployments: only instance N (3 for api-3)" },
      { name = "timestamps", type = "bool",
        summary = "Start each line with the time it was written (ISO 8601, UTC)" },
      { name = "follow", short = "f", type = "bool",
        summary = "Keep printing new output: until a job ends, or a deployment is deleted" },
    },
    examples = {
      { "prisn logs job/01kaxq3v2m7r", "Everything job 01kaxq3v2m7r printed" },
      { "prisn logs 01kax --tail 20", "The last 20 lines, by a prefix of the id" },
      { "prisn logs job/01kax --stream stderr --timestamps", "Only its errors, with times" },
      { "prisn logs -f job/01kax", "Follow a detached job's output until it ends" },
      { "prisn logs api --since 1h", "What deployment api's instances printed in the last hour" },
      { "prisn logs deploy/api -f --tail 100", "The last 100 lines of api, then follow it" },
      { "prisn logs api --instance 2 --timestamps", "Only instance api-2, with times" },
    },
    handler = handler,
  },
}
