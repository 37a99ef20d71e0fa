-- prisn.exec.job_host: the job host's pipe protocol, described and spoken
-- here once; its three ends are the modules of this folder.
--
-- A server job runs in a runner process of its own, which outlives a crashed
-- server (prisn.exec.job_runner). Exec'ing a fresh `prisn __job-run ID` for
-- each job costs an exec, a Lua start and module loading: about 4 ms before
-- the job's own script starts. The server instead starts one `prisn
-- __job-host` (host.lua), a warm prisn that forks the runners, and talks to
-- it through client.lua; each runner reports its job back (report.lua).
--
-- The lines, each ending in "\n" (the host's stdin and stdout are pipes to
-- the server):
--
--   server -> host   run <id> <json>       { namespace, log_path, spec }:
--                                          all the runner needs to start
--   host -> server   <id> <pid>            the runner's pid
--                    <id> error <message>  no runner could be forked
--   host -> runner   <id> <json>           on the spare's own pipe
--   runner -> server started <id> {"pid":…,"started_at":…}
--                    update <id> {"deps_source":…,"env_key":…}
--                    done <id> {"state":…,"reason":…,"exit_code":…,"signal":…,
--                               "message":…,"finished_at":…,"pid":…,"started_at":…}
--
-- The runners' reports go on a copy of the host's stdout, so the server
-- reads answers and reports on one pipe and tells them apart by their first
-- word (a report's kind is lower-case letters; a job id has digits). Each
-- report is one write() of at most MAX_LINE bytes, so lines from many
-- runners never interleave.
local cjson = require("cjson")

local M = {}

-- Atomic pipe writes on Linux and the BSDs hold at least 512 bytes; Linux's
-- PIPE_BUF is 4096. A longer report (a long failure message) is not sent:
-- the runner records it in state.db itself.
M.MAX_LINE = 4096

--- The kinds of report a runner sends.
M.REPORTS = { started = true, update = true, done = true }

--- Where a job host writes its pid: $PRISN_HOME/run/job-host.pid.
function M.pid_path(home)
  return home .. "/run/job-host.pid"
end

--- server -> host: the line asking for a runner for job `id`, `assignment`
-- a JSON object.
function M.run_line(id, assignment)
  return "run " .. id .. " " .. assignment .. "\n"
end

--- The id and JSON of a run line (without its "\n"), or nil.
function M.parse_run(line)
  return line:match("^run (%S+) (.+)$")
end

--- host -> server: the answer for job `id`: its runner's pid, or the
-- message saying why there is none.
function M.answer_line(id, pid, message)
  return id .. " " .. (pid and tostring(pid) or ("error " .. tostring(message))) .. "\n"
end

--- The id of an answer line, then the pid or nil and the message; nil when
-- the line is no answer.
function M.parse_answer(line)
  local id, rest = line:match("^(%S+) (.*)$")
  if not id then return nil end
  local pid = math.tointeger(tonumber(rest))
  if pid and pid > 0 then return id, pid end
  return id, nil, (rest:gsub("^error ", ""))
end

--- host -> runner: job `id`'s assignment (JSON), on the spare's pipe.
function M.assignment_line(id, assignment)
  return id .. " " .. assignment .. "\n"
end

--- The id and JSON of an assignment line, or nil.
function M.parse_assignment(line)
  return line:match("^(%S+) (.+)$")
end

--- The whole lines of `text` (without their "\n") and what follows the
-- last one. Found with plain searches: a pattern anchored at the end
-- (`[^\n]*$`) is tried from every position and backtracks over each line,
-- which cost the server ~60 µs per report line.
function M.split_lines(text)
  local lines, at = {}, 1
  while true do
    local nl = text:find("\n", at, true)
    if not nl then break end
    lines[#lines + 1] = text:sub(at, nl - 1)
    at = nl + 1
  end
  return lines, text:sub(at)
end

--- runner -> server: a report of `kind` on job `id`.
function M.report_line(kind, id, fields)
  return kind .. " " .. id .. " " .. cjson.encode(fields) .. "\n"
end

--- The fields of a report line ("<kind> <id> <json>"): kind, id and the
-- decoded object; nil for anything else.
function M.parse_report(line)
  local kind, id, json = line:match("^(%l+) (%S+) ({.*})$")
  if not kind then return nil end
  local ok, fields = pcall(cjson.decode, json)
  if not ok or type(fields) ~= "table" then return nil end
  return kind, id, fields
end

return M
