-- `database deploy`, `init` and `cleanup` end to end: the built binary, real clusters in the
-- project's focus/postgresql, the sample project (examples/) and small made-up ones.
local t = require "testutil"
local d = require "dbproject"

local function wd(dir) return dir .. "/focus/postgresql" end

-- a small project: one table from a nested include, a row in the test data
local SMALL = {
  ["db/src/entrypoint.sql"] = "\\echo small entrypoint\n\\ir tables/all.sql\n",
  ["db/src/tables/all.sql"] = "\\ir item.sql\n",
  ["db/src/tables/item.sql"] = "CREATE TABLE public.item (id int PRIMARY KEY, label text) "
    .. "INHERITS (hectic.created_at);\n",
  ["test-data.sql"] = "INSERT INTO public.item (id, label) VALUES (1, 'from test data');\n",
}

-- hooks that record what they saw in the log
local HOOKS = [[
local log = require("dbtool.log").ns("db hooks")
return { hooks = {
  before_deploy = function() log:info("before_deploy") end,
  after_deploy = function(ctx) log:info("after_deploy url=%s", tostring(ctx.url ~= nil)) end,
  before_hydrate = function() log:info("before_hydrate") end,
  after_hydrate = function(ctx)
    local conn <close> = require("dbtool.pg").connect(ctx.url)
    local r = conn:exec("SELECT to_regclass('public.item') IS NOT NULL AS x")
    log:info("after_hydrate items table: %s", tostring(r[1].x))
  end,
  before_patch = function() log:info("before_patch") end,
  after_patch = function() log:info("after_patch") end,
} }
]]

local MOCKED = {
  ["db/src/entrypoint.sql"] = [[
\if :{?USE_MOCK}
  \echo mock on
  CREATE TABLE mode (name text) INHERITS (hectic.created_at);
  INSERT INTO mode (name) VALUES ('mock');
\else
  \echo mock off
  CREATE TABLE mode (name text) INHERITS (hectic.created_at);
  INSERT INTO mode (name) VALUES ('real');
\endif
]],
}

