-- `prisn dns setup [--undo]`: sends this host's own lookups of prisn.local to
-- prisn's DNS, so `curl http://web.default.prisn.local:8080` works from a
-- shell.
--
-- With systemd-resolved (its /run/systemd/resolve is there) it writes a
-- drop-in, /etc/systemd/resolved.conf.d/prisn.conf (DNS=ADDR and
-- Domains=~prisn.local: only that domain goes there, the rest as before), and
-- restarts systemd-resolved; --undo removes the drop-in (only one prisn wrote)
-- and restarts it again. Without systemd-resolved it changes nothing and
-- prints what to add where. --root writes under another root (an image being
-- built, a test) and restarts nothing.
local errors = require("prisn.error")

local MARKER = "# Written by 'prisn dns setup'"
local DROPIN = "/etc/systemd/resolved.conf.d/prisn.conf"

-- The DNS address: --address, else the running server's.
local function dns_address(ctx)
  local server_dns = require("prisn.server.dns")
  local address = ctx.flags.address
  if not address then
    local info = require("prisn.server").running(require("prisn.home").path())
    address = info and info.dns
    if not address then
      errors.raise("no_dns", info and "the running server answers no DNS (it was started with --dns off, or its "
        .. "address was taken)" or "no prisn server is running, so its DNS address is not known",
        { hint = "start the server ('prisn server start'), or name the address: prisn dns setup --address "
          .. "127.0.0.1:" .. server_dns.DEFAULT_PORT })
    end
  end
  local host, port = server_dns.parse_address(address)
  if not host then
    errors.usage("--address expects HOST:PORT, got '" .. address .. "'", "e.g. --address 127.0.0.1:7453")
  end
  return address, host, port
end

local function is_dir(path)
  local st = require("luv").fs_stat(path)
  return st and st.type == "directory"
end

local function restart_resolved()
  local ok = os.execute("systemctl restart systemd-resolved")
  if not ok then
    errors.raise("restart_failed", "systemctl restart systemd-resolved failed",
      { hint = "restart it yourself; the drop-in takes effect then" })
  end
end

-- What to do without systemd-resolved, as lines for a person.
local function instructions(host, port, undo)
  if port == 53 then
    if undo then
      return { "Remove the line 'nameserver " .. host .. "' from /etc/resolv.conf." }
    end
    return { "Add this line first in /etc/resolv.conf (prisn's DNS passes other names on to the",
      "nameservers listed after it):", "", "  nameserver " .. host }
  end
  if undo then return { "Remove /etc/dnsmasq.d/prisn.conf and restart dnsmasq." } end
  return { "resolv.conf cannot name a port other than 53. With dnsmasq, add to /etc/dnsmasq.d/prisn.conf:", "",
    "  server=/prisn.local/" .. host .. "#" .. port, "",
    "or start the server as root, whose DNS is then on 127.0.0.153:53 (resolv.conf can name that)." }
end

local function setup(ctx)
  local fs = require("prisn.fs")
  local root = (ctx.flags.root or "/"):gsub("/+$", "")
  local undo = ctx.flags.undo
  local path = root .. DROPIN
  local live = root == ""
  local doc, lines = { resolved = false, changed = false, file = path, restarted = false }, {}
  if not is_dir(root .. "/run/systemd/resolve") then
    local address, host, port
    if undo and not ctx.flags.address then
      -- (undoing needs no running server; the address only says which line)
      local info = require("prisn.server").info(require("prisn.home").path())
      address = info and info.dns or "?"
      host, port = require("prisn.server.dns").parse_address(address)
    else
      address, host, port = dns_address(ctx)
    end
    lines = { "systemd-resolved is not running here: nothing was changed." }
    if host then
      for _, l in ipairs(instructions(host, port, undo)) do lines[#lines + 1] = l end
    else
      lines[#lines + 1] = "Remove what was added for prisn's DNS from /etc/resolv.conf or dnsmasq."
    end
    doc.file, doc.address, doc.instructions = nil, address, table.concat(lines, "\n")
  elseif undo then
    local text = fs.read_file(path)
    if not text then
      lines[1] = "Nothing to undo: " .. path .. " is not there."
    elseif not text:find(MARKER, 1, true) then
      errors.raise("not_ours", path .. " was not written by prisn; left as it is",
        { hint = "remove it yourself if it should go" })
    else
      assert(os.remove(path))
      doc.changed = true
      if live then restart_resolved() end
      doc.restarted = live
      lines[1] = "Removed " .. path .. (live and "; systemd-resolved restarted." or
        "; restart systemd-resolved to apply: systemctl restart systemd-resolved")
    end
    doc.resolved = true
  else
    local address = dns_address(ctx)
    local text = MARKER .. ": names under prisn.local go to prisn's DNS, the rest as before.\n"
      .. "# 'prisn dns setup --undo' removes this file.\n[Resolve]\nDNS=" .. address .. "\nDomains=~prisn.local\n"
    local made, merr, mcode = fs.mkdir_p(root .. "/etc/systemd/resolved.conf.d", tonumber("755", 8))
    if not made and mcode ~= "EEXIST" then
      errors.raise(mcode or "EIO", "cannot create the drop-in folder: " .. tostring(merr))
    end
    local ok, err, code = fs.write_atomic(path, text, tonumber("644", 8))
    if not ok then
      errors.raise(code or "EIO", "cannot write " .. path .. ": " .. tostring(err),
        { hint = code == "EACCES" and "run it as root (sudo prisn dns setup)" or nil })
    end
    if live then restart_resolved() end
    doc.resolved, doc.changed, doc.restarted, doc.address = true, true, live, address
    lines[1] = "Wrote " .. path .. " (DNS=" .. address .. ", Domains=~prisn.local)"
      .. (live and "; systemd-resolved restarted." or "; restart systemd-resolved to apply: "
        .. "systemctl restart systemd-resolved")
    lines[2] = "Try: resolvectl query NAME.NAMESPACE.prisn.local"
  end
  if ctx.globals.output ~= "text" then
    ctx.out:emit(doc)
  elseif not ctx.globals.quiet then
    io.stdout:write(table.concat(lines, "\n"), "\n")
  end
  return 0
end

return {
  {
    name = "dns",
    summary = "Make this host's own lookups of prisn.local reach prisn's DNS",
    subcommands = {
      {
        name = "setup",
        summary = "Send prisn.local lookups of this host to prisn's DNS (--undo: stop)",
        description = "With systemd-resolved, writes the drop-in " .. DROPIN .. "\n"
          .. "(DNS=the server's DNS address, Domains=~prisn.local: only names under\n"
          .. "prisn.local go there) and restarts systemd-resolved; --undo removes it. Without\n"
          .. "systemd-resolved it changes nothing and prints what to add where. The address\n"
          .. "is the running server's DNS (prisn server status), or --address. Needs root to\n"
          .. "write under /. Workloads need none of this (docs/NETWORKING.md).",
        flags = {
          { name = "undo", type = "bool", summary = "Remove what 'prisn dns setup' added" },
          { name = "address", type = "string", placeholder = "ADDR",
            summary = "The DNS address to use (default: the running server's)" },
          { name = "root", type = "string", placeholder = "DIR",
            summary = "Write under DIR instead of / (an image being built); restarts nothing" },
        },
        examples = {
          { "prisn dns setup", "As root: resolve NAME.NS.prisn.local from this host's shell" },
          { "prisn dns setup --undo", "As root: take it out again" },
          { "prisn dns setup --root /mnt/image", "Write the drop-in into an image being built" },
        },
        handler = setup,
      },
    },
  },
}
