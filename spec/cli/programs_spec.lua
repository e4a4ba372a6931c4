-- luacheck: no max line length
-- One consistent command line for every program (the command engine, dbtool.command): the
-- same version line, a subcommand's own help (never the whole page, never paged), unknown
-- subcommands and options exit 9 with a suggestion (rickdb keeps rick_db's 255), a missing
-- value 3, bundled short options, --opt=value, `--`, colour and paging switches.
local t = require "testutil"

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local BASE = { LOCAL_DIR = false, DATABASE_DIR = false, PGURL = false, DB_URL = false, RICKDB_CONFIG = false,
  MIGRATION_DIR = false, HECTIC_LOG = false, NO_COLOR = false, FORCE_COLOR = false, DB_TOOL_TTY = false,
  DB_TOOL_COLOR = false, PAGER = false, DB_TOOL_PAGER = false, TERM = "xterm", HECTIC_NAMESPACE = false,
  LINES = false }

local function run(argv, env, cwd)
  local e = {}
  for k, v in pairs(BASE) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  local r = t.run { argv = argv, env = e, cwd = cwd or t.tmpdir("prog") }
  r.stdout = r.stdout:gsub("\27%[[%d;]*m", "") -- help is bold on a terminal
  return r
end

local PROGRAMS = { "database", "migrator", "rickdb", "postgres-init", "postgres-cleanup", "db-ops", "db-tool" }

describe("every program", function()
  it("prints the same version line for -V and --version (exit 0)", function()
    local line
    for _, p in ipairs(PROGRAMS) do
      for _, flag in ipairs { "-V", "--version" } do
        local r = run { p, flag }
        assert.are.equal(0, r.code, p .. " " .. flag .. ": " .. r.stderr)
        line = line or r.stdout
        assert.are.equal(line, r.stdout, p .. " " .. flag)
      end
    end
    assert.matches("^db%-tool %d+%.%d+%.%d+ %(Lua 5%.4; migrator version 0%.0%.1%)\n$", line)
    -- after a subcommand too
    assert.are.equal(line, run({ "database", "deploy", "-V" }).stdout)
    assert.are.equal(line, run({ "rickdb", "list", "--version" }).stdout)
  end)

  it("exits 9 for an unknown subcommand, with the nearest name (rickdb: its 255)", function()
    for _, c in ipairs {
      { { "database", "deplyo" }, 9, "did you mean 'deploy'?" },
      { { "database", "secrets", "lsit" }, 9, "did you mean 'list'?" },
      { { "migrator", "mgirate" }, 9, "did you mean 'migrate'?" },
      { { "db-ops", "secrtes" }, 9, "subcommand secrtes does not exist" },
      { { "db-ops", "secrets", "laod" }, 9, "did you mean 'load'?" },
      { { "rickdb", "lsit" }, 255, "did you mean 'list'?" },
      { { "postgres-cleanup", "nope" }, 9, "unexpected argument 'nope'" },
      { { "postgres-init", "nope" }, 9, "unexpected argument 'nope'" },
      { { "db-tool", "migrator", "mgirate" }, 9, "did you mean 'migrate'?" },
    } do
      local r = run(c[1])
      assert.are.equal(c[2], r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      has(r.stderr, c[3])
      assert.are.equal("", r.stdout)
    end
  end)

  it("exits 9 for an unknown option, with the nearest one, and 3 for a missing value", function()
    local r = run { "database", "check", "--no-pach" }
    assert.are.equal(9, r.code)
    has(r.stderr, "did you mean '--no-patch'?")
    r = run { "database", "--verbsoe", "check" }
    assert.are.equal(9, r.code)
    has(r.stderr, "did you mean '--verbose'?")
    r = run { "postgres-cleanup", "--hepl" }
    assert.are.equal(9, r.code)
    has(r.stderr, "did you mean '--help'?")
    r = run { "database", "sql", "-c" }
    assert.are.equal(3, r.code)
    has(r.stderr, "-c requires a value (SQL)")
    r = run { "database", "--color" }
    assert.are.equal(3, r.code)
    r = run { "database", "--color=sometimes", "deploy" }
    assert.are.equal(9, r.code)
    has(r.stderr, "invalid value 'sometimes' for --color (one of: auto, always, never)")
    -- kept on purpose: rick_db's 255 for every usage error, secrets' "missing value for"
    r = run { "rickdb", "list", "--config" }
    assert.are.equal(255, r.code)
    r = run { "database", "secrets", "load", "--dotenv-file" }
    assert.are.equal(3, r.code)
    has(r.stderr, "missing value for --dotenv-file")
  end)

  it("takes bundled short flags, --opt=value and `--`", function()
    local dir = t.tmpdir("prog")
    t.write(dir .. "/a.sql", "SELECT 1;\n")
    -- sql: -1 -p -c bundled, -c's value the next word; after --, words are files even "-x"
    local r = run({ "database", "sql", "-1pc", "SELECT 1", "--", "-x", "b" }, {}, dir)
    assert.are.equal(9, r.code)
    has(r.stderr, "unexpected argument 'b'")
    r = run({ "database", "check", "-PHz" })
    assert.are.equal(9, r.code)
    has(r.stderr, "-PHz")
    r = run({ "migrator", "--migration-dir=" .. dir .. "/m", "list", "-r" })
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("prints a subcommand's own help, never the program's page, never through a pager", function()
    local pager = { DB_TOOL_TTY = "1", DB_TOOL_PAGER = "false" } -- a pager that prints nothing
    for _, c in ipairs {
      { { "database", "deploy", "--help" }, "Usage: database deploy" },
      { { "database", "help", "deploy" }, "Usage: database deploy" },
      { { "database", "secrets", "load", "-h" }, "Usage: database secrets load" },
      { { "migrator", "migrate", "--help" }, "Usage: migrator migrate" },
      { { "migrator", "-h", "status" }, "Usage: migrator status" },
      { { "rickdb", "migrate", "--help" }, "Usage: rickdb [database] migrate" },
      { { "db-ops", "secrets", "load", "--help" }, "Usage: db-ops secrets load" },
      { { "db-tool", "completion", "--help" }, "Usage: db-tool completion" },
    } do
      local r = run(c[1], pager)
      assert.are.equal(0, r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      has(r.stdout, c[2])
      assert.is_nil(r.stdout:find("Environment:", 1, true), table.concat(c[1], " "))
    end
    -- the program's page goes through the pager on a terminal; --no-pager or piped: printed
    local r = run({ "database", "--help" }, pager)
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout)
    r = run({ "database", "--no-pager", "--help" }, pager)
    has(r.stdout, "Usage: database")
    r = run({ "database", "--help" }, { DB_TOOL_PAGER = "false" })
    has(r.stdout, "Usage: database")
    r = run({ "migrator", "--help" }, { DB_TOOL_TTY = "1", DB_TOOL_PAGER = "cat" })
    has(r.stdout, "Usage: migrator")
    -- PAGER is used when DB_TOOL_PAGER is not set
    local dir = t.tmpdir("prog")
    local script = t.write(dir .. "/pager", "#!/bin/sh\necho paged; cat >/dev/null\n")
    assert(os.execute("chmod +x " .. t.shq(script)))
    r = run({ "migrator", "--help" }, { DB_TOOL_TTY = "1", PAGER = script })
    assert.are.equal("paged\n", r.stdout)
    -- only what does not fit the screen (LINES, else 24 rows) is paged
    r = run({ "migrator", "--help" }, { DB_TOOL_TTY = "1", PAGER = script, LINES = "200" })
    has(r.stdout, "Usage: migrator")
  end)

  it("colours only warnings and errors, as --color, NO_COLOR, FORCE_COLOR and TERM say", function()
    local function colored(argv, env) return run(argv, env).stderr:find("\27[", 1, true) ~= nil end
    local bad = { "database", "nonsense" }
    assert.is_false(colored(bad))                                   -- not a terminal
    assert.is_true(colored(bad, { DB_TOOL_TTY = "1" }))               -- a terminal
    assert.is_false(colored(bad, { DB_TOOL_TTY = "1", NO_COLOR = "1" }))
    assert.is_false(colored(bad, { DB_TOOL_TTY = "1", TERM = "dumb" }))
    assert.is_true(colored(bad, { FORCE_COLOR = "1" }))
    assert.is_false(colored(bad, { FORCE_COLOR = "0" }))
    assert.is_true(colored({ "database", "--color=always", "nonsense" }))
    assert.is_true(colored({ "database", "--color", "always", "nonsense" }, { NO_COLOR = "1" }))
    assert.is_false(colored({ "database", "--color=never", "nonsense" }, { DB_TOOL_TTY = "1", FORCE_COLOR = "1" }))
    -- an info line is plain even in colour; the error after it is red
    local dir = t.tmpdir("prog")
    local r = run({ "migrator", "--color=always", "-d", dir, "create", "--name", "a b" }, {}, dir)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("migrator> migration name cleaned", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("\27[", 1, true))
    r = run({ "migrator", "--color=always", "mgirate" })
    assert.matches("\27[31m", r.stderr, 1, true)
  end)
end)
