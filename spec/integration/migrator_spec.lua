-- `migrator` on PostgreSQL, end to end: the built binary against a real server, one fresh
-- database per test. Ports every PostgreSQL scenario of the original's test suite
-- (reference/migrator-upstream.md §5.2, the vacuous ones made real) and covers what it did
-- not: checksums, identical scripts, the no-transaction marker, --dry-run, --json, --force,
-- unknown targets, atomic failures, create → migrate, --set, the lock and lock_timeout,
-- COMMIT inside a script, databases migrated by the original.
local t = require "testutil"

local function setup_project()
  local url, db = t.fresh_db("mig")
  local dir = t.tmpdir("mig")
  return { url = url, db = db, dir = dir, mdir = dir .. "/migration" }
end

local function mig(p, name, up, down)
  if up then t.write(p.mdir .. "/" .. name .. "/up.sql", up) end
  if down then t.write(p.mdir .. "/" .. name .. "/down.sql", down) end
  return name
end

local function run(p, ...)
  local r = t.run { argv = { "migrator", ... }, cwd = p.dir, env = { DB_URL = p.url, NO_COLOR = "1" } }
  r.out = r.stdout .. r.stderr
  return r
end

local function ok(r)
  assert(r.code == 0, "exit " .. r.code .. "\n" .. r.out)
  return r
end

local function q(p, sql, ...)
  local c <close> = t.connect(p.url)
  return c:exec(sql, ...)
end

local function count(p, what)
  return q(p, "SELECT count(*)::int AS n FROM " .. (what or "hectic.migration"))[1].n
end

local function has_table(p, name)
  return q(p, "SELECT to_regclass($1) IS NOT NULL AS ok", name)[1].ok
end

local function has_column(p, tbl, col)
  return q(p, [[SELECT count(*)::int AS n FROM pg_attribute
    WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped]],
    tbl, col)[1].n == 1
end

local function applied(p)
  local r = q(p, 'SELECT name::text AS name FROM hectic.migration ORDER BY name COLLATE "C"')
  local out = {}
  for i = 1, r.n do out[i] = r[i].name end
  return out
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

-- The users/products fixtures of the original's tests (four column additions).
local M1, M2, M3, M4 = "20251001000000-create-users", "20251002000000-add-email",
  "20251003000000-add-token", "20251004000000-add-user-id"
local function four(p)
  mig(p, M1, "CREATE TABLE users (id serial PRIMARY KEY, name text) INHERITS (hectic.created_at);\n",
    "DROP TABLE users;\n")
  mig(p, M2, "ALTER TABLE users ADD COLUMN email text;\n", "ALTER TABLE users DROP COLUMN email;\n")
  mig(p, M3, "ALTER TABLE users ADD COLUMN token text;\n", "ALTER TABLE users DROP COLUMN token;\n")
  mig(p, M4, "ALTER TABLE users ADD COLUMN user_id int;\n", "ALTER TABLE users DROP COLUMN user_id;\n")
end

