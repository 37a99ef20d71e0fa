-- Python wheels for end-to-end specs, written by the spec itself (a
-- pure-Python wheel is a zip: the package, METADATA, WHEEL and RECORD), so
-- dependency installs are tested offline.
--
--   local dir = require("e2e.wheels").build({ { dist = "acme-widgets",
--     version = "1.0", package = "widgets", value = "widgets 1.0" } })
--
-- `package/__init__.py` sets VALUE and defines main(), which prints it; a
-- wheel with `script = "name"` declares that console script for main().
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

local M = {}

-- Writes wheels: argv[1] is the output folder, argv[2] a JSON list of
-- { dist, version, package, value, script }; `package/__init__.py` sets
-- VALUE and main() prints it (the console script `script`, when given).
local WHEEL_BUILDER = [[
import base64, hashlib, json, sys, zipfile
out, specs = sys.argv[1], json.loads(sys.argv[2])
def record(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "sha256=%s,%d" % (digest, len(data))
for s in specs:
    stem = "%s-%s" % (s["dist"].replace("-", "_"), s["version"])
    info = stem + ".dist-info"
    files = {
        s["package"] + "/__init__.py": "VALUE = %r\ndef main():\n    print(VALUE)\n" % s["value"],
        info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (s["dist"], s["version"]),
        info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: prisn-e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if s.get("script"):
        files[info + "/entry_points.txt"] = "[console_scripts]\n%s = %s:main\n" % (s["script"], s["package"])
    lines = ["%s,%s" % (name, record(text.encode())) for name, text in files.items()]
    files[info + "/RECORD"] = "\n".join(lines + [info + "/RECORD,,"]) + "\n"
    with zipfile.ZipFile("%s/%s-py3-none-any.whl" % (out, stem), "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
]]

local function program(name)
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    if uv.fs_access(dir .. "/" .. name, "X") then return dir .. "/" .. name end
  end
end

-- Any python3 builds the wheels; /usr/bin's skips the pyenv shim's startup.
local BUILDER_PYTHON = uv.fs_access("/usr/bin/python3", "X") and "/usr/bin/python3" or program("python3")

-- A folder of wheels: build({ { dist, version, package, value }, ... }),
-- in `dir` when given, else in a new temporary folder.
function M.build(list, dir)
  dir = dir or h.tempdir("prisn-wheels")
  local r = h.run(BUILDER_PYTHON, { "-c", WHEEL_BUILDER, dir, cjson.encode(list) },
    { env = { PATH = "/usr/bin:/bin" } })
  assert(r.code == 0, r.stderr)
  return dir
end

return M
