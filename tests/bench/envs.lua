-- Benchmark of a cold Python dependency environment: built by pip against
-- made from prisn's cache of unpacked wheels (issue 17: <= 150 ms).
--
--   build/prisn lua tests/bench/envs.lua [ROUNDS]
--
-- A script needing one local pure-Python wheel (offline: PIP_NO_INDEX and
-- PIP_FIND_LINKS, a wheel written here), in a temporary PRISN_HOME removed
-- at the end. Each round, interleaved:
-- - cold with pip: the environment and the remembered resolutions removed,
--   then the first `prisn run dep.py` (venv + pip install + filling the
--   cache);
-- - cold from the cache: only the environment removed (`prisn env prune`),
--   then the first `prisn run dep.py` (the venv copied from the
--   interpreter's template + links, no pip);
-- - the same with the interpreter's venv template removed too (made again
--   by `python -m venv`: the first cold environment of a new interpreter).
-- Then the parts of the pip build, each timed alone with the interpreter
-- prisn uses: `python -m venv --without-pip`, pip's start (`pip --version`),
-- `pip install --dry-run` (start + resolver) and `pip install` into a
-- fresh venv; and the floor: the venv's python running the script.
-- Prints medians and the ratio; the findings are in envs-report.md.
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local sh, write, median = common.sh, common.write, common.median

local ROUNDS = tonumber(arg[1]) or 10
local PRISN = arg[-1] or uv.exepath()

local tmp = assert(uv.fs_mkdtemp("/tmp/prisn-bench-XXXXXX"))
local home = tmp .. "/home"
local env = {}
for k, v in pairs(uv.os_environ()) do
  if k ~= "PRISN_DEV" and not k:match("^PIP_") then env[#env + 1] = k .. "=" .. v end
end
env[#env + 1] = "PRISN_HOME=" .. home
env[#env + 1] = "PIP_NO_INDEX=1"
env[#env + 1] = "PIP_FIND_LINKS=" .. tmp .. "/wheels"
env[#env + 1] = "PIP_CONFIG_FILE=/dev/null"
env[#env + 1] = "PIP_CACHE_DIR=" .. tmp .. "/pip-cache"

local function time_once(file, args) return common.time_run(file, args, env, true) end

-- One local pure-Python wheel, then a script that needs it.
local python = sh("python3 -c 'import sys; print(sys.executable)'")
common.write_bench_wheel(tmp, python)
local script = tmp .. "/dep.py"
write(script, "# /// script\n# dependencies = [\"benchdep\"]\n# ///\nimport benchdep\nprint(benchdep.VALUE)\n")

local function cold_with_pip()
  sh("rm -rf " .. home .. "/envs " .. home .. "/wheels/shared/resolutions")
  return time_once(PRISN, { "run", script })
end

local function cold_new_template()
  sh("rm -rf " .. home .. "/envs " .. home .. "/wheels/shared/venvs")
  return time_once(PRISN, { "run", script })
end

local function cold_from_cache()
  time_once(PRISN, { "env", "prune", "--older-than", "0", "-q" })
  return time_once(PRISN, { "run", script })
end

cold_with_pip() -- warm prisn's interpreter cache and the page cache
local with_pip, from_cache, new_template = {}, {}, {}
for i = 1, ROUNDS do
  if i % 2 == 0 then
    with_pip[#with_pip + 1] = cold_with_pip()
    from_cache[#from_cache + 1] = cold_from_cache()
    new_template[#new_template + 1] = cold_new_template()
  else
    new_template[#new_template + 1] = cold_new_template()
    from_cache[#from_cache + 1] = cold_from_cache()
    with_pip[#with_pip + 1] = cold_with_pip()
  end
end
local venv = sh(string.format("ls -d %s/envs/python3/*/ | head -1", home)):gsub("/$", "")
local floor = {}
for _ = 1, ROUNDS do floor[#floor + 1] = time_once(venv .. "/bin/python", { script }) end

-- The parts of a pip build, alone.
local real = sh(venv .. "/bin/python -c 'import sys; print(sys._base_executable)'")
local parts = { venv = {}, pip_start = {}, dry_run = {}, install = {} }
for i = 1, math.max(3, ROUNDS // 2) do
  local v = tmp .. "/venv-" .. i
  parts.venv[#parts.venv + 1] = time_once(real, { "-m", "venv", "--without-pip", v })
  parts.pip_start[#parts.pip_start + 1] = time_once(real, { "-m", "pip", "--version" })
  parts.dry_run[#parts.dry_run + 1] = time_once(real, { "-m", "pip", "--python", v .. "/bin/python", "install",
    "--disable-pip-version-check", "--dry-run", "--quiet", "benchdep" })
  parts.install[#parts.install + 1] = time_once(real, { "-m", "pip", "--python", v .. "/bin/python", "install",
    "--disable-pip-version-check", "--quiet", "benchdep" })
end

local a, b = median(with_pip), median(from_cache)
io.write(string.format("cold environment benchmark: medians of %d interleaved rounds (%s)\n", ROUNDS, real))
io.write(string.format("%-44s %8.1f ms\n", "prisn run dep.py, cold, with pip", a))
io.write(string.format("%-44s %8.1f ms   x%.2f of pip, %+.1f ms over the floor   budget 150 ms\n",
  "prisn run dep.py, cold, from the wheel cache", b, b / a, b - median(floor)))
io.write(string.format("%-44s %8.1f ms   x%.2f of pip\n", "  the same, venv template made first",
  median(new_template), median(new_template) / a))
io.write(string.format("%-44s %8.1f ms\n", "floor: the venv's python runs dep.py", median(floor)))
io.write("parts of the pip build, each alone:\n")
io.write(string.format("  %-42s %8.1f ms\n", "python -m venv --without-pip", median(parts.venv)))
io.write(string.format("  %-42s %8.1f ms\n", "python -m pip --version (pip's start)", median(parts.pip_start)))
io.write(string.format("  %-42s %8.1f ms\n", "pip install --dry-run (start + resolve)", median(parts.dry_run)))
io.write(string.format("  %-42s %8.1f ms\n", "pip install into a fresh venv", median(parts.install)))
sh("rm -rf " .. tmp)
