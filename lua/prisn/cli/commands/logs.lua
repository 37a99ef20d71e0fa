-- `prisn logs [TARGET]`: the output a job, a deployment or a whole namespace
-- printed.
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
-- Without a TARGET it prints everything the namespace's workloads printed
-- (GET /api/v1/namespaces/{ns}/logs): deployments' instances, jobs and cron
-- runs merged in time order, each line prefixed with its source ("web-1 |",
-- "job/01kax |"), from the last hour unless --since says otherwise.
--
-- Followed output with -o json is one JSON object a line, the same for
-- every kind: {time, source, stream, line} (line without its newline).
--
-- -f of a deployment or a namespace outlives the server: when the stream
-- breaks without its end record (the server was killed, or is restarting)
-- it says so on stderr, tries again every RECONNECT_MS, and goes on where
-- it left off (prisn.cli.log_resume); instances kept running and their
-- output was kept meanwhile (docs/SERVER.md).
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

-- How often a followed stream whose server went away tries again.
local RECONNECT_MS = 250

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

-- The streamed line object of -f -o json: the same fields for every kind
-- of source, the line without its newline.
local function line_object(source, stream, time_ms, data)
  return { time = clock.iso_time(time_ms), source = source, stream = stream, line = (data:gsub("\n$", "")) }
end

