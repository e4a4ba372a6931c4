-- The migration engine without a database: URL detection, policy, history check, target
-- resolution, planning, status classification, layouts, the migrator argument rules.
local migrate = require "dbtool.migrate"
local policy = require "dbtool.migrate.policy"
local layout_dirs = require "dbtool.migrate.layout_dirs"
local layout_flat = require "dbtool.migrate.layout_flat"
local store_sqlite = require "dbtool.migrate.store_sqlite"
local migrator = require "dbtool.migrator.common"
local command = require "dbtool.command"
local migrator_program = require "dbtool.personality.migrator"
local t = require "testutil"

local function recs(...)
  local out = {}
  for i, n in ipairs { ... } do out[i] = { name = n, up = n .. "/up.sql", down = n .. "/down.sql",
    path = n } end
  return out
end

local A, B, C, D = "20250101000000-a", "20250102000000-b", "20250103000000-c", "20250104000000-d"

local function raises(code, pattern, f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.are.equal(code, e.exit, tostring(e.msg))
  assert.matches(pattern, e.msg)
  return e
end

local function names(plan)
  local out = {}
  for i, s in ipairs(plan.steps) do out[i] = s.direction .. " " .. s.m.name end
  return out
end

describe("dbtool.migrate", function()
  describe("detect", function()
    it("picks the engine from the URL", function()
      assert.are.equal("postgresql", migrate.detect("postgresql://u@h/db").engine)
      assert.are.equal("postgresql", migrate.detect("postgres:///db?host=/tmp").engine)
      assert.are.equal("postgresql", migrate.detect("host=/tmp port=5432 dbname=x").engine)
      assert.are.same({ engine = "sqlite", path = "/abs/x.db" }, migrate.detect("sqlite:///abs/x.db"))
      assert.are.same({ engine = "sqlite", path = "rel.db" }, migrate.detect("sqlite://rel.db"))
      assert.are.same({ engine = "sqlite", path = "a/b.sqlite3" }, migrate.detect("a/b.sqlite3"))
      assert.are.same({ engine = "sqlite", path = "x.sqlite" }, migrate.detect("x.sqlite"))
      local d, msg = migrate.detect("mysql://x")
      assert.is_nil(d)
      assert.are.equal("unsupported database URL format: mysql://x", msg)
      assert.is_nil(migrate.detect("DB_URL"))
      assert.is_nil(migrate.detect(""))
    end)
  end)

  describe("policy", function()
    it("merges overrides and rejects bad ones", function()
      local p = assert(policy.merge(policy.defaults(), { lock_timeout = "5s", checksum = "warn" }))
      assert.are.equal("5s", p.lock_timeout)
      assert.are.equal("warn", p.checksum)
      assert.are.equal("prefix", p.history)
      local bad, msg = policy.merge(policy.defaults(), { checksum = "maybe" })
      assert.is_nil(bad)
      assert.matches("checksum must be one of off, verify, warn", msg)
      assert.matches("unknown setting 'colour'", select(2, policy.merge(policy.defaults(), { colour = 1 })))
      assert.matches("lock_timeout", select(2, policy.merge(policy.defaults(), { lock_timeout = "soon" })))
      assert.matches("unknown hook", select(2, policy.merge(policy.defaults(), { hooks = { x = print } })))
      assert.is_truthy(policy.merge(policy.defaults(), { lock_timeout = false,
        hooks = { after_each = print } }))
    end)

    it("recognises the no-transaction marker on the first line only", function()
      local p = policy.defaults()
      assert.is_true(policy.is_no_transaction(p, "-- db-tool: no-transaction"))
      assert.is_true(policy.is_no_transaction(p, "  --db-tool: no-transaction  "))
      assert.is_false(policy.is_no_transaction(p, "-- db-tool: transaction"))
      assert.is_false(policy.is_no_transaction(p, "CREATE INDEX CONCURRENTLY x ON t (a);"))
      assert.is_false(policy.is_no_transaction(p, nil))
    end)

    it("sorts in byte order whatever the case or encoding", function()
      local list = { "20250101000000-b", "20250101000000-B", "20250101000000-é", "20250101000000-a",
        "20250101000000-_", "20250101000000-" }
      policy.sort(list)
      assert.are.same({ "20250101000000-", "20250101000000-B", "20250101000000-_", "20250101000000-a",
        "20250101000000-b", "20250101000000-é" }, list)
      assert.is_true(policy.bytewise("B", "a"))
      assert.is_false(policy.bytewise("ab", "a"))
      assert.is_true(policy.bytewise("a", "ab"))
    end)
  end)

  describe("history check", function()
    it("accepts a prefix and reports the first mismatch like the original", function()
      assert.is_nil(migrate.check_history(recs(A, B, C), recs(A, B)))
      assert.is_nil(migrate.check_history(recs(A), {}))
      local m = migrate.check_history(recs(A, C), recs(A, B, C))
      assert.are.same({ position = 2, db = B, fs = C, fs_list = { A, C }, db_list = { A, B, C } }, m)
      local text = table.concat(migrate.mismatch_lines(m), "\n")
      for _, s in ipairs { "Migration history mismatch detected!", "Position: Migration #2", "Database has: "
        .. B,
        "Filesystem has: " .. C, "Full filesystem migrations (in order):", "1. " .. A,
        "Full database migrations (in order):", "3. " .. C, "To proceed anyway, use: --force!" } do
        assert.is_truthy(text:find(s, 1, true), s)
      end
      m = migrate.check_history(recs(A), recs(A, B))
      assert.are.equal(2, m.position)
      assert.is_nil(m.fs)
    end)
  end)

  describe("resolve", function()
    local fs = recs(A, B, "20250102000001-bb", D)
    it("finds full names, aliases, unique prefixes and descriptions", function()
      assert.are.equal(1, migrate.resolve(fs, A))
      assert.are.equal(4, migrate.resolve(fs, "latest"))
      assert.are.equal(4, migrate.resolve(fs, "head"))
      assert.are.equal(4, migrate.resolve(fs, "last"))
      assert.are.equal(0, migrate.resolve({}, "latest"))
      assert.are.equal(4, migrate.resolve(fs, "20250104"))
      assert.are.equal(3, migrate.resolve(fs, "bb"))
      assert.are.equal(1, migrate.resolve(fs, "a"))
    end)

    it("lists the candidates of an unknown or ambiguous target", function()
      local e = raises(1, "unknown migration: zzz", migrate.resolve, fs, "zzz")
      assert.is_truthy(e.msg:find("candidates:\n  " .. A, 1, true))
      assert.is_truthy(e.msg:find(D, 1, true))
      e = raises(2, "ambiguous migration '2025010200000'", migrate.resolve, fs, "2025010200000")
      assert.is_truthy(e.msg:find(B, 1, true))
      assert.is_truthy(e.msg:find("20250102000001-bb", 1, true))
      raises(1, "no migrations found", migrate.resolve, {}, "x")
      local many = {}
      for i = 1, 40 do many[i] = { name = string.format("202501010000%02d-m%d", i, i) } end
      for i = 1, 3 do many[#many + 1] = { name = string.format("202602010000%02d-n%d", i, i) } end
      policy.sort(many)
      e = raises(1, "candidates %(3 of 43%)", migrate.resolve, many, "20260201000077")
      assert.is_truthy(e.msg:find("20260201000003-n3", 1, true))
      assert.is_falsy(e.msg:find("-m1", 1, true))
    end)
  end)

  describe("plan", function()
    local fs = recs(A, B, C, D)
    it("moves up", function()
      assert.are.same({ "up " .. A }, names(migrate.plan(fs, {}, { kind = "up", n = 1 })))
      local p = migrate.plan(fs, recs(A), { kind = "up", n = "all" })
      assert.are.same({ "up " .. B, "up " .. C, "up " .. D }, names(p))
      assert.are.equal(A, p.from)
      assert.are.equal(D, p.to)
      assert.are.equal("up", p.direction)
      assert.are.same({ "up " .. B, "up " .. C }, names(migrate.plan(fs, recs(A), { kind = "up", n = 2 })))
      assert.is_true(migrate.plan(fs, recs(A, B, C, D), { kind = "up", n = "all" }).noop)
      assert.is_true(migrate.plan(fs, recs(A), { kind = "up", n = 0 }).noop)
    end)

    it("moves down", function()
      local p = migrate.plan(fs, recs(A, B, C), { kind = "down", n = 2 })
      assert.are.same({ "down " .. C, "down " .. B }, names(p))
      assert.are.equal(A, p.to)
      assert.are.equal(1, p.to_index)
      p = migrate.plan(fs, recs(A, B), { kind = "down", n = 2 })
      assert.is_nil(p.to)
      assert.are.equal(0, p.to_index)
    end)

    it("goes to a target both ways", function()
      assert.are.same({ "up " .. A, "up " .. B }, names(migrate.plan(fs, {}, { kind = "to", name = B })))
      assert.are.same({ "down " .. D, "down " .. C },
        names(migrate.plan(fs, recs(A, B, C, D), { kind = "to", name = B })))
      assert.is_true(migrate.plan(fs, recs(A, B), { kind = "to", name = B }).noop)
      assert.is_true(migrate.plan({}, {}, { kind = "to", name = "latest" }).noop)
      assert.are.same({ "down " .. A }, names(migrate.plan(recs(A), recs(A), { kind = "to", index = 0 })))
    end)

    it("gives the original's errors", function()
      raises(1, "^no migrations found$", migrate.plan, {}, {}, { kind = "up", n = "all" })
      raises(1, "^cannot migrate up 5 step%(s%): not enough migrations$", migrate.plan, fs, recs(A),
        { kind = "up", n = 5 })
      raises(1, "^cannot migrate up 1 step%(s%): not enough migrations$", migrate.plan, fs, recs(A, B, C, D),
        { kind = "up", n = 1 })
      raises(1, "^cannot migrate down: no migrations applied$", migrate.plan, fs, {}, { kind = "down",
        n = 1 })
      raises(1, "^cannot migrate down 3 step%(s%): would go before first migration$", migrate.plan, fs,
        recs(A, B), { kind = "down", n = 3 })
    end)

    it("plans on sets when the history is not a prefix (--force, out of order)", function()
      -- B is new but older than the applied C
      local p = migrate.plan(fs, recs(A, C), { kind = "up", n = "all" })
      assert.are.same({ "up " .. B, "up " .. D }, names(p))
      -- X is applied but has no files: it cannot be reverted
      raises(1, "cannot revert 20250105000000%-x: it is applied but its files are missing", migrate.plan, fs,
        recs(A, "20250105000000-x"), { kind = "down", n = 1 })
      assert.are.same({ "down " .. A }, names(migrate.plan(fs, recs(A, "20250105000000-x"),
        { kind = "to", index = 0 })))
    end)
  end)

  describe("classify", function()
    it("tells applied, modified, pending, out of order and missing apart", function()
      local fs = recs(A, B, C, D)
      fs[1].hash, fs[2].hash, fs[2].tree_hash, fs[3].hash = "h1", "h2", "t2new", "h3x"
      local applied = {
        { name = A, hash = "h1", applied_at = "2025-01-01T00:00:00Z" },
        { name = B, hash = "h2", tree_hash = "t2" },
        { name = "20250103500000-gone", hash = "hg" },
      }
      local rows, counts = migrate.classify(fs, applied)
      local states = {}
      for _, r in ipairs(rows) do states[#states + 1] = r.name .. "=" .. r.state .. (r.out_of_order and "*"
        or "") end
      assert.are.same({ A .. "=applied", B .. "=modified", C .. "=pending*", D .. "=pending",
        "20250103500000-gone=missing" }, states)
      assert.are.same({ applied = 1, modified = 1, pending = 2, missing = 1, total = 5 }, counts)
      assert.are.equal("files", rows[2].changed)
      assert.are.equal("script", migrate.changed({ hash = "x" }, { hash = "y" }))
      assert.is_nil(migrate.changed({ hash = "x", tree_hash = "t" }, { hash = "x" }))
    end)
  end)

  describe("layouts", function()
    it("dirs: 14-digit directories, single file wins over the entrypoint", function()
      local dir = t.tmpdir("layout")
      t.write(dir .. "/20251104192425-add-info-to-profile/up.sql", "select 1;")
      t.write(dir .. "/20251104192425-add-info-to-profile/down.sql", "select 1;")
      t.write(dir .. "/20250101000000-multi/up/entrypoint.sql", "\\ir x.sql")
      t.write(dir .. "/20250101000000-multi/up.sql", "select 1;")
      t.write(dir .. "/20250101000001-/down/entrypoint.sql", "select 1;")
      t.write(dir .. "/20250101000002-file.sql", "select 1;")       -- a file: ignored
      t.write(dir .. "/2025010100000-short/up.sql", "select 1;")    -- 13 digits: ignored
      t.write(dir .. "/notes/up.sql", "select 1;")
      local e = migrate.new { layout = "dirs", dir = dir }
      local list = e:discover()
      local got = {}
      for i, m in ipairs(list) do got[i] = m.name end
      assert.are.same({ "20250101000000-multi", "20250101000001-", "20251104192425-add-info-to-profile" },
        got)
      assert.are.equal(dir .. "/20250101000000-multi/up.sql", list[1].up)
      assert.is_false(list[1].up_multi)
      assert.is_nil(list[2].up)
      assert.are.equal(dir .. "/20250101000001-/down/entrypoint.sql", list[2].down)
      assert.is_true(list[2].down_multi)
      assert.is_false(e.dir_missing)
      e = migrate.new { layout = "dirs", dir = dir .. "/nope" }
      assert.are.same({}, e:discover())
      assert.is_true(e.dir_missing)
      assert.is_true(layout_dirs.valid_name("20250101000000-x"))
      assert.is_false(layout_dirs.valid_name("2025-x"))
    end)

    it("flat: top-level *.sql files, case-sensitive, byte order", function()
      local dir = t.tmpdir("flat")
      for _, n in ipairs { "9.sql", "10.sql", "002.sql", "X.SQL", "readme.md" } do t.write(dir .. "/" .. n,
        "select 1;") end
      t.write(dir .. "/sub/003.sql", "select 1;")
      local list = migrate.new { layout = "flat", dir = dir }:discover()
      local got = {}
      for i, m in ipairs(list) do got[i] = m.name end
      assert.are.same({ "002.sql", "10.sql", "9.sql" }, got)
      assert.is_nil(list[1].down)
      assert.is_false(layout_flat.reversible)
    end)
  end)

  describe("checksums", function()
    it("hash the script as sha256sum does and the whole up/ tree", function()
      local checksum = require "dbtool.migrate.checksum"
      local dir = t.tmpdir("sum")
      t.write(dir .. "/up/entrypoint.sql", "\\ir part.sql\n")
      t.write(dir .. "/up/part.sql", "create table x ();\n")
      assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        checksum.string(""))
      local h1 = checksum.tree(dir .. "/up")
      assert.are.same({ "entrypoint.sql", "part.sql" }, checksum.tree_files(dir .. "/up"))
      t.write(dir .. "/up/part.sql", "create table y ();\n")
      assert.are_not.equal(h1, checksum.tree(dir .. "/up"))
      local e = { checksum.string("entrypoint.sql\0" .. checksum.file(dir .. "/up/entrypoint.sql") .. "\n"
        .. "part.sql\0" .. checksum.file(dir .. "/up/part.sql") .. "\n") }
      assert.are.equal(e[1], checksum.tree(dir .. "/up"))
    end)
  end)

  describe("json", function()
    it("encodes status documents", function()
      assert.are.equal('{"a":[1,2],"b":null,"c":"x\\"\\n\\u0001","d":true,"e":[],"f":{}}',
        migrate.json { a = { 1, 2 }, b = migrate.null, c = 'x"\n\1', d = true, e = migrate.array(), f = {} })
    end)
  end)

  describe("SQLite scripts", function()
    it("know when only whitespace and comments are buffered", function()
      assert.is_true(store_sqlite.all_whitespace("  \n-- x;\n/* y; */\n"))
      assert.is_false(store_sqlite.all_whitespace("-- x\nselect"))
      assert.is_false(store_sqlite.all_whitespace("/* open"))
    end)
  end)
end)

describe("migrator arguments", function()
  it("finds the command anywhere, once (the original's rules)", function()
    local function plan(argv) return command.prepare(migrator_program, argv) end
    local p = plan { "--inherits", "x", "-d", "dir", "list", "--raw" }
    assert.are.equal("list", p.entry.name)
    assert.are.equal("dir", p.state.globals.dir)
    assert.is_true(p.opts.raw)
    raises(2, "^ambiguous subcommand, decide list or migrate$", plan, { "list", "migrate" })
    -- an option's value is not a command word
    assert.are.equal("create", plan({ "create", "--name", "list" }).entry.name)
    assert.are.equal("migrate", plan({ "up", "migrate", "all" }).entry.name)
    assert.are.same({ "up", "all" }, plan({ "up", "migrate", "all" }).opts.args)
    assert.are.equal("status", plan({ "fetch" }).entry.name)
    assert.are.equal("version", plan({ "init", "-V" }).action)
    assert.are.equal("help", plan({ "--help", "-V" }).action)
    assert.are.equal("help", plan({ "help" }).action)
    assert.are.equal("migrate", plan({ "help", "migrate" }).topic)
    local h = plan { "migrate", "--help" }
    assert.are.equal("help", h.action)
    assert.are.equal("migrate", h.entry.name)
    assert.are.equal("none", plan({ "-d", "x" }).action)
    raises(3, "%-%-db%-url requires a value", plan, { "init", "--db-url" })
    raises(9, "^migrator: unknown subcommand 'mgirate'$", plan, { "mgirate" })
    raises(9, "^list argument %-%-wat does not exists$", plan, { "list", "--wat" })
    raises(9, "^create argument %-%-raw does not exists$", plan, { "create", "--raw" })
    raises(9, "^list subcommand extra does not exists$", plan, { "list", "extra" })
    local q = plan { "migrate", "--db-url=postgresql://x", "up", "--set", "a=1", "-v", "b=2" }
    assert.are.equal("postgresql://x", q.state.globals.url)
    assert.are.same({ "a=1", "b=2" }, q.state.globals.set)
    assert.are.same({ "up" }, q.opts.args)
    -- unknown options of migrate are reported with the direction, exit 1 (the original's)
    local u = plan { "migrate", "down", "-1" }
    assert.are.same({ "-1" }, u.opts.unknown)
  end)

  it("reads migrate directions and their arguments", function()
    assert.are.same({ kind = "up", n = 1 }, migrator.migrate_target({ "up" }, {}))
    assert.are.same({ kind = "up", n = 3 }, migrator.migrate_target({ "up", "3" }, {}))
    assert.are.same({ kind = "up", n = "all" }, migrator.migrate_target({ "up", "2", "all" }, {}))
    assert.are.same({ kind = "up", n = "all" }, migrator.migrate_target({ "head", "up" }, {}))
    assert.are.same({ kind = "down", n = 2 }, migrator.migrate_target({ "down", "2" }, {}))
    assert.are.same({ kind = "to", name = "latest" }, migrator.migrate_target({ "to", "latest" }, {}))
    raises(2, "^ambiguous migrate subcommand, decide to or up$", migrator.migrate_target, { "to", "up" }, {})
    raises(1, "^up argument not a number or 'all'$", migrator.migrate_target, { "up", "x" }, {})
    raises(1, "^`migrate up` argument %-x does not exists$", migrator.migrate_target, { "up" }, { "-x" })
    raises(1, "^`migrate down` argument %-1 does not exists$", migrator.migrate_target, { "down" }, { "-1" })
    raises(1, "^down argument not a number$", migrator.migrate_target, { "down", "x" }, {})
    -- down all: every applied migration (the original refused it)
    assert.are.same({ kind = "to", index = 0, all = true }, migrator.migrate_target({ "down", "all" }, {}))
    -- a word that is no direction: exit 9 with the nearest one (not "missing direction", 3)
    local e = raises(9, "^migrate: unknown direction 'upp'", migrator.migrate_target, { "upp", "all" }, {})
    assert.matches("did you mean 'up'?", e.hint, 1, true)
    raises(1, "^no migration name specified$", migrator.migrate_target, { "to" }, {})
    raises(1, "^`migrate to` too many arguments$", migrator.migrate_target, { "to", "a", "b" }, {})
    raises(3, "missing direction", migrator.migrate_target, {}, {})
  end)

  it("cleans create names and generates words", function()
    assert.are.equal("test-name", migrator.clean_name("test name"))
    assert.are.equal("a-b", migrator.clean_name("  a//b  "))
    assert.are.equal("add_users.v2", migrator.clean_name("add_users.v2"))
    assert.are.equal("x", migrator.clean_name("../x"))
    assert.are.equal("", migrator.clean_name("///"))
    for _ = 1, 20 do
      local w = migrator.generate_word()
      assert.are.equal(6, #w)
      assert.matches("^[bcdfghjklmnprstvwz][aeiou][bcdfghjklmnprstvwz][aeiou][bcdfghjklmnprstvwz][aeiou]$", w)
    end
  end)

  it("index_of works on names and records", function()
    local list = { "a", "b", "c", "d", "e", "f", "g" }
    assert.are.equal(4, migrate.index_of(list, "d"))
    assert.is_nil(migrate.index_of(list, "z"))
    assert.are.equal(1, migrate.index_of({ { name = "only" } }, "only"))
  end)
end)
