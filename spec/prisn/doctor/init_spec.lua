local doctor = require("prisn.doctor")

local MOUNTINFO_V1 = table.concat({
  "25 30 0:23 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755",
  "26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate",
  "27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
  "28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
  "29 25 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
}, "\n")

local MOUNTINFO_V2 = "26 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate"

-- A machine where everything is fine; each test breaks one thing.
local function healthy()
  local files = {
    ["/proc/self/mountinfo"] = MOUNTINFO_V2,
    ["/sys/fs/cgroup/cgroup.controllers"] = "cpuset cpu io memory pids",
    ["/proc/filesystems"] = "nodev\ttmpfs\nnodev\tproc\nnodev\toverlay\n\text4\n",
  }
  local stats = { ["/home/u/.prisn"] = { type = "directory", mode = tonumber("40700", 8), uid = 1000 } }
  return {
    uname = function() return { sysname = "Linux", release = "6.1.0-18-amd64" } end,
    read_file = function(path) return files[path] end,
    writable = function() return true end,
    probe_namespace = function() return true end,
    which = function(name) return "/usr/bin/" .. name end,
    capture = function(path)
      local versions = { ["/usr/bin/python3"] = "Python 3.11.2\n", ["/usr/bin/node"] = "v18.19.0\n",
        ["/usr/bin/bash"] = "GNU bash, version 5.2.15(1)-release\n" }
      return { code = 0, stdout = versions[path] or "", stderr = "" }
    end,
    stat = function(path) return stats[path] end,
    uid = function() return 1000 end,
    statfs = function() return { bavail = 10 * 1024 * 1024, bsize = 4096 } end,
    check_db = function() return 1 end,
    connect = function() return true end,
    files = files,
    stats = stats,
  }
end

local function find(checks, name)
  for _, c in ipairs(checks) do if c.name == name then return c end end
  error("no check " .. name)
end

