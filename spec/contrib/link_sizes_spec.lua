-- contrib/link_sizes.lua: what each library adds, from a GNU ld map.
local source_dir = os.getenv("PRISN_SOURCE_DIR") or "."
local link_sizes = dofile(source_dir .. "/contrib/link_sizes.lua")

describe("contrib/link_sizes.lua", function()
  it("sums the kept input sections per archive, long names on two lines", function()
    local map = table.concat({
      "Archive member included to satisfy reference by file (symbol)",
      "/usr/lib/x86_64-linux-gnu/libsqlite3.a(main.o)  x.o (sqlite3_open)",
      "Linker script and memory map",
      " .text          0x0000000000401000      0x100 CMakeFiles/prisn.dir/core/main.c.o",
      " .text.sqlite3_very_long_function_name",
      "                0x0000000000402000      0x200 /usr/lib/x86_64-linux-gnu/libsqlite3.a(main.o)",
      " .rodata        0x0000000000403000       0x10 /usr/lib/x86_64-linux-gnu/libsqlite3.a(main.o)",
      " .bss           0x0000000000404000     0x1000 /usr/lib/x86_64-linux-gnu/libsqlite3.a(main.o)",
      " .debug_info    0x0000000000000000     0x9999 /usr/lib/x86_64-linux-gnu/libsqlite3.a(main.o)",
      " .text          0x0000000000405000       0x20 /usr/lib/x86_64-linux-gnu/libc.a(printf.o)",
      " .text          0x0000000000405100       0x30 libprisn_core.a(sys.c.o)",
    }, "\n")
    assert.same({
      ["libsqlite3.a"] = 0x210,
      ["prisn (core/ and the embedded Lua)"] = 0x130,
      ["libc (static glibc, libgcc)"] = 0x20,
    }, link_sizes.sizes(map))
  end)
end)
