-- `prisn __hook FILE HOOK`: run one operator hook in this process, started
-- by the server (prisn.hooks) as a child of its own for every hook run. The
-- event comes as JSON on stdin, the outcome goes out as one JSON line on
-- stdout (see prisn.hooks.child). Hidden: it is plumbing, not a verb.
return {
  {
    name = "__hook",
    hidden = true,
    summary = "Run one hook of an operator hook file (started by the server)",
    args = {
      { name = "FILE", summary = "The hook file (a Lua file returning a table of hook functions)",
        required = true },
      { name = "HOOK", summary = "The hook to run: pre_deploy, post_deploy, on_crash, on_scale, on_job_finish" },
    },
    flags = {
      { name = "timeout-ms", type = "int", placeholder = "MS",
        summary = "Stop the hook a second after this many milliseconds (the server kills it at MS)" },
      { name = "list", type = "bool",
        summary = "Print which hooks FILE defines, as JSON, instead of running one" },
    },
    handler = function(ctx)
      local child = require("prisn.hooks.child")
      local file, hook = ctx.args.FILE, ctx.args.HOOK
      if ctx.flags.list then
        local f, err = io.open(file, "rb")
        if not f then
          io.stderr:write("prisn __hook: cannot read ", file, ": ", tostring(err), "\n")
          return 1
        end
        local text = f:read("a")
        f:close()
        local names, lerr = child.list(file, text, require("prisn.hooks").NAMES)
        if not names then
          io.stdout:write(require("cjson").encode({ result = "failed", message = lerr }), "\n")
          return 1
        end
        io.stdout:write(require("cjson").encode({ result = "ok", hooks = names }), "\n")
        return 0
      end
      if not hook then
        require("prisn.error").usage("missing argument HOOK for 'prisn __hook'",
          "one of: " .. table.concat(require("prisn.hooks").NAMES, ", "))
      end
      return child.main(file, hook, ctx.flags.timeout_ms)
    end,
  },
}