describe("migrator on PostgreSQL", function()
  describe("init", function()
    it("applies the bundle, is idempotent, prints it with --dry-run (init-migrator)", function()
      local p = setup_project()
      local r = ok(run(p, "init", "--dry-run"))
      has(r.stdout, "CREATE TABLE IF NOT EXISTS hectic.migration")
      has(r.stdout, "ADD COLUMN IF NOT EXISTS tree_hash")
      assert.is_false(has_table(p, "hectic.migration")) -- dry run changed nothing
      ok(run(p, "init"))
      for _, tbl in ipairs { "hectic.migration", "hectic.version", "hectic.secret" } do
        assert.is_true(has_table(p, tbl), tbl)
      end
      assert.are.equal(1, count(p, "hectic.version"))
      ok(run(p, "init"))
      assert.are.equal(1, count(p, "hectic.version"))
      -- no URL: exit 3; --dry-run needs none (it prints PostgreSQL's SQL)
      local r2 = t.run { argv = { "migrator", "init" }, cwd = p.dir, env = { DB_URL = false } }
      assert.are.equal(3, r2.code)
      has(r2.stderr, "no database URL")
      r2 = t.run { argv = { "migrator", "init", "--dry-run" }, cwd = p.dir, env = { DB_URL = false } }
      assert.are.equal(0, r2.code, r2.stderr)
      assert.are.equal(r.stdout, r2.stdout)
      local r3 = t.run { argv = { "migrator", "init", "--dry-run" }, env = { DB_URL = "mysql://x" } }
      assert.are.equal(3, r3.code)
      has(r3.stderr, "unsupported database URL format: mysql://x")
      has(r3.stderr, "supported formats: postgresql://... or sqlite://... or *.db")
    end)

    it("gives the hectic schema and its inheritance rules (init-hectic-bundle)", function()
      local p = setup_project()
      local r = ok(run(p, "--inherits", "x", "init", "--inherits", "y"))
      has(r.stderr, "--inherits is deprecated and ignored")
      assert.is_true(q(p, [[SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'hectic']])[1].n >= 6)
      local c <close> = t.connect(p.url)
      -- a plain CREATE TABLE is rejected; INHERITS created_at is accepted
      assert.is_false(pcall(c.exec, c, "CREATE TABLE plain (id int)"))
      c:exec("CREATE TABLE ok_t (id int) INHERITS (hectic.created_at)")
      -- updated_at inheritors get the trigger, updated_at moves forward
      c:exec("CREATE TABLE upd (id int, v int) INHERITS (hectic.created_at, hectic.updated_at)")
      c:exec("INSERT INTO upd (id, v, updated_at) VALUES (1, 1, now() - interval '1 day')")
      c:exec("UPDATE upd SET v = 2")
      assert.is_true(c:exec("SELECT updated_at > now() - interval '1 minute' AS ok FROM upd")[1].ok)
      -- an excluded schema and a declarative partition are exempt
      c:exec("CREATE SCHEMA legacy")
      c:exec("ALTER DATABASE " .. c:escape_identifier(p.db)
        .. " SET hectic.inheritance_extra_excluded_schemas = 'legacy'")
      local c2 <close> = t.connect(p.url)
      c2:exec("CREATE TABLE legacy.old (id int)")
      c2:exec("CREATE TABLE legacy.parts (id int) PARTITION BY RANGE (id)")
      c2:exec("CREATE TABLE public.parts_1 PARTITION OF legacy.parts FOR VALUES FROM (0) TO (10)")
      -- immutable: blocked outside migration mode, allowed with SET LOCAL, which does not leak
      c2:exec("CREATE TABLE frozen (id int) INHERITS (hectic.created_at, hectic.immutable)")
      assert.is_true(c2:exec([[SELECT count(*)::int AS n FROM pg_trigger
        WHERE tgrelid = 'frozen'::regclass AND NOT tgisinternal]])[1].n >= 2)
      assert.is_false(pcall(c2.exec, c2, "INSERT INTO frozen (id) VALUES (1)"))
      c2:exec("BEGIN; SET LOCAL hectic.migration_mode = 'on'; INSERT INTO frozen (id) VALUES (1); COMMIT")
      assert.is_false(pcall(c2.exec, c2, "UPDATE frozen SET id = 2"))
      assert.is_false(pcall(c2.exec, c2, "DELETE FROM frozen"))
      assert.is_false(pcall(c2.exec, c2, "TRUNCATE frozen"))
      c2:exec("BEGIN; SET LOCAL hectic.migration_mode = 'on'; TRUNCATE frozen; COMMIT")
      ok(run(p, "init"))
    end)

    it("lets migrations change immutable tables (migration_mode is set for them)", function()
      local p = setup_project()
      mig(p, "20250101000000-frozen",
        "CREATE TABLE frozen (id int) INHERITS (hectic.created_at, hectic.immutable);\n",
        "DROP TABLE frozen;\n")
      mig(p, "20250102000000-fill", "INSERT INTO frozen (id) VALUES (1), (2);\n", "DELETE FROM frozen;\n")
      ok(run(p, "migrate", "up", "all"))
      assert.are.equal(2, count(p, "frozen"))
      assert.is_false(pcall(q, p, "INSERT INTO frozen (id) VALUES (3)"))
      ok(run(p, "migrate", "down"))
      assert.are.equal(0, count(p, "frozen"))
    end)
  end)

  describe("moving", function()
    it("up one (migrate-up-single) and several (migrate-up-multiple)", function()
      local p = setup_project()
      four(p)
      local r = ok(run(p, "migrate", "up"))
      has(r.stderr, "applying migration " .. M1 .. " (up)")
      has(r.stderr, "successfully migrated to " .. M1)
      assert.are.equal(1, count(p))
      ok(run(p, "migrate", "up", "2"))
      assert.are.equal(3, count(p))
      assert.is_true(has_column(p, "users", "email"))
      assert.is_true(has_column(p, "users", "token"))
      assert.is_false(has_column(p, "users", "user_id"))
    end)

    it("down one (migrate-down-single) and several (migrate-down-multiple)", function()
      local p = setup_project()
      four(p)
      ok(run(p, "migrate", "up", "2"))
      local r = ok(run(p, "migrate", "down"))
      has(r.stderr, "reverting migration " .. M2 .. " (down)")
      has(r.stderr, "successfully migrated down to " .. M1)
      assert.are.equal(1, count(p))
      assert.is_false(has_column(p, "users", "email"))
      ok(run(p, "migrate", "up", "3"))
      for _, col in ipairs { "email", "token", "user_id" } do assert.is_true(has_column(p, "users", col)) end
      ok(run(p, "migrate", "down", "3"))
      assert.are.same({ M1 }, applied(p))
      assert.is_false(has_column(p, "users", "email"))
      assert.is_false(has_column(p, "users", "token"))
      assert.is_false(has_column(p, "users", "user_id"))
      r = ok(run(p, "migrate", "down", "1"))
      has(r.stderr, "successfully migrated down to clean state")
      assert.is_false(has_table(p, "users"))
      r = run(p, "migrate", "down")
      assert.are.equal(1, r.code)
      has(r.stderr, "cannot migrate down: no migrations applied")
    end)

    it("to a migration forward (migrate-to-forward) and backward (migrate-to-backward)", function()
      local p = setup_project()
      four(p)
      ok(run(p, "migrate", "to", M2))
      assert.are.same({ M1, M2 }, applied(p))
      assert.is_true(has_column(p, "users", "email"))
      ok(run(p, "migrate", "up", "1"))
      ok(run(p, "migrate", "to", M1))
      assert.are.same({ M1 }, applied(p))
      assert.is_false(has_column(p, "users", "token"))
      -- a prefix and a description work too
      ok(run(p, "migrate", "to", "20251003"))
      assert.are.equal(3, count(p))
      ok(run(p, "migrate", "to", "add-email"))
      assert.are.equal(2, count(p))
    end)

    it("to latest/head/last and up all/latest (migrate-to-latest)", function()
      local p = setup_project()
      for i = 1, 4 do
        mig(p, string.format("2025010100000%d-gen%d", i, i),
          string.format("CREATE TABLE gen%d (id int) INHERITS (hectic.created_at);\n", i),
          string.format("DROP TABLE gen%d;\n", i))
      end
      ok(run(p, "migrate", "up", "all"))
      assert.are.equal(4, count(p))
      ok(run(p, "migrate", "down", "4"))
      assert.are.equal(0, count(p))
      ok(run(p, "migrate", "to", "latest"))
      assert.are.equal(4, count(p))
      ok(run(p, "migrate", "down", "4"))
      ok(run(p, "migrate", "to", "head"))
      assert.are.equal(4, count(p))
      ok(run(p, "migrate", "down", "4"))
      ok(run(p, "migrate", "up", "latest"))
      assert.are.equal(4, count(p))
      local r = ok(run(p, "migrate", "to", "last"))
      has(r.stderr, "database already at 20250101000004-gen4")
      ok(run(p, "migrate", "down", "3"))
      assert.are.equal(1, count(p))
      ok(run(p, "migrate", "up", "all"))
      assert.are.equal(4, count(p))
    end)

    it("is a no-op at the target, but plain up at the head fails (migrate-already-at-target)", function()
      local p = setup_project()
      q(p, "CREATE TABLE before_init (id int)")
      mig(p, M1, "CREATE TABLE users (id int) INHERITS (hectic.created_at);\n", "DROP TABLE users;\n")
      ok(run(p, "migrate", "up"))
      local r = ok(run(p, "migrate", "to", M1))
      has(r.stderr, "database already at " .. M1)
      assert.are.equal(1, count(p))
      r = ok(run(p, "migrate", "up", "all"))
      has(r.stderr, "database already at " .. M1)
      r = run(p, "migrate", "up")
      assert.are.equal(1, r.code)
      has(r.stderr, "cannot migrate up 1 step(s): not enough migrations")
      assert.is_true(has_table(p, "before_init"))
    end)

    it("reports the original's argument errors", function()
      local p = setup_project()
      four(p)
      local cases = {
        { { "migrate", "up", "x" }, 1, "up argument not a number or 'all'" },
        { { "migrate", "up", "9" }, 1, "cannot migrate up 9 step(s): not enough migrations" },
        { { "migrate", "down", "-1" }, 1, "`migrate down` argument -1 does not exists" },
        { { "migrate", "to" }, 1, "no migration name specified" },
        { { "migrate", "to", "a", "b" }, 1, "`migrate to` too many arguments" },
        { { "migrate", "to", "up" }, 2, "ambiguous migrate subcommand, decide to or up" },
        { { "migrate" }, 3, "missing direction" },
      }
      for _, c in ipairs(cases) do
        local r = run(p, table.unpack(c[1]))
        assert.are.equal(c[2], r.code, table.concat(c[1], " ") .. "\n" .. r.out)
        has(r.stderr, c[3])
      end
      local r = run(p, "migrate", "up", "all", "-d", p.dir .. "/none")
      assert.are.equal(1, r.code)
      has(r.stderr, "no migrations found")
      has(r.stderr, "migration directory not found")
      assert.are.equal(0, count(p))
    end)
  end)

  describe("existing databases", function()
    it("migrates existing data (migrate-existing-data-migration)", function()
      local p = setup_project()
      q(p, [[CREATE TABLE products (id serial, name text, price_cents int);
        INSERT INTO products (name, price_cents) VALUES ('a', 1000), ('b', 1000), ('c', 1000)]])
      mig(p, "20250101000000-convert-prices", [[
ALTER TABLE products ADD COLUMN price numeric(10,2), ADD COLUMN price_text text;
UPDATE products SET price = price_cents / 100.0,
  price_text = '$' || to_char(price_cents / 100.0, 'FM999990.00');
]], "ALTER TABLE products DROP COLUMN price, DROP COLUMN price_text;\n")
      ok(run(p, "migrate", "up"))
      local r = q(p, "SELECT price::text AS p, price_text AS t FROM products ORDER BY id")
      assert.are.equal(3, r.n)
      for i = 1, 3 do
        assert.are.equal("10.00", r[i].p)
        assert.are.equal("$10.00", r[i].t)
      end
      ok(run(p, "migrate", "down"))
      assert.is_false(has_column(p, "products", "price"))
      assert.are.equal(3, q(p, "SELECT count(*)::int AS n FROM products WHERE price_cents = 1000")[1].n)
    end)

    it("keeps existing tables and data (migrate-existing-database)", function()
      local p = setup_project()
      q(p, [[CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE posts (id int PRIMARY KEY,
        user_id int REFERENCES users (id), body text);
        INSERT INTO users VALUES (1, 'ann'), (2, 'bob'); INSERT INTO posts VALUES (1, 1, 'hi')]])
      ok(run(p, "init"))
      assert.are.equal(2, count(p, "users"))
      mig(p, "20250101000000-bio", "ALTER TABLE users ADD COLUMN bio text;\n",
        "ALTER TABLE users DROP COLUMN bio;\n")
      mig(p, "20250102000000-comments", [[
CREATE TABLE comments (id serial PRIMARY KEY, post_id int REFERENCES posts (id),
  user_id int REFERENCES users (id), body text) INHERITS (hectic.created_at);
]], "DROP TABLE comments;\n")
      ok(run(p, "migrate", "up"))
      assert.are.equal(2, q(p, "SELECT count(*)::int AS n FROM users WHERE bio IS NULL")[1].n)
      ok(run(p, "migrate", "up"))
      q(p, "INSERT INTO comments (post_id, user_id, body) VALUES (1, 2, 'nice')")
      assert.is_false(pcall(q, p, "INSERT INTO comments (post_id, user_id, body) VALUES (9, 2, 'x')"))
      ok(run(p, "migrate", "down"))
      assert.is_false(has_table(p, "comments"))
      assert.are.equal(2, count(p, "users"))
      assert.are.equal(1, count(p, "posts"))
    end)

    it("works with a hectic schema made beforehand (migrate-existing-with-conflicts)", function()
      local p = setup_project()
      q(p, "CREATE SCHEMA hectic; CREATE TABLE hectic.user_data (id int, v text); "
        .. "INSERT INTO hectic.user_data VALUES (1, 'keep')")
      ok(run(p, "init"))
      mig(p, "20250101000000-hectic-table", "CREATE TABLE hectic.test_table (id int);\n",
        "DROP TABLE hectic.test_table;\n")
      ok(run(p, "migrate", "up"))
      assert.are.equal("keep", q(p, "SELECT v FROM hectic.user_data")[1].v)
      assert.is_true(has_table(p, "hectic.test_table"))
      assert.are.equal(8, q(p, [[SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'hectic']])[1].n)
    end)
  end)

  describe("a bundle with the original's event triggers", function()
    -- what the original's migrator leaves after its own `migrate` (it re-applies its bundle):
    -- its three event triggers beside (or instead of) ours
    local LEGACY = {}
    for _, name in ipairs { "enforce_created_at_inheritance", "attach_updated_at_trigger",
      "attach_immutable_triggers" } do
      LEGACY[#LEGACY + 1] = string.format([[
        CREATE FUNCTION hectic.%s() RETURNS event_trigger LANGUAGE plpgsql AS $f$ BEGIN END $f$;
        CREATE EVENT TRIGGER hectic_%s ON ddl_command_end
          WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hectic.%s();]], name, name, name)
    end
    LEGACY = table.concat(LEGACY, "\n") .. "\nDROP EVENT TRIGGER hectic_on_create_table"

    it("is updated by `migrate` (superuser), which then applies the migration", function()
      local p = setup_project()
      ok(run(p, "init"))
      q(p, LEGACY)
      mig(p, "20250101000000-a", "CREATE TABLE a (x int) INHERITS (hectic.created_at);\n", "DROP TABLE a;\n")
      local r = ok(run(p, "migrate", "up"))
      has(r.out, "updating the hectic bundle (event trigger hectic_attach_immutable_triggers of the original "
        .. "bundle, event trigger hectic_attach_updated_at_trigger of the original bundle, event trigger "
        .. "hectic_enforce_created_at_inheritance of the original bundle)")
      assert.are.same({ "hectic_on_create_table" }, (function()
        local rows = q(p, "SELECT evtname::text AS n FROM pg_event_trigger ORDER BY 1")
        local out = {}
        for i = 1, rows.n do out[i] = rows[i].n end
        return out
      end)())
      assert.is_true(has_table(p, "a"))
    end)

    it("is kept, with a warning, when the migrating role may not update it", function()
      local p = setup_project()
      ok(run(p, "init"))
      q(p, LEGACY)
      q(p, [[DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mig_nosuper') THEN
          CREATE ROLE mig_nosuper LOGIN;
        END IF;
        END $$]])
      q(p, 'GRANT ALL ON DATABASE "' .. p.db .. '" TO mig_nosuper; '
        .. "GRANT ALL ON SCHEMA public, hectic TO mig_nosuper; "
        .. "GRANT ALL ON ALL TABLES IN SCHEMA hectic TO mig_nosuper; "
        .. "GRANT ALL ON ALL SEQUENCES IN SCHEMA hectic TO mig_nosuper")
      -- (inheriting hectic.created_at needs its owner: this role makes a view)
      mig(p, "20250101000000-a", "CREATE VIEW a AS SELECT 1 AS x;\n", "DROP VIEW a;\n")
      local r = t.run { argv = { "migrator", "migrate", "up" }, cwd = p.dir,
        env = { DB_URL = p.url .. "&user=mig_nosuper", NO_COLOR = "1" } }
      r.out = r.stdout .. r.stderr
      ok(r)
      has(r.out, "could not update the hectic bundle, going on with the installed one")
      assert.are.equal(1, q(p, [[SELECT count(*)::int AS n FROM pg_event_trigger
        WHERE evtname = 'hectic_enforce_created_at_inheritance']])[1].n)
      assert.is_true(has_table(p, "a"))
      assert.are.equal(1, count(p))
    end)
  end)

  it("runs multi-file migrations with \\ir and hashes every file (migrate-multi-file)", function()
    local p = setup_project()
    local A, B = "20250101000000-schema", "20250102000000-more"
    t.write(p.mdir .. "/" .. A .. "/up/entrypoint.sql", "\\ir tables/users.sql\n\\ir tables/orders.sql\n")
    t.write(p.mdir .. "/" .. A .. "/up/tables/users.sql",
      "CREATE TABLE users (id int PRIMARY KEY) INHERITS (hectic.created_at);\n")
    t.write(p.mdir .. "/" .. A .. "/up/tables/orders.sql",
      "CREATE TABLE orders (id int, user_id int REFERENCES users (id)) INHERITS (hectic.created_at);\n")
    t.write(p.mdir .. "/" .. A .. "/down/entrypoint.sql", "DROP TABLE orders;\nDROP TABLE users;\n")
    t.write(p.mdir .. "/" .. B .. "/up/entrypoint.sql", "\\ir col.sql\n")
    t.write(p.mdir .. "/" .. B .. "/up/col.sql", "ALTER TABLE users ADD COLUMN email text;\n")
    t.write(p.mdir .. "/" .. B .. "/down/entrypoint.sql", "ALTER TABLE users DROP COLUMN email;\n")
    ok(run(p, "migrate", "up"))
    assert.is_true(has_table(p, "orders"))
    ok(run(p, "migrate", "up"))
    assert.is_true(has_column(p, "users", "email"))
    local row = q(p, "SELECT hash::text AS hash, tree_hash FROM hectic.migration WHERE name = $1", A)[1]
    local checksum = require "dbtool.migrate.checksum"
    assert.are.equal(checksum.file(p.mdir .. "/" .. A .. "/up/entrypoint.sql"), row.hash)
    assert.are.equal(checksum.tree(p.mdir .. "/" .. A .. "/up"), row.tree_hash)
    -- an included file changes: detected
    t.write(p.mdir .. "/" .. A .. "/up/tables/orders.sql",
      "CREATE TABLE orders (id bigint) INHERITS (hectic.created_at);\n")
    local r = run(p, "migrate", "down")
    assert.are.equal(2, r.code)
    has(r.stderr, A .. ": a file under")
    ok(run(p, "migrate", "down", "--allow-modified"))
    assert.is_false(has_column(p, "users", "email"))
    -- reverting the modified migration itself only warns
    r = ok(run(p, "migrate", "down"))
    has(r.stderr, "reverting " .. A .. ", whose up script changed")
    assert.is_false(has_table(p, "users"))
    assert.are.equal(0, count(p))
  end)

  describe("failures", function()
    local GOOD = "20250101000000-good"
    local function base(p)
      mig(p, GOOD, "CREATE TABLE items (id int PRIMARY KEY, name text) INHERITS (hectic.created_at);\n"
        .. "INSERT INTO items (id, name) VALUES (1, 'a');\n", "DROP TABLE items;\n")
      ok(run(p, "migrate", "up"))
    end

    local cases = {
      { "syntax error", "ALTER TABLE items ADD COLUMN status text;\nSELEC 1;\n", "syntax error" },
      { "a later statement fails",
        "ALTER TABLE items ADD COLUMN status text;\nUPDATE items SET status = 'x';\n"
          .. "ALTER TABLE nope ADD COLUMN y int;\n",
        "relation \"nope\" does not exist" },
      { "a unique violation",
        "ALTER TABLE items ADD COLUMN status text;\nINSERT INTO items (id, name) VALUES (1, 'dup');\n",
        "duplicate key value" },
    }
    for _, c in ipairs(cases) do
      it("leaves no row and no partial schema: " .. c[1] .. " (migration-failure-rollback)", function()
        local p = setup_project()
        base(p)
        local BAD = mig(p, "20250102000000-bad", c[2], "ALTER TABLE items DROP COLUMN status;\n")
        local r = run(p, "migrate", "up")
        assert.are.equal(4, r.code)
        has(r.stderr, "migration failed: " .. BAD)
        has(r.stderr, c[3])
        has(r.stderr, "migration/" .. BAD .. "/up.sql:") -- file:line:col of the failing statement
        assert.are.same({ GOOD }, applied(p))
        assert.is_false(has_column(p, "items", "status"))
        assert.are.equal(1, count(p, "items"))
        -- fixed, it applies
        t.write(p.mdir .. "/" .. BAD .. "/up.sql", "ALTER TABLE items ADD COLUMN status text;\n")
        ok(run(p, "migrate", "up"))
        assert.is_true(has_column(p, "items", "status"))
      end)
    end

    it("with --single-transaction nothing of the run stays applied", function()
      local p = setup_project()
      base(p)
      mig(p, "20250102000000-ok", "ALTER TABLE items ADD COLUMN a int;\n",
        "ALTER TABLE items DROP COLUMN a;\n")
      mig(p, "20250103000000-bad", "ALTER TABLE items ADD COLUMN b int;\nSELECT 1/0;\n", "SELECT 1;\n")
      local r = run(p, "migrate", "up", "all", "--single-transaction")
      assert.are.equal(4, r.code)
      has(r.stderr, "nothing was applied (--single-transaction)")
      assert.are.same({ GOOD }, applied(p))
      assert.is_false(has_column(p, "items", "a"))
      -- per migration (default): the first one stays
      r = run(p, "migrate", "up", "all")
      assert.are.equal(4, r.code)
      has(r.stderr, "1 earlier migration(s) of this run stay applied")
      assert.are.same({ GOOD, "20250102000000-ok" }, applied(p))
      assert.is_true(has_column(p, "items", "a"))
      assert.is_false(has_column(p, "items", "b"))
    end)

    it("refuses a plan with a missing script before doing anything", function()
      local p = setup_project()
      four(p)
      mig(p, "20251005000000-no-up", nil, "SELECT 1;\n")
      local r = run(p, "migrate", "up", "all")
      assert.are.equal(1, r.code)
      has(r.stderr, "migration up not found for 20251005000000-no-up")
      has(r.stderr, "expected either "
        .. "migration/20251005000000-no-up/up.sql or migration/20251005000000-no-up/up/entrypoint.sql")
      assert.are.equal(0, count(p))
    end)
  end)

  describe("history", function()
    it("detects a mismatch and reports it like the original (migration-history-mismatch)", function()
      local p = setup_project()
      four(p)
      ok(run(p, "migrate", "up", "3"))
      t.rm_rf(p.mdir .. "/" .. M2)
      local r = run(p, "migrate", "up")
      assert.are.equal(2, r.code)
      for _, s in ipairs { "Migration history mismatch detected!", "Database has: " .. M2, "Filesystem has: "
        .. M3,
        "Full filesystem migrations (in order):", "Full database migrations (in order):", "--force" } do
        has(r.stderr, s)
      end
      assert.are.equal(3, count(p))
      -- --force really skips it (with a warning) and applies what is pending
      r = ok(run(p, "migrate", "up", "--force"))
      has(r.stderr, "--force")
      assert.are.same({ M1, M2, M3, M4 }, applied(p))
      assert.is_true(has_column(p, "users", "user_id"))
      -- status shows the missing one
      r = ok(run(p, "status"))
      has(r.stdout, "missing")
      has(r.stdout, "history mismatch at #2")
    end)

    it("rejects an out-of-order new migration, applies it with --force", function()
      local p = setup_project()
      four(p)
      t.rm_rf(p.mdir .. "/" .. M2)
      ok(run(p, "migrate", "up", "all"))
      mig(p, M2, "ALTER TABLE users ADD COLUMN email text;\n", "ALTER TABLE users DROP COLUMN email;\n")
      local r = run(p, "migrate", "up", "all")
      assert.are.equal(2, r.code)
      r = ok(run(p, "status", "--json"))
      has(r.stdout, '"out_of_order":true')
      ok(run(p, "migrate", "up", "all", "--force"))
      assert.is_true(has_column(p, "users", "email"))
    end)
  end)

  describe("checksums", function()
    it("detect a changed applied script; --allow-modified proceeds", function()
      local p = setup_project()
      four(p)
      ok(run(p, "migrate", "up", "2"))
      t.write(p.mdir .. "/" .. M1 .. "/up.sql",
        "CREATE TABLE users (id int) INHERITS (hectic.created_at); -- edited\n")
      local r = run(p, "migrate", "up")
      assert.are.equal(2, r.code)
      has(r.stderr, "an applied migration was modified since it was applied")
      has(r.stderr, M1)
      has(r.stderr, "--allow-modified")
      assert.are.equal(2, count(p))
      r = ok(run(p, "status"))
      has(r.stdout, "modified  " .. M1)
      r = ok(run(p, "migrate", "up", "--allow-modified"))
      has(r.stderr, "--allow-modified")
      assert.are.equal(3, count(p))
    end)

    it("apply byte-identical migrations both", function()
      local p = setup_project()
      mig(p, "20250101000000-noop", "-- noop\n", "-- noop\n")
      mig(p, "20250102000000-noop", "-- noop\n", "-- noop\n")
      mig(p, "20250103000000-empty", "", "")
      mig(p, "20250104000000-empty", "", "")
      ok(run(p, "migrate", "up", "all"))
      assert.are.equal(4, count(p))
      assert.are.equal(2, q(p, "SELECT count(DISTINCT hash)::int AS n FROM hectic.migration")[1].n)
      ok(run(p, "migrate", "down", "4"))
      assert.are.equal(0, count(p))
    end)

    it("verify databases migrated by the original, which can read what we write", function()
      local p = setup_project()
      four(p)
      ok(run(p, "init"))
      -- the original's bookkeeping: (name, sha256 of up.sql), nothing else
      local checksum = require "dbtool.migrate.checksum"
      q(p, "CREATE TABLE users (id serial PRIMARY KEY, name text) INHERITS (hectic.created_at)")
      q(p, "INSERT INTO hectic.migration (name, hash) VALUES ($1, $2)", M1, checksum.file(p.mdir .. "/" .. M1
        .. "/up.sql"))
      local r = ok(run(p, "status", "--json"))
      has(r.stdout, '"applied":1')
      has(r.stdout, '"modified":0')
      ok(run(p, "migrate", "up", "all"))
      assert.are.equal(4, count(p))
      -- the original reads the applied list with psql like this
      local psql = t.run { argv = { t.pg_bindir() .. "/psql", "-X", "--no-align", "--tuples-only", "--quiet",
        p.url, "--command", "SELECT name FROM hectic.migration ORDER BY name ASC" } }
      assert.are.equal(0, psql.code, psql.stderr)
      assert.are.equal(table.concat({ M1, M2, M3, M4 }, "\n") .. "\n", psql.stdout)
      -- and inserts (name, hash) only: our extra columns are nullable
      q(p, "INSERT INTO hectic.migration (name, hash) VALUES ('20251005000000-x', repeat('a', 64))")
    end)
  end)

  describe("transactions", function()
    it("runs a marked script outside a transaction (CREATE INDEX CONCURRENTLY)", function()
      local p = setup_project()
      mig(p, "20250101000000-t", "CREATE TABLE t (id int, v int) INHERITS (hectic.created_at);\n",
        "DROP TABLE t;\n")
      local IDX = mig(p, "20250102000000-idx", "CREATE INDEX CONCURRENTLY t_v ON t (v);\n",
        "DROP INDEX CONCURRENTLY t_v;\n")
      local r = run(p, "migrate", "up", "all")
      assert.are.equal(4, r.code)
      has(r.stderr, "cannot run inside a transaction block")
      assert.are.equal(1, count(p))
      mig(p, IDX, "-- db-tool: no-transaction\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n",
        "-- db-tool: no-transaction\nDROP INDEX CONCURRENTLY t_v;\n")
      r = ok(run(p, "migrate", "up", "all", "--dry-run"))
      has(r.stdout, "[no transaction]")
      ok(run(p, "migrate", "up", "all"))
      assert.is_true(has_table(p, "t_v"))
      assert.are.equal(2, count(p))
      r = run(p, "migrate", "down", "--single-transaction")
      assert.are.equal(1, r.code)
      has(r.stderr, "--single-transaction cannot include " .. IDX)
      ok(run(p, "migrate", "down"))
      assert.is_false(has_table(p, "t_v"))
      assert.are.equal(1, count(p))
    end)

    it("records a script that commits by itself, with a warning", function()
      local p = setup_project()
      mig(p, "20250101000000-selfcommit", "CREATE TABLE a (id int) INHERITS (hectic.created_at);\nCOMMIT;\n"
        .. "CREATE TABLE b (id int) INHERITS (hectic.created_at);\n", "DROP TABLE a, b;\n")
      local r = ok(run(p, "migrate", "up"))
      has(r.stderr, "ended the migration transaction itself")
      assert.is_true(has_table(p, "b"))
      assert.are.equal(1, count(p))
    end)

    it("passes --set variables to the scripts", function()
      local p = setup_project()
      mig(p, "20250101000000-vars", "CREATE TABLE :\"tbl\" (v text) INHERITS (hectic.created_at);\n"
        .. "INSERT INTO :\"tbl\" (v) VALUES (:'val');\n", "DROP TABLE :\"tbl\";\n")
      ok(run(p, "migrate", "up", "--set", "tbl=from_var", "-v", "val=it's here"))
      assert.are.equal("it's here", q(p, "SELECT v FROM from_var")[1].v)
      local r = run(p, "migrate", "down", "--set", "bad")
      assert.are.equal(9, r.code)
      has(r.stderr, "--set expects NAME=VALUE")
      ok(run(p, "migrate", "down", "-v", "tbl=from_var"))
      assert.is_false(has_table(p, "from_var"))
    end)

    it("waits for the migration lock, then gives up naming the holder", function()
      local p = setup_project()
      four(p)
      ok(run(p, "init"))
      local c <close> = t.connect(p.url)
      c:exec("SELECT pg_advisory_lock($1::int4, 1)", 0x6d696772)
      local r = run(p, "migrate", "up", "all", "--lock-wait", "0.3")
      assert.are.equal(1, r.code)
      has(r.stderr, "another migration is running on this database")
      has(r.stderr, "backend pid " .. c:backend_pid())
      assert.are.equal(0, count(p))
      c:exec("SELECT pg_advisory_unlock($1::int4, 1)", 0x6d696772)
      ok(run(p, "migrate", "up", "all", "--lock-wait", "0.3"))
      assert.are.equal(4, count(p))
    end)

    it("sets lock_timeout so DDL fails fast behind a long transaction", function()
      local p = setup_project()
      four(p)
      ok(run(p, "migrate", "up"))
      local c <close> = t.connect(p.url)
      c:exec("BEGIN; LOCK TABLE users IN ACCESS SHARE MODE")
      local t0 = require("dbtool.core").now()
      local r = run(p, "migrate", "up", "--lock-timeout", "200ms")
      assert.are.equal(4, r.code)
      has(r.stderr, "lock timeout")
      assert.is_true(require("dbtool.core").now() - t0 < 5)
      c:exec("ROLLBACK")
      assert.are.equal(1, count(p))
    end)
  end)

  describe("status, dry run, targets", function()
    it("prints the plan with --dry-run and changes nothing", function()
      local p = setup_project()
      four(p)
      local r = ok(run(p, "migrate", "up", "all", "--dry-run"))
      has(r.stdout, "not installed yet")
      has(r.stdout, "4 to apply, 0 to revert")
      has(r.stdout, "up   " .. M1 .. "  migration/" .. M1 .. "/up.sql")
      assert.is_false(has_table(p, "hectic.migration"))
      ok(run(p, "migrate", "up", "all"))
      r = ok(run(p, "migrate", "to", M2, "--dry-run"))
      has(r.stdout, "0 to apply, 2 to revert")
      has(r.stdout, "down " .. M4)
      assert.are.equal(4, count(p))
    end)

    it("reports applied/pending/missing as text and JSON", function()
      local p = setup_project()
      four(p)
      local r = ok(run(p, "status"))
      has(r.stdout, "not installed")
      has(r.stdout, "0 applied, 0 modified, 4 pending, 0 missing")
      ok(run(p, "migrate", "up", "2"))
      r = ok(run(p, "status"))
      has(r.stdout, "applied   " .. M1)
      has(r.stdout, "pending   " .. M3)
      r = ok(run(p, "status", "--json"))
      local json = r.stdout
      has(json, '"counts":{"applied":2,"missing":0,"modified":0,"pending":2,"total":4}')
      has(json, '"current":"' .. M2 .. '"')
      has(json, '"engine":"postgresql"')
      has(json, '"history_ok":true')
      has(json, '"state":"pending"')
      assert.matches('"applied_at":"%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z"', json)
      assert.matches('"hash":"%x+"', json)
      r = ok(run(p, "fetch"))
      has(r.stdout, "2 applied")
    end)

    it("lists the candidates of an unknown target", function()
      local p = setup_project()
      four(p)
      local r = run(p, "migrate", "to", "20259999")
      assert.are.equal(1, r.code)
      has(r.stderr, "unknown migration: 20259999")
      has(r.stderr, "candidates:")
      has(r.stderr, M3)
      r = run(p, "migrate", "to", "2025100")
      assert.are.equal(2, r.code)
      has(r.stderr, "ambiguous migration")
      assert.are.equal(0, q(p, "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'users'")[1].n)
    end)
  end)

  it("creates a migration that migrate applies (create → migrate round trip)", function()
    local p = setup_project()
    local r = ok(run(p, "create", "--name", "add widgets"))
    local path = r.stdout:match("^(%S+)\n$")
    assert.matches("^migration/%d+%-add%-widgets$", path)
    path = p.dir .. "/" .. path
    local name = path:match("([^/]+)$")
    local up, down = t.read(path .. "/up.sql"), t.read(path .. "/down.sql")
    assert.matches("^%-%- ", up)
    assert.matches("^%-%- ", down)
    t.write(path .. "/up.sql", up .. "CREATE TABLE widgets (id int) INHERITS (hectic.created_at);\n")
    t.write(path .. "/down.sql", down .. "DROP TABLE widgets;\n")
    r = ok(run(p, "list"))
    assert.are.equal(name .. "\n", r.stdout)
    ok(run(p, "migrate", "up"))
    assert.is_true(has_table(p, "widgets"))
    assert.are.same({ name }, applied(p))
    ok(run(p, "migrate", "down"))
    assert.is_false(has_table(p, "widgets"))
  end)

  it("needs no psql and runs from `database migrator` with PGURL (missing-psql)", function()
    local p = setup_project()
    four(p)
    local r = t.run { argv = { "migrator", "migrate", "up", "all" }, cwd = p.dir,
      env = { DB_URL = p.url, PATH = "/nonexistent" } }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(4, count(p))
    r = t.run { argv = { "database", "migrator", "migrate", "down", "2" }, cwd = p.dir,
      env = { DB_URL = false, PGURL = p.url, MIGRATION_DIR = p.mdir } }
    assert.are.equal(0, r.code, r.stderr)
    has(r.stderr, "db migrator> ")
    assert.are.equal(2, count(p))
    r = t.run { argv = { "database", "migrator", "status" }, cwd = p.dir,
      env = { DB_URL = false, PGURL = false, LOCAL_DIR = p.dir, DATABASE_DIR = p.dir, MIGRATION_DIR = false,
        PG_WORKING_DIR = p.dir .. "/nocluster" } }
    assert.are.equal(3, r.code)
    has(r.stderr, "no database URL")
  end)
end)
