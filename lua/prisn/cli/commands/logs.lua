-- `prisn logs job/ID`: the output a job printed, as it was kept in its log
-- (prisn.logs). What the job wrote to stdout goes to stdout and what it wrote
-- to stderr to stderr, in the order it was written, byte for byte; --tail and
-- --timestamps work line by line instead.
--
-- Only jobs keep logs so far; `deploy/NAME` and other kinds come with the
-- resources they name. Like `prisn get`, this command only reads.
local errors = require("prisn.error")
local job_cli = require("prisn.cli.jobs")

local FORMS_HINT = "use 'prisn logs job/ID' or just 'prisn logs ID'; 'prisn get jobs' lists the ids"

-- The job id named by TARGET ("job/ID", "jobs/ID" or a bare ID). Raises a
-- usage error for another kind or an empty id.
local function parse_target(target)
  local kind, name = target:match("^([^/]*)/(.*)$")
  if not kind then kind, name = "job", target end
  if kind ~= "job" and kind ~= "jobs" then
    errors.usage(string.format("cannot show logs of '%s': only job logs are kept so far", target), FORMS_HINT)
  end
  if name == "" or name:find("/", 1, true) then
    errors.usage(string.format("'%s' does not name a job", target), FORMS_HINT)
  end
  return name
end

-- Writes `chunks` to the terminal, stdout chunks to stdout and stderr chunks
-- to stderr, flushing when the stream changes so the order survives when
-- both go to the same terminal.
local function write_chunks(chunks, timestamps)
  local iso = require("prisn.store.jobs").iso_time
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
  local jobs = require("prisn.store.jobs")
  local output = require("prisn.output")
  local tail = ctx.flags.tail
  if tail and tail < 0 then errors.usage("--tail must be 0 or more, got " .. tail) end
  local id = parse_target(ctx.args.TARGET)
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
      list[i] = { stream = c.stream, time = jobs.iso_time(c.time_ms), data = c.data }
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
    summary = "Show the output of a job",
    description = "Prints what job ID wrote, as kept in its log: its standard output to\n"
      .. "stdout and its standard error to stderr, in the order they were written.\n"
      .. "TARGET is job/ID or just ID; any unique prefix of the id will do. A log\n"
      .. "keeps the last 10M of output: when older output was dropped, a note says\n"
      .. "so on stderr (not with -q). With -o json or -o yaml the result is\n"
      .. "{id, namespace, truncated, records: [{stream, time, data}]}.",
    args = {
      { name = "TARGET", summary = "job/ID, or a job id (a unique prefix will do)", required = true,
        complete = function(partial)
          local prefix = partial:match("^jobs?/") or ""
          local out = {}
          for _, c in ipairs(job_cli.complete_job_id(partial:sub(#prefix + 1))) do
            out[#out + 1] = { prefix .. c[1], c[2] }
          end
          return out
        end },
    },
    flags = {
      { name = "stream", type = "string", values = { "all", "stdout", "stderr" }, default = "all",
        placeholder = "STREAM", summary = "Which output to show: all, stdout or stderr" },
      { name = "tail", type = "int", placeholder = "N",
        summary = "Show only the last N lines" },
      { name = "timestamps", type = "bool",
        summary = "Start each line with the time it was written (ISO 8601, UTC)" },
      { name = "follow", short = "f", type = "bool",
        summary = "Keep printing what the job writes until it ends (through the server)" },
    },
    examples = {
      { "prisn logs job/01kaxq3v2m7r", "Everything job 01kaxq3v2m7r printed" },
      { "prisn logs 01kax --tail 20", "The last 20 lines, by a prefix of the id" },
      { "prisn logs job/01kax --stream stderr --timestamps", "Only its errors, with times" },
      { "prisn logs -f job/01kax", "Follow a detached job's output until it ends" },
    },
    handler = handler,
  },
}

