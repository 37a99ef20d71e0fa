-- The reference pages run as written: every ```console and ```sh block of
-- README.md and docs/*.md (but the guides, which docs_guides_spec.lua runs,
-- and CLI.md, which is generated) is run against the real binary, and the
-- output a block shows is compared (tests/e2e/docs_blocks.lua says how).
-- Blocks that cannot run here say why (`skip: REASON`) and are printed; a
-- command in an indented code block would escape all this, so a page may
-- hold none.
--
-- A page's examples name scripts (`api.py`, `backup.py`) the reader has: the
-- spec writes small ones into the page's folder first (FILES), rather than
-- every page opening with a block that writes them.
--
-- Suite time: the pages that need a server share one (started once, their
-- deployments and cron jobs removed between pages); SERVER.md starts and
-- stops its own, as it shows.
local h = require("e2e.helper")
local blocks = require("e2e.docs_blocks")
local uv = require("luv")

-- An HTTP service on $PORT answering every path (/healthz too), as a deployment's script.
local HTTP_SERVICE = [[
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


print("serving on", os.environ["PORT"], flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
]]

local WORKER_PY = "import time\nwhile True:\n    time.sleep(1)\n"

-- A file given as { copy = PATH } is a copy of that file of the source
-- tree, { link = PATH } a symbolic link to it ("@bin": the binary under test).
local FILES = {
  ["docs/SERVER.md"] = {
    ["build/prisn"] = { link = "@bin" },
    ["prod.token"] = "prisn_06h1jkhet67y_J754yKlARj8EFb2DwDEmrLCJ3kBLtTfe2nkOZG4JlVs\n",
  },
  ["README.md"] = {
    ["build/prisn"] = { link = "@bin" },
    ["backup.py"] = 'import json\nprint(json.dumps({"backed_up": 3}))\n',
    ["job.sh"] = 'echo "target $TARGET, args $*"\n',
    ["job.py"] = 'print("job done")\n',
    ["untrusted.py"] = 'open("out.txt", "w").write("x" * 1000)\nprint("wrote out.txt")\n',
    ["nightly.py"] = 'for i in range(3):\n    print("tick", i)\n',
    ["api.py"] = HTTP_SERVICE,
    ["worker.py"] = WORKER_PY,
    ["prisn.lua"] = 'deployment { name = "worker", script = "worker.py", replicas = 2 }\n'
      .. 'cron { name = "nightly", script = "nightly.py", every = "day at 02:00" }\n',
    ["script.lua"] = 'print("args: " .. table.concat(arg, " "))\n',
  },
  -- A checkout: build/prisn is the binary under test.
  ["docs/DEVELOPING.md"] = {
    ["build/prisn"] = { link = "@bin" },
    ["contrib"] = { link = "contrib" },
    ["lua"] = { link = "lua" },
    ["spec"] = { link = "spec" },
    ["tests"] = { link = "tests" },
    ["docs/.keep"] = "",
  },
  ["docs/RUNNERS.md"] = {
    ["tcl.lua"] = { copy = "contrib/runners/tcl.lua" },
    ["contrib/runners/tcl.lua"] = { copy = "contrib/runners/tcl.lua" },
    ["bad/tcl.lua"] = 'return {\n  name = "tcl",\n  extensions = { ".tcl", 5 },\n  interpreter = "tclsh",\n'
      .. '  command = { "{interpreter}", "{script}", "{args}" },\n}\n',
    ["broken/tcl.lua"] = 'return {\n  name = "tcl"\n  command = { "tclsh", "{script}" },\n}\n',
    ["report.xyz"] = "a report\n",
    ["hello.tcl"] = 'puts "hello, [lindex $argv 0]"\n',
  },
  ["docs/RUN.md"] = {
    ["job.sh"] = 'echo "pid 1 is $(cat /proc/1/comm)"\n',
    ["scrape.py"] = 'lines = open("/proc/net/dev").read().splitlines()[2:]\n'
      .. 'print("interfaces:", " ".join(sorted(line.split(":")[0].strip() for line in lines)))\n',
    ["tool.sh"] = 'echo "tool ran as $(id -un)"\n',
    ["convert.py"] = 'with open("out.bin", "wb") as f:\n    f.write(bytes(1 << 20))\n'
      .. 'print("converted:", 1 << 20, "bytes")\n',
    ["train.py"] = 'print("trained")\n',
  },
  ["docs/SERVICES.md"] = {
    ["api.py"] = HTTP_SERVICE,
    ["web/main.py"] = HTTP_SERVICE,
    ["worker.js"] = 'setInterval(() => console.log("working"), 1000);\n',
  },
  ["docs/HEALTH.md"] = { ["app.py"] = HTTP_SERVICE, ["worker.py"] = WORKER_PY },
  ["docs/NETWORKING.md"] = { ["api.py"] = HTTP_SERVICE },
  ["docs/MANIFEST.md"] = {
    ["app.py"] = HTTP_SERVICE,
    ["worker/main.py"] = WORKER_PY,
    ["report.py"] = 'print("report sent")\n',
    ["cleanup.sh"] = "echo cleaned\n",
  },
  ["docs/CRON.md"] = {
    ["backup.py"] = 'print("backup done")\n',
    ["report.py"] = 'print("report sent")\n',
    ["sync.sh"] = "echo synced\n",
  },
}

-- The pages, in the order they run. `server`: runs against the shared
-- server. `dot_prisn`: the page writes to ~/.prisn, so HOME is a temporary
-- folder and PRISN_HOME its .prisn. `folders`: system folders the page
-- uses, and the temporary folder (in the page's) that stands for each.
-- `server_port`: the page shows the server's default port (7433), which
-- stands for the port the shared server got (API.md's first block sets
-- `API=http://127.0.0.1:7433`, kept for the blocks after it).
local PAGES = {
  { page = "README.md" },
  { page = "docs/RUN.md" },
  { page = "docs/HOOKS.md" },
  { page = "docs/RUNNERS.md", dot_prisn = true },
  { page = "docs/DEVELOPING.md" },
  { page = "docs/INSTALL.md" },
  { page = "docs/SERVER.md", folders = { ["/backup/prisn"] = "root/backup", ["/usr/local/bin"] = "root/bin" } },
  { page = "docs/API.md", server = true, server_port = true, folders = { ["/srv/app"] = "app" } },
  { page = "docs/SECURITY.md" },
  { page = "docs/NETWORKING.md" },
  { page = "docs/CRON.md", server = true },
  { page = "docs/SERVICES.md", server = true },
  { page = "docs/HEALTH.md", server = true },
  { page = "docs/MANIFEST.md", server = true },
}

-- The folder a page runs in, holding the files its examples name.
local function page_folder(page)
  local cwd = h.tempdir("prisn-docs-ref")
  for name, text in pairs(FILES[page] or {}) do
    local dir = name:match("^(.*)/[^/]+$")
    if dir then h.run("/bin/mkdir", { "-p", cwd .. "/" .. dir }, { env = { PATH = "/usr/bin:/bin" } }) end
    if type(text) == "table" and text.link then
      assert(uv.fs_symlink(text.link == "@bin" and h.bin or h.source_dir .. "/" .. text.link, cwd .. "/" .. name))
    else
      if type(text) == "table" then text = assert(h.read(h.source_dir .. "/" .. text.copy)) end
      h.write(cwd .. "/" .. name, text, name:match("%.sh$") and tonumber("755", 8) or nil)
    end
  end
  assert(uv.fs_chmod(cwd, tonumber("755", 8)))
  return cwd
end

-- What a page left on the shared server, removed so the next page starts
-- from an empty default namespace (and its instances stop); the pages use no other.
local function clear_server(env)
  local json = require("cjson")
  for _, what in ipairs({ "deploy", "cron" }) do
    local r = h.prisn({ "get", what, "-o", "json" }, { env = env })
    assert(r.code == 0, r.stdout .. r.stderr)
    for _, item in ipairs(json.decode(r.stdout)) do
      local d = h.prisn({ "delete", what, item.name, "--yes" }, { env = env })
      assert(d.code == 0, d.stdout .. d.stderr)
    end
  end
end

-- The port the shared server got (its default, 7433, when that was free).
local function server_port(env)
  local info = require("cjson").decode((assert(h.read(env.PRISN_HOME .. "/server.json"))))
  return assert(info.address:match(":(%d+)$"))
end

describe("the reference pages", function()
  local shared, envs = nil, {}

  local function shared_env()
    if not shared then
      shared = blocks.env()
      envs[#envs + 1] = shared
      local r = h.prisn({ "server", "start" }, { env = shared })
      assert(r.code == 0, r.stdout .. r.stderr)
    end
    return shared
  end

  teardown(function()
    for _, env in ipairs(envs) do h.stop_server(env) end
    h.cleanup()
  end)

  it("hold no indented code block: every command is in a block the suite sees", function()
    local found = {}
    for _, entry in ipairs(PAGES) do
      for _, n in ipairs(blocks.indented_blocks(h.read(h.source_dir .. "/" .. entry.page))) do
        found[#found + 1] = entry.page .. ":" .. n
      end
    end
    assert.same({}, found)
  end)

  -- A page added later with commands in it must be run by some spec too.
  it("leave no page with commands unrun: each is run here, by another spec, or listed with why", function()
    local ELSEWHERE = {
      ["docs/GETTING-STARTED.md"] = "docs_guides_spec",
      ["docs/TROUBLESHOOTING.md"] = "docs_guides_spec",
      ["docs/CLI.md"] = "generated from the declarations; spec/prisn/cli/reference_spec.lua compares it",
    }
    local here = {}
    for _, entry in ipairs(PAGES) do here[entry.page] = true end
    local pages = { "README.md" }
    for _, dir in ipairs({ "docs", "examples" }) do
      for name in uv.fs_scandir_next, assert(uv.fs_scandir(h.source_dir .. "/" .. dir)) do
        if name:match("%.md$") then pages[#pages + 1] = dir .. "/" .. name end
      end
    end
    local unrun = {}
    for _, page in ipairs(pages) do
      local text = h.read(h.source_dir .. "/" .. page)
      local has_commands = text:find("```console", 1, true) or text:find("```sh", 1, true)
        or #blocks.indented_blocks(text) > 0
      if has_commands and not here[page] and not ELSEWHERE[page] then unrun[#unrun + 1] = page end
    end
    assert.is_true(#pages > 15, "only " .. #pages .. " pages found")
    assert.same({}, unrun)
  end)

  for _, entry in ipairs(PAGES) do
    it(entry.page .. " runs as written", function()
      local env
      if entry.server then
        env = shared_env()
      else
        local home = entry.dot_prisn and h.tempdir("prisn-docs-user")
        env = blocks.env(home and { HOME = home, PRISN_HOME = home .. "/.prisn" })
        envs[#envs + 1] = env
      end
      local cwd = page_folder(entry.page)
      local swaps = {}
      for shown, inside in pairs(entry.folders or {}) do
        swaps[shown] = cwd .. "/" .. inside
        assert(h.run("/bin/mkdir", { "-p", swaps[shown] }, { env = { PATH = "/usr/bin:/bin" } }).code == 0)
      end
      if entry.server_port then swaps["7433"] = server_port(env) end
      local problems = blocks.run_page(h.source_dir .. "/" .. entry.page, entry.page, env, cwd, swaps)
      if entry.server then clear_server(env) else h.stop_server(env) end
      assert.same({}, problems)
    end)
  end
end)
