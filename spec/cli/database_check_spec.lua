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
end)
