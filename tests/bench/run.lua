-- Benchmark of `prisn run` against running the interpreter directly.
--
--   build/prisn lua tests/bench/run.lua [ROUNDS]
--
-- For python3, node and bash: a hello script run by the real interpreter
-- binary (not a version manager's shim) and by `prisn run`, interleaved, so
-- both see the same machine. Then a script with one dependency: its cached
-- environment run by `prisn run` against the venv's python directly, and a
-- cold build of that environment from a local wheel. Prints medians and the
-- difference; budgets from issue 17: +3 ms over python3 and bash, +4 ms over
-- the venv's python (issue 3's were +10, +10, +10, +20 ms, 1.5 s). Also
-- `prisn version` against bash (what starting prisn at all costs) and the
-- bash script at isolation 0 (what the sandbox costs).
-- Compare two builds by running this file with each binary, alternately
-- (tests/bench/run-report.md).
-- Runs offline (PIP_NO_INDEX with a wheel built here) in a temporary
-- PRISN_HOME that is removed at the end.
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local sh, write, median = common.sh, common.write, common.median

local ROUNDS = tonumber(arg[1]) or 30
local PRISN = arg[-1] or uv.exepath()

local tmp = assert(uv.fs_mkdtemp("/tmp/prisn-bench-XXXXXX"))
local home = tmp .. "/home"
local env = {}
for k, v in pairs(uv.os_environ()) do
  if k ~= "PRISN_DEV" then env[#env + 1] = k .. "=" .. v end
end
env[#env + 1] = "PRISN_HOME=" .. home
env[#env + 1] = "PIP_NO_INDEX=1"
env[#env + 1] = "PIP_FIND_LINKS=" .. tmp .. "/wheels"

local function time_once(file, args) return common.time_run(file, args, env, true) end

-- Runs both commands ROUNDS times, interleaved; returns their medians.
local function compare(a, b, rounds)
  time_once(a[1], a[2]) -- warm caches (and prisn's interpreter cache)
  time_once(b[1], b[2])
  local ta, tb = {}, {}
  for i = 1, rounds or ROUNDS do
    if i % 2 == 0 then
      ta[#ta + 1] = time_once(a[1], a[2])
      tb[#tb + 1] = time_once(b[1], b[2])
    else
      tb[#tb + 1] = time_once(b[1], b[2])
      ta[#ta + 1] = time_once(a[1], a[2])
    end
  end
  return median(ta), median(tb)
end

local rows = {}
local function report(name, base_name, base, with, budget)
  rows[#rows + 1] = string.format("%-26s %-34s %8.1f ms  %8.1f ms  %+7.1f ms  x%.2f   budget %s",
    name, base_name, base, with, with - base, with / base, budget)
end

-- Hello scripts for each interpreter.
write(tmp .. "/hello.py", "print('hello')\n")
write(tmp .. "/hello.js", "console.log('hello')\n")
write(tmp .. "/hello.sh", "echo hello\n")
local python = sh("python3 -c 'import sys; print(sys.executable)'")
local node = sh("command -v node")
local bash = sh("command -v bash")

local function bench_interpreter(name, interp, script, budget)
  if interp == "" then
    rows[#rows + 1] = name .. ": not installed, skipped"
    return
  end
  local base, with = compare({ interp, { script } }, { PRISN, { "run", script } })
  report("run " .. script:match("[^/]+$"), interp, base, with, budget)
end

bench_interpreter("python3", python, tmp .. "/hello.py", "+3 ms")
bench_interpreter("node", node, tmp .. "/hello.js", "+10 ms")
bench_interpreter("bash", bash, tmp .. "/hello.sh", "+3 ms")
do
  local hello = { bash, { tmp .. "/hello.sh" } }
  local base, with = compare(hello, { PRISN, { "run", "--isolation", "0", tmp .. "/hello.sh" } })
  report("run --isolation 0 hello.sh", bash, base, with, "-")
  base, with = compare(hello, { PRISN, { "version" } })
  report("version (starting prisn)", bash .. " hello.sh", base, with, "-")
end

-- One local pure-Python wheel, then a script that needs it.
common.write_bench_wheel(tmp, python)
write(tmp .. "/dep.py",
  "# /// script\n# dependencies = [\"benchdep\"]\n# ///\nimport benchdep\nprint(benchdep.VALUE)\n")

-- Cold builds: prune, then time the first run.
local cold = {}
for _ = 1, math.max(3, ROUNDS // 6) do
  assert(time_once(PRISN, { "env", "prune", "--older-than", "0", "-q" }))
  cold[#cold + 1] = time_once(PRISN, { "run", tmp .. "/dep.py" })
end
local venv = sh(string.format("ls -d %s/envs/python3/*/ | head -1", home)):gsub("/$", "")
local base, with = compare({ venv .. "/bin/python", { tmp .. "/dep.py" } }, { PRISN, { "run", tmp .. "/dep.py" } })
report("run dep.py (cached env)", "venv python", base, with, "+4 ms")
rows[#rows + 1] = string.format("%-26s %-34s %8s     %8.1f ms  (median of %d)   budget 150 ms",
  "run dep.py (cold env)", "one local wheel", "", median(cold), #cold)

io.write(string.format("prisn run benchmark: medians of %d interleaved runs\n", ROUNDS))
io.write(string.format("%-26s %-34s %11s  %11s  %10s  %5s\n", "case", "baseline", "baseline", "prisn", "diff", "ratio"))
for _, row in ipairs(rows) do io.write(row, "\n") end
sh("rm -rf " .. tmp)
