-- What `prisn run --detach`, `prisn cron` and `prisn deploy` upload of a
-- script's folder: all of it but what .prisnignore and the built-in list
-- leave out, plus --include; never $PRISN_HOME or .git; too big a folder
-- fails naming its biggest entries (docs/RUN.md, "What is uploaded").
local h = require("e2e.helper")

-- A file of `mb` MiB that costs no disk (sparse): the size is what counts.
local function big_file(path, mb)
  local f = assert(io.open(path, "w"))
  f:seek("set", mb * 1024 * 1024 - 1)
  f:write("x")
  f:close()
end

-- Every file below `dir`, relative and sorted.
local function tree(dir, prefix, out)
  out = out or {}
  for _, e in ipairs(require("prisn.fs").list_dir(dir)) do
    local rel = (prefix and prefix .. "/" or "") .. e.name
    if e.type == "directory" then tree(dir .. "/" .. e.name, rel, out) else out[#out + 1] = rel end
  end
  table.sort(out)
  return out
end

describe("uploading a script's folder", function()
  local env, dir
  local prisn, ok = h.cli(function() return env end)

  -- The files of the one bundle the server holds.
  local function uploaded()
    local bundles = env.PRISN_HOME .. "/bundles"
    local list = require("prisn.fs").list_dir(bundles)
    assert.equal(1, #list, "expected one bundle in " .. bundles)
    return tree(bundles .. "/" .. list[1].name)
  end

  local function output_of(id)
    return ok({ "logs", "-f", "job/" .. id }).stdout
  end

  before_each(function()
    dir = h.tempdir("prisn-upload")
    -- $PRISN_HOME inside the script's folder, as with `PRISN_HOME=./.prisn`.
    env = h.env({ PRISN_HOME = dir .. "/.prisn" })
    h.write(dir .. "/job.sh", '. "$(dirname "$0")/lib.sh"\necho "$GREETING"\n')
    h.write(dir .. "/lib.sh", "GREETING=hello\n")
    ok({ "server", "start", "-q" })
  end)

  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("packs the folder with its sibling files, but not a $PRISN_HOME inside it nor .git", function()
    big_file(env.PRISN_HOME .. "/big.bin", 30)
    assert(os.execute("mkdir -p '" .. dir .. "/.git' '" .. dir .. "/node_modules/m'"))
    h.write(dir .. "/.git/HEAD", "ref\n")
    h.write(dir .. "/node_modules/m/i.js", "\n")
    local id = ok({ "run", "--detach", dir .. "/job.sh", "--isolation", "0" }).stdout:gsub("%s+$", "")
    assert.equal("hello\n", output_of(id))
    assert.same({ "job.sh", "lib.sh" }, uploaded())
  end)

  it("fails for a folder over 20 MB, naming its biggest entries and .prisnignore", function()
    assert(os.execute("mkdir -p '" .. dir .. "/data'"))
    big_file(dir .. "/data/raw.csv", 18)
    big_file(dir .. "/model.bin", 4)
    for _, args in ipairs({ { "run", "--detach", dir .. "/job.sh" }, { "cron", dir .. "/job.sh", "--every", "1h" },
        { "deploy", dir .. "/job.sh", "--name", "w" } }) do
      local r = prisn(args)
      assert.equal(1, r.code, table.concat(args, " "))
      assert.equal("", r.stdout)
      assert.matches("^Error: cannot pack [^\n]*: " .. dir:gsub("%p", "%%%0")
        .. " holds 22M of files, over the 20M limit; the biggest entries: data/ %(18M%), model.bin %(4M%), "
        .. "job.sh %(%d+B%), lib.sh %(%d+B%)\nHint: list what the script does not need in "
        .. dir:gsub("%p", "%%%0") .. "/.prisnignore %(lines like .gitignore's, e.g. data/%); see docs/RUN.md\n$",
        r.stderr)
    end
  end)

  it("leaves out what .prisnignore lists; --include brings a path back", function()
    assert(os.execute("mkdir -p '" .. dir .. "/data' '" .. dir .. "/node_modules/m'"))
    big_file(dir .. "/data/raw.csv", 25)
    h.write(dir .. "/data/small.txt", "s\n")
    h.write(dir .. "/node_modules/m/i.js", "\n")
    h.write(dir .. "/.prisnignore", "# big inputs stay here\ndata/\n")
    local id = ok({ "run", "--detach", dir .. "/job.sh", "--isolation", "0" }).stdout:gsub("%s+$", "")
    assert.equal("hello\n", output_of(id))
    assert.same({ ".prisnignore", "job.sh", "lib.sh" }, uploaded())
    h.run("/bin/rm", { "-rf", env.PRISN_HOME .. "/bundles" }, { env = { PATH = "/usr/bin:/bin" } })
    ok({ "cron", dir .. "/job.sh", "--every", "1h", "--name", "c", "--include", dir .. "/node_modules",
      "--include", dir .. "/data/small.txt" })
    assert.same({ ".prisnignore", "data/small.txt", "job.sh", "lib.sh", "node_modules/m/i.js" }, uploaded())
  end)

  it("refuses an --include outside the folder or missing, as usage errors", function()
    local r = prisn({ "run", "--detach", dir .. "/job.sh", "--include", "/etc" })
    assert.equal(2, r.code)
    assert.equal("Error: --include /etc is outside the script's folder " .. dir
      .. "\nHint: only files below the script's folder are uploaded; move it there\n", r.stderr)
    r = prisn({ "cron", dir .. "/job.sh", "--every", "1h", "--include", dir .. "/nope" })
    assert.equal(2, r.code)
    assert.equal("Error: --include " .. dir .. "/nope: no such file or folder\nHint: give a path inside " .. dir
      .. "\n", r.stderr)
  end)

  it("documents --include with an example in run's, cron's and deploy's help", function()
    for _, cmd in ipairs({ "run", "cron", "deploy" }) do
      local text = ok({ cmd, "--help" }).stdout
      assert.truthy(text:find("--include PATH", 1, true), cmd)
      assert.truthy(text:find("--include ", (text:find("\nExamples:", 1, true)), true), cmd .. " has no example")
    end
  end)
end)
