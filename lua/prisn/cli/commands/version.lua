-- `prisn version`: what this binary is and what it was built with.
return {
  {
    name = "version",
    summary = "Show prisn's version and the versions of the libraries built into it",
    description = "Prints the prisn version, the commit and date it was built from, the\n"
      .. "target it was built for (e.g. linux-arm64) and whether it is static, and the\n"
      .. "versions of Lua, libuv (through luv), SQLite and libsodium compiled into the\n"
      .. "binary. With -o json or -o yaml the fields are stable names for scripts.",
    examples = {
      { "prisn version", "Show the version and build details" },
      { "prisn version -o json", "The same as JSON, e.g. for a bug report" },
    },
    handler = function(ctx)
      ctx.out:emit(require("prisn.version").info(), {
        fields = { "version", "commit", "build_date", "target", "linkage", "lua", "libuv", "sqlite", "libsodium",
          "os", "arch" },
      })
    end,
  },
}
