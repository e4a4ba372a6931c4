-- luacheck: no max line length
-- Shell completion generated from the command specs (`db-tool completion bash|zsh|fish`),
-- exercised in the real shells: bash's completion function called as bash calls it, the zsh
-- script loaded by compinit's compdef, fish's own `complete -C`.
local t = require "testutil"

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local function lacks(text, s)
  assert(not text:find(s, 1, true), "did not expect '" .. s .. "' in:\n" .. text)
end

local function project()
  local dir = t.tmpdir("compl")
  for _, m in ipairs { "20260101000000-create-users", "20260102000000-add-email" } do
    t.write(dir .. "/db/migration/" .. m .. "/up.sql", "SELECT 1;\n")
    t.write(dir .. "/db/migration/" .. m .. "/down.sql", "SELECT 1;\n")
  end
  t.write(dir .. "/other/20261231000000-elsewhere/up.sql", "SELECT 1;\n")
  t.write(dir .. "/rickdb.toml", '[db]\nengine = "sqlite"\ndb_file = "a.db"\n[db_reports]\nengine = "sqlite"\n'
    .. 'db_file = "r.db"\n')
  t.write(dir .. "/db/lua/dbtool/migrator/cmd/baseline.lua",
    'return { name = "baseline", summary = "project command", run = function() end }\n')
  return dir
end

local function script(shell)
  local r = t.run { "db-tool", "completion", shell }
  assert.are.equal(0, r.code, r.stderr)
  return r.stdout
end

local ENV = { LOCAL_DIR = false, DATABASE_DIR = false, MIGRATION_DIR = false, RICKDB_CONFIG = false,
  DB_TOOL_LUA_PATH = false }

-- LOCAL_DIR: the project (migrations in $LOCAL_DIR/db/migration), set in each test
local function env(extra)
  local e = {}
  for k, v in pairs(ENV) do e[k] = v end
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

describe("bash completion", function()
  -- every case: the words of the line (the last one is being completed) → COMPREPLY
  local function complete(dir, lines)
    local file = t.write(dir .. "/c.bash", script("bash"))
    local body = { "source " .. t.shq(file) }
    for _, words in ipairs(lines) do
      local q = {}
      for i, w in ipairs(words) do q[i] = t.shq(w) end
      body[#body + 1] = "COMP_WORDS=(" .. table.concat(q, " ") .. "); COMP_CWORD=" .. (#words - 1)
        .. "; COMPREPLY=(); _db_tool_complete; echo \"${COMPREPLY[*]}\""
    end
    local r = t.run { argv = { "bash", "--norc", "-c", table.concat(body, "\n") }, cwd = dir,
      env = env { LOCAL_DIR = dir } }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stderr)
    local out = {}
    for l in r.stdout:gmatch("([^\n]*)\n") do out[#out + 1] = l end
    return out
  end

  it("completes subcommands, options, option values and migration names", function()
    local dir = project()
    local out = complete(dir, {
      { "database", "de" },
      { "database", "check", "-" },
      { "migrator", "migrate", "to", "" },
      { "migrator", "migrate", "to", "2026010" },
      { "migrator", "-d", dir .. "/other", "migrate", "to", "" },
      { "migrator", "migrate", "" },
      { "migrator", "" },
      { "database", "--color", "=", "a" },
      { "rickdb", "" },
      { "database", "secrets", "l" },
      { "db-tool", "completion", "" },
      { "db-tool", "" },
      { "database", "sql", "rick" },
    })
    assert.are.equal("deploy", out[1])
    for _, o in ipairs { "--no-patch", "-P", "--no-hydrate", "-H", "--mock", "--reuse", "--help", "--url" } do
      has(" " .. out[2] .. " ", " " .. o .. " ")
    end
    lacks(out[2], "--cleanup") -- deploy's, not check's
    assert.are.equal("20260101000000-create-users 20260102000000-add-email head last latest", out[3])
    assert.are.equal("20260101000000-create-users 20260102000000-add-email", out[4])
    assert.are.equal("20261231000000-elsewhere head last latest", out[5])
    assert.are.equal("down to up", out[6])
    for _, c in ipairs { "baseline", "create", "fetch", "init", "list", "migrate", "status" } do
      has(" " .. out[7] .. " ", " " .. c .. " ")
    end
    assert.are.equal("always auto", out[8])
    has(out[9], "migrate")
    has(out[9], "reports") -- [db_reports] of rickdb.toml
    assert.are.equal("list load", out[10])
    assert.are.equal("bash fish zsh", out[11])
    has(out[12], "database")
    has(out[12], "completion")
    assert.are.equal("rickdb.toml", out[13]) -- a file argument: the shell's file names
  end)
end)

describe("zsh completion", function()
  it("loads without errors and registers the programs", function()
    local dir = project()
    local file = t.write(dir .. "/_db_tool", script("zsh"))
    local r = t.run { argv = { "zsh", "-f", "-c", "autoload -U compinit && compinit -u -d " .. t.shq(dir .. "/zcd")
      .. " && source " .. t.shq(file) .. " && print -r -- $_comps[database] $_comps[migrator] $_comps[db-ops]" },
      cwd = dir, env = env { HOME = dir } }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stderr)
    assert.are.equal("_db_tool _db_tool _db_tool\n", r.stdout)
    -- the completion function itself, with zsh's _describe and _files standing in: what it
    -- hands them for a line (words, CURRENT as the completion system sets them)
    local function zcomplete(...)
      local words = {}
      for i, w in ipairs { ... } do words[i] = t.shq(w) end
      local body = "compdef() { : }\n_describe() { print -rl -- \"${(@P)4}\" }\n_files() { print -r -- FILES \"$@\" }\n"
        .. "source " .. t.shq(file) .. "\nwords=(" .. table.concat(words, " ") .. "); CURRENT=${#words}; _db_tool\n"
      local res = t.run { argv = { "zsh", "-f", "-c", body }, cwd = dir, env = env { HOME = dir, LOCAL_DIR = dir } }
      assert.are.equal(0, res.code, res.stderr)
      assert.are.equal("", res.stderr)
      return res.stdout
    end
    assert.matches("^deploy:start the local cluster", zcomplete("database", "de"))
    local to = zcomplete("migrator", "migrate", "to", "")
    has(to, "20260101000000-create-users\n20260102000000-add-email\n")
    has(to, "latest\n")
    has(zcomplete("database", "check", "--no-p"), "--no-patch:do not apply the test data\n")
    assert.are.equal("FILES\n", zcomplete("database", "sql", ""))
    assert.are.equal("FILES -/\n", zcomplete("rickdb", "migrate", ""))
  end)
end)

describe("fish completion", function()
  it("loads without errors and completes with fish's own `complete -C`", function()
    local dir = project()
    local file = t.write(dir .. "/db-tool.fish", script("fish"))
    local r = t.run { argv = { "fish", "--no-config", "-c", "source " .. t.shq(file)
      .. "; complete -C'database de'; echo ==; complete -C'migrator migrate to '; echo ==;"
      .. " complete -C'database check --no-p'" }, cwd = dir, env = env { HOME = dir, LOCAL_DIR = dir } }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stderr)
    local parts = {}
    for p in (r.stdout .. "==\n"):gmatch("(.-)==\n") do parts[#parts + 1] = p end
    assert.matches("^deploy\tstart the local cluster", parts[1])
    has(parts[2], "20260101000000-create-users\n")
    has(parts[2], "latest\n")
    has(parts[3], "--no-patch\tdo not apply the test data\n")
    has(parts[3], "--no-pager\t")
  end)
end)
