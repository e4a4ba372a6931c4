-- luacheck: no max line length
-- `make install DESTDIR=… PREFIX=/usr` puts the binary, its links, a manual page per program
-- (generated from the command specs; each names every subcommand and option and renders
-- without a groff warning) and the bash, zsh and fish completions in the standard places;
-- `make uninstall` leaves nothing.
local t = require "testutil"

local PROGRAMS = { "database", "migrator", "rickdb", "postgres-init", "postgres-cleanup", "db-ops", "db-tool" }

local function make(...)
  local argv = { "make", "-s", "-C", t.top, "BUILD=" .. t.build, ... }
  local r = t.run { argv = argv, env = { MAKEFLAGS = false, MAKELEVEL = false, DESTDIR = false, PREFIX = false } }
  assert.are.equal(0, r.code, r.stdout .. r.stderr)
  return r
end

local function files_under(dir)
  local r = t.run { argv = { "find", dir, "-mindepth", "1" } }
  local out = {}
  for l in r.stdout:gmatch("[^\n]+") do out[#out + 1] = l:sub(#dir + 1) end
  table.sort(out)
  return out
end

-- every flag of every command of `spec` (a group or a command), as man(7) writes it
local function flags_of(spec, out)
  local command = require "dbtool.command"
  out = out or {}
  for _, o in ipairs(spec.options or {}) do
    if not o.hidden then
      for _, n in ipairs(o) do out[#out + 1] = (n:gsub("%-", "\\-")) end
    end
  end
  if command.is_group(spec) then
    for name, c in pairs(command.commands(spec)) do
      out[#out + 1] = name:gsub("%-", "\\-")
      flags_of(c.module, out)
    end
  end
  return out
end

describe("make install", function()
  it("installs binaries, links, man pages and completions under DESTDIR/PREFIX; uninstall removes them", function()
    local dest = t.tmpdir("inst")
    make("install", "DESTDIR=" .. dest, "PREFIX=/usr")
    local usr = dest .. "/usr"
    local stat = require "posix.sys.stat"
    for _, p in ipairs(PROGRAMS) do
      assert.is_truthy(stat.stat(usr .. "/bin/" .. p), p)
      assert.is_truthy(stat.stat(usr .. "/share/man/man1/" .. p .. ".1"), p .. ".1")
      assert.is_truthy(stat.lstat(usr .. "/share/bash-completion/completions/" .. p), "bash " .. p)
      assert.is_truthy(stat.lstat(usr .. "/share/fish/vendor_completions.d/" .. p .. ".fish"), "fish " .. p)
    end
    assert.is_truthy(stat.stat(usr .. "/share/zsh/site-functions/_db_tool"))
    -- the installed links run the installed binary; the completions call it by its final path
    local r = t.run { usr .. "/bin/migrator", "--version" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("migrator version 0.0.1", r.stdout, 1, true)
    local bash = t.read(usr .. "/share/bash-completion/completions/database")
    assert.matches("'/usr/bin/db-tool' __complete bash", bash, 1, true)
    assert.matches("'/usr/bin/db-tool' __complete zsh", t.read(usr .. "/share/zsh/site-functions/_db_tool"), 1,
      true)
    assert.matches("'/usr/bin/db-tool' __complete fish", t.read(usr .. "/share/fish/vendor_completions.d/rickdb.fish"),
      1, true)
    assert.matches("/usr/bin/db-tool", t.read(usr .. "/bin/postgres-init"), 1, true)

    -- every page renders without a warning and names every subcommand and option
    local cli = require "dbtool.cli"
    for _, p in ipairs(PROGRAMS) do
      local page = usr .. "/share/man/man1/" .. p .. ".1"
      r = t.run { "groff", "-man", "-ww", "-z", page }
      assert.are.equal(0, r.code, p .. ": " .. r.stderr)
      assert.are.equal("", r.stderr, p)
      local text = t.read(page)
      for _, section in ipairs { ".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS", ".SH EXIT STATUS" } do
        assert.matches(section, text, 1, true)
      end
      for _, f in ipairs(flags_of(cli.program(p))) do
        assert(text:find(f, 1, true) or text:find((f:gsub("\\%-", "-")), 1, true), p .. ".1 lacks " .. f)
      end
    end
    local db = t.read(usr .. "/share/man/man1/database.1")
    for _, s in ipairs { ".SH ENVIRONMENT", ".SH FILES", "secrets keygen", "LOCAL_DIR" } do
      assert.matches(s, db, 1, true)
    end

    make("uninstall", "DESTDIR=" .. dest, "PREFIX=/usr")
    assert.are.same({}, files_under(dest))
  end)
end)
