-- `database check` end to end: the deploy runs in a temporary cluster under TMPDIR that is
-- gone afterwards — on success, on failure, and on Ctrl-C at any point — and the user's own
-- cluster directory is never touched.
local t = require "testutil"
local d = require "dbproject"
local psignal = require "posix.signal"

-- nothing of a check left: no directory in `tmp`, no process working in it (after a success
-- the files are deleted by a detached rm: give it a moment)
local function assert_nothing_left(tmp)
  d.wait_for(function() return #d.ls(tmp) == 0 and #d.processes(tmp .. "/db-tool-check-") == 0 end, 10)
  assert.are.same({}, d.ls(tmp))
  assert.are.same({}, d.processes(tmp .. "/db-tool-check-"))
end

local SMALL = {
  ["db/src/entrypoint.sql"] = "\\echo hydrating\nCREATE TABLE item (id int) INHERITS (hectic.created_at);\n"
    .. "\\if :{?USE_MOCK}\n\\echo mock reached\n\\endif\n",
  ["test-data.sql"] = "INSERT INTO item (id) VALUES (1);\n\\echo patched\n",
}

describe("database check", function()
  it("deploys the sample project in a throw-away cluster and leaves nothing behind", function()
    local dir = d.example()
    local tmp = t.tmpdir("checktmp")
    local r = d.database(dir, { "check" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("db check> isolated cluster: " .. tmp .. "/db-tool-check-", r.stderr, 1, true)
    assert.matches("db check> check PGURL: postgresql://", r.stderr, 1, true)
    local last = r.stderr:match("([^\n]*)\n$")
    assert.matches("^db check> check: success — deploy completed cleanly in [%d.]+ m?s %(cluster .*patch",
      last)
    assert_nothing_left(tmp)
    -- the project's own cluster directory was not created
    assert.is_nil(require("posix.sys.stat").stat(dir .. "/focus"))
  end)

  it("-H, -P, -m and --reuse choose the steps, as for deploy", function()
    local dir = d.project(SMALL)
    local tmp = t.tmpdir("checktmp")
    local r = d.database(dir, { "check", "-m" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("hydrating\nmock reached\npatched\n", r.stdout)
    r = d.database(dir, { "check", "--no-patch" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("hydrating\n", r.stdout)
    r = d.database(dir, { "check", "-H" }, { TMPDIR = tmp })
    -- the test data needs the table made by hydrate
    assert.are.equal(1, r.code)
    assert.matches("test-data.sql:1:13: relation \"item\" does not exist", r.stderr, 1, true)
    assert_nothing_left(tmp)
    r = d.database(dir, { "check", "-H", "-P" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    r = d.database(dir, { "check", "--reuse" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert_nothing_left(tmp)
  end)

  it("does not touch a running cluster of the project", function()
    local dir = d.project(SMALL)
    local r = d.database(dir, { "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    local url = d.cluster_url(dir)
    d.exec(url, "INSERT INTO item (id) VALUES (99)")
    local tmp = t.tmpdir("checktmp")
    r = d.database(dir, { "check" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(2, d.value(url, "SELECT count(*)::int FROM item"))
    assert_nothing_left(tmp)
  end)

  it("fails with the step's error and exit code, and still removes its cluster", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] =
        "CREATE TABLE fine (x int) INHERITS (hectic.created_at);\nCREATE TABLE bad (x int);\n",
    }
    local tmp = t.tmpdir("checktmp")
    local r = d.database(dir, { "check" }, { TMPDIR = tmp })
    assert.are.equal(1, r.code)
    assert.matches("entrypoint.sql:2:1: hectic: table public.bad must INHERITS (hectic.created_at)",
      r.stderr, 1, true)
    assert.is_nil(r.stderr:find("success", 1, true))
    assert_nothing_left(tmp)
  end)

  it("removes its cluster when interrupted (SIGINT) while the sources run", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "\\echo started\nSELECT pg_sleep(60);\nCREATE TABLE never (x int);\n",
    }
    local tmp = t.tmpdir("checktmp")
    local p, out, err = d.spawn(dir, { "check" }, { TMPDIR = tmp })
    assert.is_true(d.wait_for(function() return (t.read(out) or "") == "started\n" end, 60), t.read(err))
    assert.are.equal(1, #d.processes(tmp .. "/db-tool-check-"))
    -- Ctrl-C in a terminal: SIGINT to the foreground process group
    psignal.kill(-p.pid, psignal.SIGINT)
    local how, code = p:wait(60)
    assert.are.equal("exited", how)
    assert.are.equal(130, code, t.read(err))
    assert.matches("interrupted", t.read(err), 1, true)
    assert_nothing_left(tmp)
  end)

  it("removes its cluster when interrupted (SIGINT) while the cluster starts", function()
    local dir = d.project(SMALL)
    -- as soon as the temporary directory exists (Ctrl-C right after mkdtemp), then a little
    -- later each round (copying the template, starting the server, creating the database)
    for _, delay in ipairs { 0, 0.01, 0.02, 0.05, 0.1, 0.2 } do
      local tmp = t.tmpdir("checktmp")
      local p, _, err = d.spawn(dir, { "check" }, { TMPDIR = tmp })
      assert.is_true(d.wait_for(function() return #d.ls(tmp) > 0 end, 60))
      require("dbtool.core").sleep(delay)
      psignal.kill(p.pid, psignal.SIGINT)
      local how, code = p:wait(60)
      assert.are.equal("exited", how)
      -- the check may have finished before the signal arrived
      assert.is_true(code == 130 or code == 0, t.read(err))
      assert_nothing_left(tmp)
    end
  end)

  it("rejects unknown arguments with exit 9, before making anything", function()
    local dir = d.project(SMALL)
    local tmp = t.tmpdir("checktmp")
    local r = d.database(dir, { "check", "--wat" }, { TMPDIR = tmp })
    assert.are.equal(9, r.code)
    assert.matches("check: unknown argument --wat", r.stderr, 1, true)
    assert_nothing_left(tmp)
    r = d.database(dir, { "check", "--help" })
    assert.are.equal(0, r.code)
    assert.matches("Ctrl-C", r.stdout, 1, true)
  end)
  -- JSON parsed by PostgreSQL (jsonb): a strict parser; `path` as for #>> ('{a,0,b}')
  local function jget(text, path)
    return d.value(t.cluster().url, "SELECT $1::jsonb #>> $2", text, path)
  end

  it("--test runs the tests in the throw-away cluster; --junit for CI; a failing test exits 1", function()
    local dir = d.example()
    local tmp = t.tmpdir("checktmp")
    local report = t.tmpdir("junit") .. "/report.xml"
    local r = d.database(dir, { "check", "--test", "--junit", report }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("db test> running tests from " .. dir .. "/db/test/test.sql", r.stderr, 1, true)
    assert.matches("check: success — deploy completed cleanly, tests passed in", r.stderr, 1, true)
    assert.are.equal(0, t.run { argv = { "xmllint", "--noout", report } }.code)
    assert.matches('<testsuites name="database test" tests="%d+" failures="0" errors="0"', t.read(report))
    assert_nothing_left(tmp)
    -- a failing test: exit 1, the deploy itself was fine, nothing left
    t.write(dir .. "/db/test/more/fail.sql", "DO $$ BEGIN ASSERT (SELECT count(*) FROM shop.currency) = 99, "
      .. "'ninety-nine currencies'; END $$;\n")
    r = d.database(dir, { "check", "--test", "--tap", "db/test/more", dir .. "/db/test/test.sql" },
      { TMPDIR = tmp, HYDRATE_LOG = "/dev/null", PATCH_LOG = "/dev/null" })
    assert.are.equal(1, r.code)
    assert.matches("^TAP version 13\n", r.stdout)
    assert.matches("not ok 1 - db/test/more/fail.sql:1:1\n", r.stdout, 1, true)
    assert.matches("check: the deploy completed cleanly, the tests failed", r.stderr, 1, true)
    assert_nothing_left(tmp)
    -- test options without --test
    r = d.database(dir, { "check", "--tap" }, { TMPDIR = tmp })
    assert.are.equal(9, r.code)
    assert.matches("--tap, --junit, -j and test paths go with --test", r.stderr, 1, true)
    assert_nothing_left(tmp)
  end)

  it("--json: one document with the steps and the tests; on failure the error as data", function()
    local dir = d.project(SMALL)
    local tmp = t.tmpdir("checktmp")
    -- (autovacuum is off in the throw-away cluster: nothing to gain there, and its workers
    -- would hold up the clones of --test -j)
    t.write(dir .. "/db/test/test.sql", "SELECT count(*) FROM item;\n"
      .. "DO $$ BEGIN ASSERT current_setting('autovacuum') = 'off', 'autovacuum is on'; END $$;\n")
    local r = d.database(dir, { "check", "--test", "--json" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^{.*}\n$", r.stdout)
    -- the script output went to stderr
    assert.matches("hydrating\n", r.stderr, 1, true)
    assert.are.equal("1", jget(r.stdout, "{schema_version}"))
    assert.are.equal("database check", jget(r.stdout, "{command}"))
    assert.are.equal("true", jget(r.stdout, "{ok}"))
    assert.are.equal("0", jget(r.stdout, "{exit_code}"))
    assert.is_nil(jget(r.stdout, "{error}"))
    assert.are.equal("cluster,bundle,sources,patch,test,remove",
      d.value(t.cluster().url,
        "SELECT string_agg(s->>'name', ',') FROM jsonb_array_elements($1::jsonb->'steps') s", r.stdout))
    assert.is_true(tonumber(jget(r.stdout, "{steps,0,duration_ms}")) > 0)
    assert.are.equal("true", jget(r.stdout, "{tests,passed}"))
    assert.are.equal("2", jget(r.stdout, "{tests,tests}"))
    assert.are.equal(dir .. "/db/test/test.sql:1 SELECT",
      jget(r.stdout, "{tests,files,0,points,0,description}"))
    assert_nothing_left(tmp)
    -- a failing step: the error as data, the step it failed in
    t.write(dir .. "/db/src/entrypoint.sql", "CREATE TABLE fine (x int) INHERITS (hectic.created_at);\n"
      .. "CREATE TABLE bad (x int);\n")
    r = d.database(dir, { "check", "--json" }, { TMPDIR = tmp })
    assert.are.equal(1, r.code)
    assert.are.equal("false", jget(r.stdout, "{ok}"))
    assert.are.equal("1", jget(r.stdout, "{exit_code}"))
    assert.are.equal(dir .. "/db/src/entrypoint.sql", jget(r.stdout, "{error,file}"))
    assert.are.equal("2", jget(r.stdout, "{error,line}"))
    assert.are.equal("1", jget(r.stdout, "{error,column}"))
    assert.are.equal("P0001", jget(r.stdout, "{error,sqlstate}"))
    assert.are.equal("sources", jget(r.stdout, "{error,step}"))
    assert.matches("must INHERITS", jget(r.stdout, "{error,message}"), 1, true)
    assert.are.equal("false", jget(r.stdout, "{steps,-1,ok}"))
    -- still reported on stderr for people
    assert.matches("entrypoint.sql:2:1: hectic: table public.bad", r.stderr, 1, true)
    assert_nothing_left(tmp)
  end)
end)
