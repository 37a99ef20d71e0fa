-- Benchmark of isolation levels: `prisn run hello.sh` at level 0, 1, 2 and
-- 3, against bubblewrap running the same script in comparable sandboxes: new
-- PID and mount namespaces and a fresh /proc (level 1); plus a minimal root —
-- /usr read-only, the /bin, /lib… symlinks, a few /etc files, the script's
-- folder read-only, the working directory writable, tmpfs /tmp, a minimal
-- /dev — for level 2; --unshare-net for level 3.
--
--   build/prisn lua tests/bench/isolation.lua [ROUNDS]
--
-- Interleaved rounds, medians. Budgets from issue 4: level 1 adds < 5 ms and
-- level 2 < 15 ms to level 0. Needs namespaces (root here) and, for the
-- comparison, bwrap (Debian bubblewrap).
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local median = common.median

local ROUNDS = tonumber(arg[1]) or 40
local PRISN = arg[-1] or uv.exepath()

local dir = assert(uv.fs_mkdtemp("/tmp/prisn-bench-iso-XXXXXX"))
local home = dir .. "/home"
local script = dir .. "/hello.sh"
local f = assert(io.open(script, "w"))
f:write("echo hello\n")
f:close()
local env = "PRISN_HOME=" .. home .. " "
local bwrap = uv.fs_access("/usr/bin/bwrap", "X") and "/usr/bin/bwrap" or nil

local function time_ms(cmd)
  local t = uv.hrtime()
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok, "failed: " .. cmd)
  return (uv.hrtime() - t) / 1e6
end

local cases = {
  { "sh hello.sh", "/bin/sh " .. script },
  { "prisn level 0", env .. PRISN .. " run -q --isolation 0 " .. script },
  { "prisn level 1", env .. PRISN .. " run -q --isolation 1 " .. script },
  { "prisn level 2", env .. PRISN .. " run -q --isolation 2 " .. script },
  { "prisn level 3", env .. PRISN .. " run -q --isolation 3 " .. script },
}
if bwrap then
  cases[#cases + 1] = { "bwrap pid+mnt", bwrap .. " --dev-bind / / --unshare-pid --proc /proc /bin/sh " .. script }
  cases[#cases + 1] = { "bwrap pid+mnt+net",
    bwrap .. " --dev-bind / / --unshare-pid --unshare-net --proc /proc /bin/sh " .. script }
  local root = { bwrap, "--ro-bind /usr /usr" }
  for _, name in ipairs({ "bin", "sbin", "lib", "lib32", "lib64" }) do
    local target = uv.fs_readlink("/" .. name)
    if target then root[#root + 1] = "--symlink " .. target .. " /" .. name end
  end
  for _, name in ipairs({ "passwd", "group", "resolv.conf", "hosts", "nsswitch.conf", "ld.so.cache" }) do
    if uv.fs_stat("/etc/" .. name) then root[#root + 1] = "--ro-bind /etc/" .. name .. " /etc/" .. name end
  end
  -- /tmp first: the script's folder (under /tmp here) is bound on top of it.
  root[#root + 1] = "--tmpfs /tmp --dev /dev --proc /proc --bind " .. dir .. " " .. dir
    .. " --unshare-pid --chdir " .. dir .. " /bin/sh " .. script
  cases[#cases + 1] = { "bwrap minimal root", table.concat(root, " ") }
end

for _, c in ipairs(cases) do time_ms(c[2]) end -- warm up (and create PRISN_HOME)
local samples = {}
for _ = 1, ROUNDS do
  for i, c in ipairs(cases) do
    samples[i] = samples[i] or {}
    table.insert(samples[i], time_ms(c[2]))
  end
end
local m = {}
for i, c in ipairs(cases) do
  m[c[1]] = median(samples[i])
  print(string.format("%-20s median %7.2f ms", c[1], m[c[1]]))
end
print(string.format("level 1 - level 0:   %+.2f ms (budget < 5 ms)", m["prisn level 1"] - m["prisn level 0"]))
print(string.format("level 2 - level 0:   %+.2f ms (budget < 15 ms)", m["prisn level 2"] - m["prisn level 0"]))
print(string.format("level 3 - level 0:   %+.2f ms", m["prisn level 3"] - m["prisn level 0"]))
if bwrap then
  print(string.format("bwrap overhead over sh: %+.2f ms (pid+mnt), %+.2f ms (+net)",
    m["bwrap pid+mnt"] - m["sh hello.sh"], m["bwrap pid+mnt+net"] - m["sh hello.sh"]))
  print(string.format("sandbox cost ratio, prisn level 1 (over level 0) / bwrap (over sh): %.2f",
    (m["prisn level 1"] - m["prisn level 0"]) / (m["bwrap pid+mnt"] - m["sh hello.sh"])))
  print(string.format("bwrap minimal root over sh: %+.2f ms; prisn level 2 over level 0: %+.2f ms; ratio %.2f",
    m["bwrap minimal root"] - m["sh hello.sh"], m["prisn level 2"] - m["prisn level 0"],
    (m["prisn level 2"] - m["prisn level 0"]) / (m["bwrap minimal root"] - m["sh hello.sh"])))
end
os.execute("rm -rf " .. dir)