describe("prisn.doctor", function()
  it("names every check, in a stable order", function()
    local checks = doctor.run(healthy(), "/home/u/.prisn")
    local names = {}
    for i, c in ipairs(checks) do names[i] = c.name end
    assert.same({ "kernel", "cgroup_v2", "cgroup_v1", "namespace_user", "namespace_pid",
      "namespace_mount", "namespace_net", "isolation_1", "isolation_2", "isolation_3", "python3", "node",
      "bash", "prisn_home", "disk_space", "state_db", "server" }, names)
    assert.same({ ok = 17, warn = 0, fail = 0 }, doctor.summary(checks))
  end)

  it("says which isolation levels work, with a fix for the others", function()
    local p = healthy()
    p.probe_namespace = function(kind)
      if kind == "net" then return nil, "EPERM: unshare(CLONE_NEWNET)" end
      return true
    end
    local checks = doctor.run(p, "/home/u/.prisn")
    assert.equal("ok", find(checks, "isolation_1").status)
    assert.matches("overlayfs", find(checks, "isolation_2").detail)
    local c = find(checks, "isolation_3")
    assert.equal("warn", c.status)
    assert.matches("no net namespace", c.detail)
    assert.is_string(c.fix)
    -- Without user namespaces an unprivileged prisn has no level at all.
    p.probe_namespace = function(kind)
      if kind == "user" then return nil, "EPERM: unshare(CLONE_NEWUSER)" end
      return true
    end
    checks = doctor.run(p, "/home/u/.prisn")
    assert.equal("warn", find(checks, "isolation_1").status)
    assert.matches("no user namespace", find(checks, "isolation_2").detail)
    -- Without overlayfs level 2 works, but --disk cannot layer a folder.
    p = healthy()
    p.files["/proc/filesystems"] = "nodev\ttmpfs\n"
    c = find(doctor.run(p, "/home/u/.prisn"), "isolation_2")
    assert.same({ "warn", true }, { c.status, c.fix:find("modprobe overlay", 1, true) ~= nil })
  end)

  it("reads interpreter versions", function()
    local checks = doctor.run(healthy(), "/home/u/.prisn")
    assert.equal("3.11.2 (/usr/bin/python3)", find(checks, "python3").detail)
    assert.equal("18.19.0 (/usr/bin/node)", find(checks, "node").detail)
    assert.equal("5.2.15 (/usr/bin/bash)", find(checks, "bash").detail)
  end)

  it("warns about a missing interpreter with an install hint", function()
    local p = healthy()
    p.which = function(name) return name ~= "node" and "/usr/bin/" .. name or nil end
    local c = find(doctor.run(p, "/home/u/.prisn"), "node")
    assert.equal("warn", c.status)
    assert.equal("install it (Debian: apt-get install nodejs)", c.fix)
  end)

  it("uses cgroup v1 when v2 has no controllers, and says so", function()
    local p = healthy()
    p.files["/proc/self/mountinfo"] = MOUNTINFO_V1
    p.files["/sys/fs/cgroup/unified/cgroup.controllers"] = ""
    local v2, v1 = doctor.check_cgroups(p)
    assert.equal("ok", v2.status)
    assert.equal("mounted at /sys/fs/cgroup/unified, controllers not enabled: memory, cpu, pids"
      .. " (not used: v1 is)", v2.detail)
    assert.equal("ok", v1.status)
    assert.equal("memory, cpu and pids mounted and writable", v1.detail)
  end)

  it("warns when no cgroup hierarchy is usable", function()
    local p = healthy()
    p.writable = function() return false end
    local v2, v1 = doctor.check_cgroups(p)
    assert.equal("warn", v2.status)
    assert.equal("warn", v1.status)
    assert.equal("mounted at /sys/fs/cgroup but not writable by this user; prisn run: --memory falls back to "
      .. "RLIMIT_AS (address space, not memory in use), --cpu is not enforced, --pids falls back to RLIMIT_NPROC "
      .. "(counts all of the user's processes)", v2.detail)
    assert.matches("run prisn as root", v1.fix)
  end)

  it("warns about the one limit no hierarchy carries", function()
    local p = healthy()
    p.files["/proc/self/mountinfo"] = MOUNTINFO_V1:gsub("\n[^\n]*pids$", "")
    p.files["/sys/fs/cgroup/unified/cgroup.controllers"] = ""
    local v2, v1 = doctor.check_cgroups(p)
    assert.equal("warn", v1.status)
    assert.equal("not mounted: pids; prisn run: --pids falls back to RLIMIT_NPROC (counts all of the user's "
      .. "processes)", v1.detail)
    assert.equal("warn", v2.status)
  end)

  it("parses v1 controllers from combined mounts", function()
    local m = doctor.cgroup_mounts(MOUNTINFO_V1)
    assert.equal("/sys/fs/cgroup/unified", m.v2)
    assert.same({ memory = "/sys/fs/cgroup/memory", cpu = "/sys/fs/cgroup/cpu,cpuacct",
      pids = "/sys/fs/cgroup/pids" }, m.v1)
  end)

  it("fails a PRISN_HOME that others can read", function()
    local p = healthy()
    p.stats["/home/u/.prisn"].mode = tonumber("40755", 8)
    local c = find(doctor.run(p, "/home/u/.prisn"), "prisn_home")
    assert.equal("fail", c.status)
    assert.equal("/home/u/.prisn has mode 755; it holds tokens and keys", c.detail)
    assert.equal("chmod 700 /home/u/.prisn", c.fix)
  end)

  it("accepts a PRISN_HOME that does not exist yet", function()
    local p = healthy()
    p.stats["/home/u/.prisn"] = nil
    p.stats["/home/u"] = { type = "directory", mode = tonumber("40755", 8), uid = 1000 }
    local checks = doctor.run(p, "/home/u/.prisn")
    assert.equal("ok", find(checks, "prisn_home").status)
    assert.equal("ok", find(checks, "state_db").status)
  end)

  it("fails a corrupt state database", function()
    local p = healthy()
    p.stats["/home/u/.prisn/state.db"] = { type = "file", mode = tonumber("100600", 8), uid = 1000 }
    p.check_db = function() return nil, "SQLITE_NOTADB: file is not a database" end
    local c = find(doctor.run(p, "/home/u/.prisn"), "state_db")
    assert.equal("fail", c.status)
    assert.equal("/home/u/.prisn/state.db: SQLITE_NOTADB: file is not a database", c.detail)
  end)

  it("grades free disk space", function()
    local p = healthy()
    p.statfs = function() return { bavail = 1000, bsize = 4096 } end
    assert.equal("fail", doctor.check_disk(p, "/home/u/.prisn").status)
    p.statfs = function() return { bavail = 100 * 1024, bsize = 4096 } end
    assert.equal("warn", doctor.check_disk(p, "/home/u/.prisn").status)
  end)

  it("warns about an old kernel and fails an ancient one", function()
    local p = healthy()
    p.uname = function() return { sysname = "Linux", release = "4.19.0" } end
    assert.equal("warn", doctor.check_kernel(p).status)
    p.uname = function() return { sysname = "Linux", release = "3.10.0-1160" } end
    assert.equal("fail", doctor.check_kernel(p).status)
  end)

  it("reports a stale server socket", function()
    local p = healthy()
    p.stats["/home/u/.prisn/prisn.sock"] = { type = "socket", mode = tonumber("140600", 8), uid = 1000 }
    p.connect = function() return nil, "refuses connections (ECONNREFUSED)" end
    local c = doctor.check_server(p, "/home/u/.prisn")
    assert.equal("warn", c.status)
  end)

  it("warns when a namespace cannot be created", function()
    local p = healthy()
    p.probe_namespace = function(kind)
      if kind == "user" then return nil, "unshare(user): Operation not permitted", "EPERM" end
      return true
    end
    local c = find(doctor.run(p, "/home/u/.prisn"), "namespace_user")
    assert.equal("warn", c.status)
    assert.equal("unshare(user): Operation not permitted (needed for unprivileged isolation)", c.detail)
  end)
end)
