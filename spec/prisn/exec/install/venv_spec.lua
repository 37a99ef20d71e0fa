-- prisn.exec.install.venv: a venv copied from the interpreter's template is
-- the tree venv would have written at the new path; venv runs once.
local uv = require("luv")
local fs = require("prisn.fs")
local venv = require("prisn.exec.install.venv")
local remove_tree = require("support").remove_tree

-- A stand-in for `python -m venv --without-pip DIR`: what it writes that
-- depends on DIR, and a symlink to the interpreter.
local function fake_venv(calls)
  return function(file, args)
    local dir = args[#args]
    calls[#calls + 1] = { file, table.unpack(args) }
    assert(fs.mkdir_p(dir .. "/bin"))
    assert(fs.mkdir_p(dir .. "/lib/python3.11/site-packages"))
    assert(uv.fs_symlink("lib", dir .. "/lib64"))
    assert(uv.fs_symlink("/usr/bin/python3", dir .. "/bin/python"))
    assert(fs.write_atomic(dir .. "/pyvenv.cfg", "home = /usr/bin\ncommand = /usr/bin/python3 -m venv " .. dir .. "\n"))
    local name = dir:match("[^/]*$")
    assert(fs.write_atomic(dir .. "/bin/activate", 'VIRTUAL_ENV="' .. dir .. '"\nPS1="(' .. name .. ') ${PS1:-}"\n'))
    return { code = 0, stdout = "", stderr = "" }
  end
end

describe("prisn.exec.install.venv", function()
  local tmp
  local py = { executable = "/usr/bin/python3", version = "3.11.2" }
  before_each(function() tmp = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX")) end)
  after_each(function() remove_tree(tmp) end)

  it("copies the template with its own path and prompt, and runs venv only for the first", function()
    local calls = {}
    local template = assert(venv.template(tmp .. "/cache", py, fake_venv(calls)))
    assert.equal(venv.template_path(tmp .. "/cache", py), template)
    assert.equal(template, venv.template(tmp .. "/cache", py, fake_venv(calls)))
    assert.equal(1, #calls)
    assert.same({ "/usr/bin/python3", "-m", "venv", "--without-pip" }, { table.unpack(calls[1], 1, 4) })
    local build, final = tmp .. "/envs/k.tmp-1", tmp .. "/envs/k"
    assert(fs.mkdir_p(build))
    assert(venv.from_template(template, build, final))
    assert.equal("home = /usr/bin\ncommand = /usr/bin/python3 -m venv " .. final .. "\n",
      fs.read_file(build .. "/pyvenv.cfg"))
    assert.equal('VIRTUAL_ENV="' .. final .. '"\nPS1="(k) ${PS1:-}"\n', fs.read_file(build .. "/bin/activate"))
    assert.equal("/usr/bin/python3", uv.fs_readlink(build .. "/bin/python"))
    assert.equal("lib", uv.fs_readlink(build .. "/lib64"))
    assert.equal("directory", uv.fs_stat(build .. "/lib/python3.11/site-packages").type)
  end)

  it("reports a venv that fails, and leaves no template", function()
    local template, err = venv.template(tmp .. "/cache", py, function()
      return { code = 1, stdout = "", stderr = "boom" }
    end)
    assert.is_nil(template)
    assert.equal("python -m venv failed", err)
    assert.same({}, fs.list_dir(tmp .. "/cache/venvs"))
  end)
end)