-- Writes a line object as one line of JSON, its fields in a fixed order
-- (prisn.output.json's strings: UTF-8 kept, invalid bytes replaced).
local function write_json_line(obj)
  local quote = require("prisn.output.json").quote
  io.stdout:write(string.format('{"time":%s,"source":%s,"stream":%s,"line":%s}\n', quote(obj.time),
    quote(obj.source), quote(obj.stream), quote(obj.line)))
  io.stdout:flush()
end

-- GETs `path` from the server as NDJSON and calls on_record(record) for
-- each line, until the stream ends. An error the server sent as the body
-- is raised as that error.
local function stream_ndjson(ctx, path, follow, on_record)
  local pending, head = "", ""
  local c = require("prisn.client").connect(ctx)
  local ok, err = pcall(c.request, c, "GET", path, nil, {
    timeout_ms = follow and 7 * 24 * 3600 * 1000 or 600 * 1000,
    on_chunk = function(chunk)
      if #head < 65536 then head = head .. chunk end
      pending = pending .. chunk
      local pos = 1
      while true do
        local nl = pending:find("\n", pos, true)
        if not nl then break end
        local decoded, rec = pcall(cjson.decode, pending:sub(pos, nl - 1))
        if decoded and type(rec) == "table" then on_record(rec) end
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
end

-- The query string of the reading flags (since, tail, follow, instance);
-- `resume_ms`: since then instead of --since and --tail (a stream resumed).
local function query_of(flags, resume_ms)
  local query = {}
  if flags.follow then query[#query + 1] = "follow=1" end
  if resume_ms then
    query[#query + 1] = "since=" .. escape(clock.iso_time(resume_ms))
  else
    if flags.since then query[#query + 1] = "since=" .. escape(flags.since) end
    if flags.tail then query[#query + 1] = "tail=" .. flags.tail end
  end
  if flags.instance then query[#query + 1] = "instance=" .. flags.instance end
  -- The server takes the tail of the stream asked for, not of both.
  if flags.stream and flags.stream ~= "all" then query[#query + 1] = "stream=" .. flags.stream end
  return #query > 0 and ("?" .. table.concat(query, "&")) or ""
end

-- Writes one line of output with its prefix ("[api-2] " or "web-1 | ") and
-- time, to stdout or stderr as it was written.
local function write_line(prefix, stream, time_ms, data, timestamps)
  local f = stream == "stderr" and io.stderr or io.stdout
  data = tostring(data)
  f:write(prefix, timestamps and (clock.iso_time(time_ms) .. " ") or "", data, data:sub(-1) == "\n" and "" or "\n")
  f:flush()
end

-- Whether error `err` of a followed stream says the server is gone (for
-- now): not an answer of the server (nobody listens, the connection broke
-- mid-stream) or a 503 (not ready yet).
local function server_gone(err)
  if not errors.is(err) then return false end
  if err.http_status then return err.http_status == 503 end
  return true
end

-- Whether `err` says no server listens at all (as opposed to one that went
-- away mid-stream).
local function unreachable(err)
  return errors.is(err) and not err.http_status
    and (err.code == "no_server" or err.code == "ECONNREFUSED" or err.code == "ENOENT")
end

-- Waits `ms` (inside a task or not).
local function pause(ms)
  local async = require("prisn.async")
  local co, main = coroutine.running()
  if co and not main then return async.sleep(ms) end
  async.main(async.sleep, ms)
end

-- Streams the log lines of `base` (a path without its query) to
-- on_record(rec); with -f, across the server going away and coming back
-- (see the header). `flags`: the reading flags (default ctx.flags). Returns
-- the end record, if one came.
local function stream_lines(ctx, base, on_record, flags)
  flags = flags or ctx.flags
  if not flags.follow then
    local final
    stream_ndjson(ctx, base .. query_of(flags), false, function(rec)
      if rec["end"] then final = rec else on_record(rec) end
    end)
    return final
  end
  local resume = require("prisn.cli.log_resume").new()
  local path, lost, ever = base .. query_of(flags), false, false
  while true do
    local final, connected = nil, false
    local ok, err = pcall(stream_ndjson, ctx, path, true, function(rec)
      if not connected and lost and not ctx.globals.quiet then
        io.stderr:write("prisn: the server is back; following again\n")
      end
      connected, lost = true, false
      if rec["end"] then final = rec elseif resume:fresh(rec) then on_record(rec) end
    end)
    if final then return final end
    -- A server that was never there is an error, as without -f.
    if not ok and (not server_gone(err) or (not ever and unreachable(err))) then error(err, 0) end
    ever = true
    if not lost and not ctx.globals.quiet then
      io.stderr:write("prisn: lost the server; following again when it is back (Ctrl-C stops)\n")
    end
    lost = true
    pause(RECONNECT_MS)
    local since = resume:resume()
    path = base .. (since and query_of(flags, since) or query_of(flags))
  end
end

-- Says how a followed stream ended (from its last record), when it did not
-- just run out: 1 when the server is stopping.
local function report_end(final, what)
  if not final then return 0 end
  if final.reason == "deleted" then
    io.stderr:write(string.format("prisn: %s was deleted\n", what))
  elseif final.reason == "server_stopping" then
    io.stderr:write("prisn: the server is stopping; no more logs\n")
    return 1
  end
  return 0
end

-- Prints a deployment's lines (through the API) until the stream ends.
local function deployment_logs(ctx, name)
  local flags, globals = ctx.flags, ctx.globals
  local iso = clock.iso_time
  if flags.instance and flags.instance < 1 then
    errors.usage("--instance must be an instance number of 1 or more, got " .. flags.instance,
      "the instances of " .. name .. " are " .. name .. "-1, " .. name .. "-2, ...: give the number")
  end
  local client = require("prisn.client")
  local ns = client.namespace(ctx)
  local base = string.format("/api/v1/namespaces/%s/deployments/%s/logs", ns, name)

  local text = globals.output == "text"
  local collected = require("prisn.output").array({})
  local final = stream_lines(ctx, base, function(rec)
    if flags.stream ~= "all" and rec.stream ~= flags.stream then return end
    if text then
      write_line("[" .. tostring(rec.instance) .. "] ", rec.stream, rec.time_ms, rec.data, flags.timestamps)
    elseif flags.follow then
      write_json_line(line_object(rec.instance, rec.stream, rec.time_ms, rec.data))
    else
      collected[#collected + 1] = { instance = rec.instance, stream = rec.stream, time = iso(rec.time_ms),
        data = rec.data }
    end
  end)
  if not text and not flags.follow then
    ctx.out:emit({ namespace = ns, deployment = name, lines = collected })
  end
  if globals.quiet then return 0 end
  return report_end(final, "deployment " .. name)
end

-- Prints the lines of everything in the namespace (through the API), each
-- prefixed with its source, padded to the widest source seen so far.
local function namespace_logs(ctx)
  local flags, globals = ctx.flags, ctx.globals
  if flags.instance then
    errors.usage("--instance needs a deployment", "e.g. 'prisn logs web --instance 2'")
  end
  local client = require("prisn.client")
  local ns = client.namespace(ctx)
  local since = flags.since or "1h"
  local reading = setmetatable({ since = since }, { __index = flags })
  local text = globals.output == "text"
  local collected, width = require("prisn.output").array({}), 0
  local function print_line(rec)
    local source = tostring(rec.source)
    width = math.max(width, #source)
    write_line(source .. string.rep(" ", width - #source) .. " | ", rec.stream, rec.time_ms, rec.data,
      flags.timestamps)
  end
  local final = stream_lines(ctx, string.format("/api/v1/namespaces/%s/logs", ns), function(rec)
    if flags.stream ~= "all" and rec.stream ~= flags.stream then return end
    if text and flags.follow then
      print_line(rec)
    elseif flags.follow then
      write_json_line(line_object(tostring(rec.source), rec.stream, rec.time_ms, rec.data))
    else
      collected[#collected + 1] = text and rec or line_object(tostring(rec.source), rec.stream, rec.time_ms, rec.data)
    end
  end, reading)
  if not text and not flags.follow then
    ctx.out:emit({ namespace = ns, since = since, lines = collected })
  elseif text and not flags.follow then
    -- All of it known: every prefix padded to the widest.
    for _, rec in ipairs(collected) do width = math.max(width, #tostring(rec.source)) end
    for _, rec in ipairs(collected) do print_line(rec) end
  end
  if text and #collected == 0 and not flags.follow and not globals.quiet then
    io.stderr:write(string.format("No output in namespace %s since %s%s.\n", ns, since,
      flags.stream ~= "all" and (" on " .. flags.stream) or ""))
  end
  if globals.quiet then return 0 end
  return report_end(final, "namespace " .. ns)
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

-- Cuts a job's streamed chunks into lines for -f -o json: complete lines
-- go to emit(stream, time_ms, line) as they come, the rest at flush().
local function line_splitter(emit)
  local partial = {}
  local splitter = {}
  function splitter.add(stream, time_ms, data)
    local p = partial[stream] or { time_ms = time_ms, text = "" }
    p.text = p.text .. data
    partial[stream] = p
    while true do
      local nl = p.text:find("\n", 1, true)
      if not nl then break end
      emit(stream, p.time_ms, p.text:sub(1, nl))
      p.text, p.time_ms = p.text:sub(nl + 1), time_ms
    end
    if p.text == "" then partial[stream] = nil end
  end
  function splitter.flush()
    for _, stream in ipairs({ "stdout", "stderr" }) do
      if partial[stream] then emit(stream, partial[stream].time_ms, partial[stream].text) end
    end
    partial = {}
  end
  return splitter
end

-- Follows a job through the server's API: its stored output (the last
-- --tail lines, since --since), then live output until the job ends.
local function follow(ctx, id)
  local flags = ctx.flags
  local client = require("prisn.client")
  local path = string.format("/api/v1/namespaces/%s/jobs/%s/logs", client.namespace(ctx), id) .. query_of(flags)
  local json = ctx.globals.output ~= "text"
  local splitter = line_splitter(function(stream, time_ms, line)
    write_json_line(line_object("job/" .. id, stream, time_ms, line))
  end)
  local final
  stream_ndjson(ctx, path, true, function(rec)
    if rec["end"] then final = rec return end
    if flags.stream ~= "all" and rec.stream ~= flags.stream then return end
    if json then return splitter.add(rec.stream, rec.time_ms or clock.now_ms(), tostring(rec.data)) end
    local f = rec.stream == "stderr" and io.stderr or io.stdout
    if flags.timestamps then f:write(clock.iso_time(rec.time_ms or clock.now_ms()), " ") end
    f:write(tostring(rec.data))
    f:flush()
  end)
  splitter.flush()
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
  if ctx.flags.follow and ctx.globals.output == "yaml" then
    errors.usage("-f cannot print YAML", "use -o json with -f: one JSON object per line")
  end
  local since_ms
  if ctx.flags.since then
    local err
    since_ms, err = require("prisn.store.events").parse_since(ctx.flags.since)
    if not since_ms then errors.usage("--since: " .. err, "e.g. --since 1h or --since 2026-11-26T18:46:00Z") end
  end
  if ctx.args.TARGET == nil then return namespace_logs(ctx) end
  -- `prisn logs deploy web`, as kubectl's KIND NAME: the same as deploy/web.
  local target = ctx.args.NAME and (ctx.args.TARGET .. "/" .. ctx.args.NAME) or ctx.args.TARGET
  local kind, id = parse_target(target)
  if kind == "either" then
    kind = deployment_exists(ctx, job_cli.namespace(ctx), id) and "deployment" or "job"
  end
  if kind == "deployment" then return deployment_logs(ctx, id) end
  if ctx.flags.instance ~= nil then
    errors.usage(string.format("--instance is for deployment logs, and %s names a job", target),
      "'prisn logs deploy/NAME --instance N' names a deployment's instance")
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
  local by_line = tail ~= nil or ctx.flags.timestamps or since_ms ~= nil
  if by_line then chunks = logs.lines(chunks) end
  if since_ms then
    local kept = {}
    for _, c in ipairs(chunks) do
      if c.time_ms and c.time_ms >= since_ms then kept[#kept + 1] = c end
    end
    chunks = kept
  end
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
    summary = "Show the output of a job, a deployment, or everything in the namespace",
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
      .. "Ctrl-C; when the server goes away (killed, restarting, upgraded) it\n"
      .. "waits for it and goes on where it left off, no line twice. A\n"
      .. "deployment keeps 50M of logs in all (PRISN_DEPLOY_LOG_MAX_BYTES\n"
      .. "on the server). With -o json the result is {namespace, deployment,\n"
      .. "lines: [{instance, stream, time, data}]}.\n"
      .. "\n"
      .. "Without a TARGET it prints everything the namespace's workloads printed\n"
      .. "in the last hour (or --since): its deployments' instances, jobs and cron\n"
      .. "runs, merged in time order, each line prefixed with where it comes from\n"
      .. "(\"web-1 | ...\", \"job/01kaxq3v2m7r | ...\", \"cron/nightly/ID | ...\").\n"
      .. "-f follows new output, of workloads started later too. With -o json\n"
      .. "the result is {namespace, since, lines: [{time, source, stream, line}]}.\n"
      .. "\n"
      .. "--tail N, --since and --stream work with -f as without: the last N lines\n"
      .. "kept, then what comes. With -f and -o json the output is one JSON object\n"
      .. "a line, {time, source, stream, line}, whatever the target.\n"
      .. "\n"
      .. "A bare word that could be both a job id prefix and a deployment name\n"
      .. "(like \"web\") means the deployment when one of that name exists in the\n"
      .. "namespace, else the job.",
    args = {
      { name = "TARGET", summary = "job/ID or a job id (a unique prefix will do), deploy/NAME or a deployment name; "
        .. "none: the whole namespace",
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
      { name = "NAME", summary = "With TARGET a kind (deploy, job): the name or id, as kubectl takes it" },
    },
    flags = {
      { name = "stream", type = "string", values = { "all", "stdout", "stderr" }, default = "all",
        placeholder = "STREAM", summary = "Which output to show: all, stdout or stderr" },
      { name = "tail", type = "int", placeholder = "N",
        summary = "Show only the last N lines (of all sources together, for a deployment or the namespace)" },
      { name = "since", type = "string", placeholder = "WHEN",
        summary = "Only lines since a duration ago (1h, 30m) or a time (2026-11-26T18:46:00Z)" },
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
      { "prisn logs deploy api --tail 20", "The same KIND NAME form kubectl takes" },
      { "prisn logs api --instance 2 --timestamps", "Only instance api-2, with times" },
      { "prisn logs --since 1h", "What every deployment, job and cron run of the namespace printed in the last hour" },
      { "prisn logs -f --tail 20 job/01kax", "The last 20 lines of a job, then follow it" },
      { "prisn logs -f -o json", "Follow the whole namespace as JSON lines: {time, source, stream, line}" },
    },
    handler = handler,
  },
}