describe("database deploy", function()
  it("deploys the sample project (examples/): bundle, sources, test data", function()
    local dir = d.example()
    local r = d.database(dir, { "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    local url = d.cluster_url(dir)
    assert.are.equal("0.1.0", d.value(url, "SELECT version FROM hectic.version WHERE name = 'hectic'"))
    assert.is_true(d.value(url, "SELECT count(*) > 1 FROM pg_tables WHERE schemaname = 'shop'"))
    assert.is_true(d.value(url, "SELECT count(*) > 0 FROM shop.customer"))
    assert.is_true(d.running(wd(dir)))
    -- the local cluster is the default database of the other subcommands
    r = d.database(dir, { "test" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("all tests passed", r.stderr, 1, true)
  end)

  it("runs cluster, bundle, nested includes, hooks and test data, then one summary line", function()
    local files = {}
    for k, v in pairs(SMALL) do files[k] = v end
    files["db/db-tool.lua"] = HOOKS
    local dir = d.project(files)
    local r = d.database(dir, { "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    local url = d.cluster_url(dir)
    assert.are.equal("0.1.0", d.value(url, "SELECT version FROM hectic.version WHERE name = 'hectic'"))
    assert.are.equal("from test data", d.value(url, "SELECT label FROM public.item WHERE id = 1"))
    -- hooks in order, after_hydrate saw the sources, after_deploy got the URL
    local seen = {}
    for line in r.stderr:gmatch("db hooks> ([^\n]*)") do seen[#seen + 1] = line end
    assert.are.same({ "before_deploy", "before_hydrate", "after_hydrate items table: true", "before_patch",
      "after_patch", "after_deploy url=true" }, seen)
    -- the entrypoint's \echo goes to stdout; one summary line with the phases at the end
    assert.are.equal("small entrypoint\n", r.stdout)
    local last = r.stderr:match("([^\n]*)\n$")
    assert.matches("^db deploy> deploy done in [%d.]+ m?s "
      .. "%(cluster [^)]*bundle [^)]*sources [^)]*patch [^)]*%)", last)
    assert.matches(dir .. "/focus/postgresql/sock", last, 1, true)
    -- no per-phase lines when stderr is not a terminal
    assert.is_nil(r.stderr:find("✓", 1, true))

    -- --cleanup stops the cluster after a successful deploy (data kept on disk)
    r = d.database(dir, { "deploy", "--cleanup" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("db deploy> cleanup: stopping postgresql", r.stderr, 1, true)
    assert.matches("cluster stopped", r.stderr, 1, true)
    assert.is_false(d.running(wd(dir)))
    assert.are.equal("stopped", require("dbtool.cluster").status(wd(dir)).state)
  end)

  it("-m reaches \\if :{?USE_MOCK} in the sources", function()
    local dir = d.project(MOCKED)
    local r = d.database(dir, { "deploy", "-m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("mock mode enabled", r.stderr, 1, true)
    assert.are.equal("mock on\n", r.stdout)
    local url = d.cluster_url(dir)
    assert.are.equal("mock", d.value(url, "SELECT name FROM mode"))
    r = d.database(dir, { "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("mock off\n", r.stdout)
    assert.are.equal("real", d.value(url, "SELECT name FROM mode"))
  end)

  it("-H -P only starts the cluster; -H applies the test data without hydrating", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "CREATE TABLE should_not_exist (x int);\n",
      ["test-data.sql"] = "CREATE TABLE from_patch (x int);\n",
    }
    local r = d.database(dir, { "deploy", "--no-hydrate", "--no-patch" })
    assert.are.equal(0, r.code, r.stderr)
    local url = d.cluster_url(dir)
    assert.are.equal(1, d.value(url, "SELECT 1"))
    assert.is_false(d.value(url, "SELECT count(*) > 0 FROM pg_namespace WHERE nspname = 'hectic'"))
    assert.is_false(d.has(url, "public.from_patch"))
    r = d.database(dir, { "deploy", "-H" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(url, "public.from_patch"))
    assert.is_false(d.has(url, "public.should_not_exist"))
    assert.is_false(d.value(url, "SELECT count(*) > 0 FROM pg_namespace WHERE nspname = 'hectic'"))
  end)

  it("--reuse keeps the data and skips hydrate and patch; a plain deploy starts over", function()
    local dir = d.project(SMALL)
    local r = d.database(dir, { "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    local url = d.cluster_url(dir)
    d.exec(url, "INSERT INTO public.item (id, label) VALUES (2, 'added by hand')")
    r = d.database(dir, { "deploy", "--reuse" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout) -- the entrypoint did not run
    assert.matches("cluster reused", r.stderr, 1, true)
    assert.are.equal("added by hand", d.value(url, "SELECT label FROM public.item WHERE id = 2"))
    -- PG_REUSE in the environment reuses too, and still hydrates and patches
    d.exec(url, "DROP TABLE public.item")
    r = d.database(dir, { "deploy" }, { PG_REUSE = "1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("small entrypoint", r.stdout, 1, true)
    assert.are.equal("from test data", d.value(url, "SELECT label FROM public.item WHERE id = 1"))
    d.exec(url, "INSERT INTO public.item (id, label) VALUES (3, 'kept until a fresh deploy')")
    -- without --reuse the cluster is fresh
    r = d.database(dir, { "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(1, d.value(url, "SELECT count(*)::int FROM public.item"))
  end)

  it("shows each phase with its time on a terminal", function()
    local dir = d.project(SMALL)
    local r = d.database(dir, { "deploy", "--cleanup" },
      { DB_TOOL_TTY = "1", HECTIC_DOTENV_CONTENT = "K=v1234" })
    assert.are.equal(0, r.code, r.stderr)
    for _, phase in ipairs { "cluster", "bundle", "secrets", "sources", "patch", "stop" } do
      assert.matches("db deploy> ✓ " .. phase .. " +[%d.]+ m?s\n", r.stderr)
    end
    assert.matches("deploy: cluster …", r.stderr, 1, true)
    assert.matches("deploy done in", r.stderr, 1, true)
  end)

  it("stops at a failing source with file:line, exit 1, the cluster left running", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "\\ir broken.sql\n",
      ["db/src/broken.sql"] = "CREATE TABLE ok_table (x int) INHERITS (hectic.created_at);\n\nSELEC 1;\n",
      ["test-data.sql"] = "CREATE TABLE patched (x int);\n",
    }
    local r = d.database(dir, { "deploy" })
    assert.are.equal(1, r.code)
    assert.matches("broken.sql:3:1: syntax error at or near \"SELEC\"", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("deploy done", 1, true))
    local url = d.cluster_url(dir)
    assert.is_true(d.running(wd(dir)))
    assert.is_false(d.has(url, "public.patched")) -- patch did not run
  end)

  it("rejects bad arguments (exit 9) and a missing LOCAL_DIR (exit 3) before touching anything", function()
    local dir = d.project(SMALL)
    local r = d.database(dir, { "deploy", "--wat" })
    assert.are.equal(9, r.code)
    assert.matches("deploy: unknown argument --wat", r.stderr, 1, true)
    r = d.database(dir, { "deploy", "extra" })
    assert.are.equal(9, r.code)
    assert.are.same({}, d.ls(dir .. "/focus"))
    r = d.database(dir, { "deploy" }, { LOCAL_DIR = false })
    assert.are.equal(3, r.code)
    assert.matches("LOCAL_DIR", r.stderr, 1, true)
    r = d.database(dir, { "deploy", "--help" }, { LOCAL_DIR = false })
    assert.are.equal(0, r.code)
    for _, flag in ipairs { "--cleanup", "--no-patch", "--no-hydrate", "--mock", "--reuse" } do
      assert.matches(flag, r.stdout, 1, true)
    end
  end)

  it("--json: one document with the steps and the URL; on failure the error as data", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] =
        "\\echo hydrating\nCREATE TABLE item (id int) INHERITS (hectic.created_at);\n",
      ["test-data.sql"] = "INSERT INTO item (id) VALUES (1);\n",
    }
    local r = d.database(dir, { "deploy", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^{.*}\n$", r.stdout)
    assert.matches("hydrating\n", r.stderr, 1, true)
    local function jget(path) return d.value(t.cluster().url, "SELECT $1::jsonb #>> $2", r.stdout, path) end
    assert.are.equal("1", jget("{schema_version}"))
    assert.are.equal("database deploy", jget("{command}"))
    assert.are.equal("true", jget("{ok}"))
    assert.are.equal("0", jget("{exit_code}"))
    local url = jget("{url}"):gsub("^postgresql://[^@]*@/", "")
    assert.are.equal((d.cluster_url(dir):gsub("^postgresql:///", "")), url)
    assert.are.equal("cluster,bundle,sources,patch", d.value(t.cluster().url,
      "SELECT string_agg(s->>'name', ',') FROM jsonb_array_elements($1::jsonb->'steps') s", r.stdout))
    assert.are.equal("true", jget("{cluster,running}"))
    assert.are.equal(1, d.value(d.cluster_url(dir), "SELECT count(*)::int FROM item"))
    -- failure: the test data refers to a missing column
    t.write(dir .. "/test-data.sql", "INSERT INTO item (nope) VALUES (1);\n")
    r = d.database(dir, { "deploy", "--json" })
    assert.are.equal(1, r.code)
    assert.are.equal("false", jget("{ok}"))
    assert.are.equal("1", jget("{exit_code}"))
    assert.are.equal(dir .. "/test-data.sql", jget("{error,file}"))
    assert.are.equal("1", jget("{error,line}"))
    assert.are.equal("19", jget("{error,column}"))
    assert.are.equal("42703", jget("{error,sqlstate}"))
    assert.are.equal("patch", jget("{error,step}"))
    -- a failure before any step: exit code and message as data (LOCAL_DIR missing: exit 3)
    r = d.database(dir, { "deploy", "--json" }, { LOCAL_DIR = false, PG_WORKING_DIR = false })
    assert.are.equal(3, r.code)
    assert.are.equal("3", jget("{error,exit_code}"))
    assert.matches("LOCAL_DIR", jget("{error,message}"), 1, true)
    assert.are.equal("cluster", jget("{error,step}"))
  end)
end)

describe("database init and cleanup", function()
  it("init starts the cluster (eval-able exports), --reuse keeps data, cleanup removes it", function()
    local dir = d.project(SMALL)
    local r = d.database(dir, { "init" })
    assert.are.equal(0, r.code, r.stderr)
    local url = r.stdout:match("export PGURL='([^']*)'")
    assert.is_string(url, r.stdout)
    d.exec(url, "CREATE TABLE keep_me (x int)")
    r = d.database(dir, { "init", "--reuse" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(url, "public.keep_me"))
    -- hydrate finds the running local cluster without any URL
    r = d.database(dir, { "hydrate" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(url, "public.item"))
    r = d.database(dir, { "cleanup" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("stopping cluster at " .. wd(dir), r.stderr, 1, true)
    assert.is_false(d.running(wd(dir)))
    assert.is_nil(require("posix.sys.stat").stat(wd(dir)))
    -- nothing to clean: still 0
    r = d.database(dir, { "cleanup" })
    assert.are.equal(0, r.code, r.stderr)
    r = d.database(dir, { "cleanup", "now" })
    assert.are.equal(9, r.code)
    assert.matches("cleanup: unexpected argument now", r.stderr, 1, true)
    r = d.database(dir, { "init", "--wat" })
    assert.are.equal(9, r.code)
    assert.matches("init argument --wat does not exist", r.stderr, 1, true)
  end)
end)

describe("database with the default pg_cron preload", function()
  local have = require("posix.sys.stat").stat(require("dbtool.cluster").pkglibdir(
    require("dbtool.cluster").bindir()) .. "/pg_cron.so")
  local run = have and it or pending
  run("deploys with PG_SHARED_PRELOAD_LIBRARIES unset (pg_cron preloaded)", function()
    local dir = d.project(SMALL)
    local r = d.database(dir, { "deploy", "-c" }, { PG_SHARED_PRELOAD_LIBRARIES = false })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_false(d.running(wd(dir)))
  end)
end)

describe("database subcommands that need a database", function()
  it("say so and exit 3 when there is none", function()
    local dir = d.project(SMALL)
    for _, cmd in ipairs { { "hydrate" }, { "patch" }, { "test" } } do
      t.write(dir .. "/db/test/test.sql", "SELECT 1;\n")
      local r = d.database(dir, cmd)
      assert.are.equal(3, r.code, cmd[1] .. ": " .. r.stderr)
      assert.matches("no database to connect to: looked at -u, PGURL, DB_URL, DATABASE_URL, the running "
        .. "local cluster (PG_WORKING_DIR), libpq's environment (PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, "
        .. "PGUSER, PGSERVICE); no local cluster is running in " .. wd(dir), r.stderr, 1, true)
      assert.matches("hint: pass -u URL", r.stderr, 1, true)
    end
    assert.are.same({}, d.ls(dir .. "/focus"))
  end)
end)
