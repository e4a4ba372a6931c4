-- database secrets and hydrate's secrets, end to end with the built binary and PostgreSQL:
-- keygen → encrypt → a commit-like copy of the project → hydrate loads hectic.secret; wrong,
-- missing keys and damaged files change nothing; `secrets edit` with a scripted $EDITOR;
-- `secrets set/unset/list/decrypt`; `secrets load` like the original `db-ops secrets load`.
-- Every output of every command run here is kept, and the last test greps all of it for the
-- secret values and the URL password.
local t = require "testutil"
local pg = require "dbtool.core.pg"
local na = require "dbtool.core.sodium"
local stat = require "posix.sys.stat"

local function hex(n) return na.to_hex(na.random(n)) end

-- distinctive values: found by grep if they ever leak
local TAG = hex(6)
local SECRETS = {
  DB_PASSWORD = "pw-" .. TAG .. "-hunter2",
  API_TOKEN = "tok_" .. TAG .. "_Zm9vYmFy",
  QUOTED = "it's \"quoted\" " .. TAG .. " #not-a-comment",
  MULTI = "multi-" .. TAG .. "-first\nmulti-" .. TAG .. "-second",
  DOLLAR = "price $5 " .. TAG .. " ${NOT_EXPANDED}",
}
local URL_PASSWORD = "urlpw-" .. TAG

-- the dotenv file a user would write (CRLF, comments, export, both quote kinds)
local DOTENV = table.concat({
  "# secrets of the test environment",
  "export DB_PASSWORD=" .. SECRETS.DB_PASSWORD .. "   # inline comment",
  "API_TOKEN = '" .. SECRETS.API_TOKEN .. "'",
  "QUOTED=\"it's \\\"quoted\\\" " .. TAG .. " #not-a-comment\"",
  "MULTI=\"multi-" .. TAG .. "-first",
  "multi-" .. TAG .. "-second\"",
  "DOLLAR='price $5 " .. TAG .. " ${NOT_EXPANDED}'",
  "",
}, "\r\n")

local ENTRYPOINT = [[
CREATE TABLE IF NOT EXISTS public.hydrated (n int) INHERITS (hectic.created_at);
INSERT INTO public.hydrated (n) VALUES (1);
]]

describe("database secrets", function()
  local dir, proj, clone, cfg
  local outputs = {}

  local function base_env(extra)
    local e = {
      LOCAL_DIR = proj, XDG_CONFIG_HOME = cfg, HOME = dir .. "/home", DATABASE_DIR = false,
      DB_TOOL_SECRET_KEY = false, DB_TOOL_SECRET_KEY_FILE = false, ENVIRONMENT = false,
      HECTIC_DOTENV_FILE = false, HECTIC_DOTENV_CONTENT = false, PGURL = false, DB_URL = false,
      EDITOR = false, HYDRATE_LOG = false, PG_LOG_PATH = false, HECTIC_LOG = false,
      PG_WORKING_DIR = dir .. "/no-cluster", NO_COLOR = "1", XDG_RUNTIME_DIR = false,
    }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  -- run `database ARGS`; opts: env, stdin, plaintext (stdout is decrypted text by design)
  local function db(args, opts)
    opts = opts or {}
    local argv = { "database" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local r = t.run { argv = argv, env = base_env(opts.env), stdin = opts.stdin, cwd = opts.cwd or proj }
    outputs[#outputs + 1] = { args = table.concat(args, " "), stdout = r.stdout, stderr = r.stderr,
      plaintext = opts.plaintext }
    return r
  end

  local function rows(url, sql, ...)
    local c <close> = pg.connect(url)
    return c:exec(sql, ...)
  end

  local function secrets_in(url)
    local out = {}
    for _, r in ipairs(rows(url, "SELECT key, value FROM hectic.secret")) do out[r.key] = r.value end
    return out
  end

  local function hydrations(url)
    return rows(url, "SELECT count(*)::int AS n FROM public.hydrated")[1].n
  end

  local function url_with_password()
    local url = t.fresh_db("secrets")
    return url .. "&password=" .. URL_PASSWORD, url
  end

  local function mode_of(path)
    return string.format("%o", stat.stat(path).st_mode & tonumber("777", 8))
  end

  local function key_id()
    return t.read(proj .. "/db/secrets.pub"):match("key id (%x+)")
  end

  setup(function()
    dir = t.tmpdir("secrets-cli")
    proj = dir .. "/proj"
    clone = dir .. "/clone"
    cfg = dir .. "/config"
    t.mkdir_p(proj .. "/db/src")
    t.write(proj .. "/db/src/entrypoint.sql", ENTRYPOINT)
  end)

  it("has help, and the original's argument errors", function()
    local r = db { "secrets" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("Usage: database secrets <subcommand>", r.stdout)
    assert.matches("db%-tool secrets v1 sealedbox", r.stdout)
    for _, args in ipairs { { "secrets", "--help" }, { "secrets", "-h" }, { "secrets", "help" } } do
      assert.are.equal(r.stdout, db(args).stdout)
    end
    for _, sub in ipairs { "keygen", "encrypt", "decrypt", "edit", "set", "unset", "list", "load" } do
      local h = db { "secrets", sub, "--help" }
      assert.are.equal(0, h.code, h.stderr)
      assert.matches("Usage: database secrets " .. sub, h.stdout)
    end
    assert.matches("secrets%s+encrypted dotenv files", db({ "--help" }).stdout)
    r = db { "secrets", "frob" }
    assert.are.equal(9, r.code)
    assert.matches("db secrets> secrets subcommand frob does not exist", r.stderr)
    r = db { "secrets", "load", "--bogus" }
    assert.are.equal(9, r.code)
    assert.matches("secrets load argument %-%-bogus does not exist", r.stderr)
    r = db { "secrets", "load", "extra" }
    assert.are.equal(9, r.code)
    assert.matches("secrets load subcommand extra does not exist", r.stderr)
    for _, opt in ipairs { "-f", "--dotenv-file" } do
      r = db { "secrets", "load", opt }
      assert.are.equal(3, r.code)
      assert.matches("missing value for " .. opt:gsub("%-", "%%-"), r.stderr)
    end
    r = db { "secrets", "encrypt" }
    assert.are.equal(3, r.code)
    assert.matches("missing argument FILE", r.stderr)
  end)

  it("keygen writes the public key to the project and the private key outside it (0600)", function()
    local r = db { "secrets", "keygen" }
    assert.are.equal(0, r.code, r.stderr)
    local id = key_id()
    assert.matches("^key id:%s+" .. id .. "\n", r.stdout)
    local key_file = cfg .. "/db-tool/keys/" .. id .. ".key"
    assert.matches("private key: " .. key_file:gsub("%p", "%%%0"), r.stdout)
    assert.are.equal("600", mode_of(key_file))
    assert.are.equal("700", mode_of(cfg .. "/db-tool/keys"))
    local b64 = t.read(key_file):match("\n([%w+/=]+)\n$")
    assert.is_nil((r.stdout .. r.stderr):find(b64, 1, true))
    r = db { "secrets", "keygen" }
    assert.are.equal(1, r.code)
    assert.matches("secrets%.pub already exists %(key id " .. id .. "%)", r.stderr)
    assert.are.equal(id, key_id())
    local pub = t.read(proj .. "/db/secrets.pub")
    for _, inside in ipairs { proj .. "/private.key", proj .. "/keys/new/private.key", "db/../x.key" } do
      r = db { "secrets", "keygen", "--force", "--key-file", inside }
      assert.are.equal(1, r.code)
      assert.matches("refusing to write the private key inside the project", r.stderr)
    end
    assert.is_nil(stat.stat(proj .. "/keys"))
    assert.are.equal(pub, t.read(proj .. "/db/secrets.pub"))
    r = db({ "secrets", "keygen" }, { env = { LOCAL_DIR = false }, cwd = dir })
    assert.are.equal(3, r.code)
    assert.matches("LOCAL_DIR is not set", r.stderr)
  end)

  it("encrypt: FILE → FILE.enc, the plaintext wiped; invalid files refused at file:line", function()
    t.write(proj .. "/.env.test", DOTENV)
    local r = db { "secrets", "encrypt", ".env.test" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("encrypted %.env%.test → %.env%.test%.enc %(5 secrets, key id " .. key_id() .. "%)",
      r.stderr)
    assert.matches("removed the plaintext %.env%.test", r.stderr)
    assert.is_nil(stat.stat(proj .. "/.env.test"))
    local enc = t.read(proj .. "/.env.test.enc")
    assert.matches("^db%-tool secrets v1 sealedbox " .. key_id() .. "\n", enc)
    assert.is_nil(enc:find(TAG, 1, true))

    t.write(proj .. "/.env.bad",
      "OK=1\nSECRET=" .. SECRETS.DB_PASSWORD .. "\nbroken " .. SECRETS.API_TOKEN .. "\n")
    r = db { "secrets", "encrypt", ".env.bad" }
    assert.are.equal(3, r.code)
    assert.matches("%.env%.bad:3:1: invalid dotenv: expected KEY=value", r.stderr)
    assert.is_nil(stat.stat(proj .. "/.env.bad.enc"))
    assert.is_truthy(stat.stat(proj .. "/.env.bad"))
    os.remove(proj .. "/.env.bad")

    r = db { "secrets", "encrypt", ".env.test.enc" }
    assert.are.equal(1, r.code)
    assert.matches("%.env%.test%.enc is already encrypted", r.stderr)
    r = db { "secrets", "encrypt", ".env.none" }
    assert.are.equal(3, r.code)
    assert.matches("dotenv file is not readable: %.env%.none", r.stderr)

    -- only the public key is needed; without a private key the plaintext is kept
    t.write(proj .. "/.env.other", "X=1\n")
    r = db({ "secrets", "encrypt", ".env.other" }, { env = { XDG_CONFIG_HOME = dir .. "/nokeys" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("kept the plaintext %.env%.other: no usable private key", r.stderr)
    assert.is_truthy(stat.stat(proj .. "/.env.other"))
    os.remove(proj .. "/.env.other")
    os.remove(proj .. "/.env.other.enc")
    os.rename(proj .. "/db/secrets.pub", dir .. "/pub.saved")
    t.write(proj .. "/.env.other", "X=1\n")
    r = db { "secrets", "encrypt", ".env.other" }
    assert.are.equal(3, r.code)
    assert.matches("no public key: " .. proj:gsub("%p", "%%%0") .. "/db/secrets%.pub does not exist",
      r.stderr)
    os.rename(dir .. "/pub.saved", proj .. "/db/secrets.pub")
    os.remove(proj .. "/.env.other")
  end)

  it("list and decrypt", function()
    local r = db { "secrets", "list", ".env.test" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("DB_PASSWORD\nAPI_TOKEN\nQUOTED\nMULTI\nDOLLAR\n", r.stdout)
    r = db({ "secrets", "list" }, { env = { ENVIRONMENT = "test" } })
    assert.are.equal("DB_PASSWORD\nAPI_TOKEN\nQUOTED\nMULTI\nDOLLAR\n", r.stdout)
    r = db({ "secrets", "decrypt", ".env.test" }, { plaintext = true })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(DOTENV, r.stdout)
    r = db { "secrets", "decrypt", ".env.test", "-o", dir .. "/plain.env" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(DOTENV, t.read(dir .. "/plain.env"))
    assert.are.equal("600", mode_of(dir .. "/plain.env"))
    r = db { "secrets", "decrypt", ".env.test", "-o", dir .. "/plain.env" }
    assert.are.equal(1, r.code)
    assert.matches("already exists", r.stderr)
    os.remove(dir .. "/plain.env")
    t.write(dir .. "/plain.env", "A=1\n")
    r = db { "secrets", "decrypt", dir .. "/plain.env" }
    assert.are.equal(1, r.code)
    assert.matches("is not an encrypted dotenv file", r.stderr)
  end)

  it("hydrate loads the encrypted secrets after a commit-like copy of the project", function()
    -- what a colleague gets from the repository: no plaintext, no private key
    for _, f in ipairs { "db/secrets.pub", "db/src/entrypoint.sql", ".env.test.enc" } do
      t.write(clone .. "/" .. f, t.read(proj .. "/" .. f))
    end
    local url, plain_url = url_with_password()
    local r = db({ "hydrate" }, { env = { LOCAL_DIR = clone, ENVIRONMENT = "test", PGURL = url } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("loaded 5 secrets from " .. clone:gsub("%p", "%%%0") .. "/%.env%.test%.enc", r.stderr)
    assert.are.same(SECRETS, secrets_in(plain_url))
    assert.are.equal(SECRETS.MULTI, rows(plain_url, "SELECT hectic.get_secret('MULTI') AS v")[1].v)
    assert.are.equal(1, hydrations(plain_url))
    -- --verbose and trace logging too (the last test greps their output)
    r = db({ "--verbose", "hydrate" }, { env = { LOCAL_DIR = clone, ENVIRONMENT = "test", PGURL = url,
      HECTIC_LOG = "trace" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(2, hydrations(plain_url))
    -- the key from DB_TOOL_SECRET_KEY (CI) instead of the key directory
    local key = t.read(cfg .. "/db-tool/keys/" .. key_id() .. ".key")
    r = db({ "hydrate" }, { env = { LOCAL_DIR = clone, ENVIRONMENT = "test", PGURL = url,
      XDG_CONFIG_HOME = dir .. "/nokeys", DB_TOOL_SECRET_KEY = key } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(3, hydrations(plain_url))
    -- HECTIC_DOTENV_FILE may name the encrypted file, or the plain name of it
    for _, f in ipairs { clone .. "/.env.test.enc", clone .. "/.env.test" } do
      r = db({ "hydrate" }, { env = { LOCAL_DIR = clone, PGURL = url, HECTIC_DOTENV_FILE = f } })
      assert.are.equal(0, r.code, r.stderr)
    end
    assert.are.same(SECRETS, secrets_in(plain_url))
  end)

  it("DB_TOOL_SECRET_KEY decrypts for hydrate but reaches no child: server, hook commands, backticks",
    function()
    -- the clone plus a project file whose hook runs commands every way a hook can, and an
    -- entrypoint with a psql backtick; each dumps the environment it got
    local envproj, probes = dir .. "/envproj", dir .. "/probes"
    for _, f in ipairs { "db/secrets.pub", ".env.test.enc" } do
      t.write(envproj .. "/" .. f, t.read(clone .. "/" .. f))
    end
    t.mkdir_p(probes)
    t.write(envproj .. "/db/src/entrypoint.sql", ENTRYPOINT
      .. "\\set probe `env > " .. probes .. "/backtick.env; echo done`\n\\echo backtick :probe\n")
    t.write(envproj .. "/db/db-tool.lua", [[
local dir = ]] .. string.format("%q", probes) .. [[

return { hooks = { before_hydrate = function()
  os.execute("env > " .. dir .. "/os_execute.env")
  local p = io.popen("env")
  local text = p:read("a")
  p:close()
  local f = io.open(dir .. "/popen.env", "w")
  f:write(text)
  f:close()
  local _, out = require("dbtool").exec({ "env" }, { capture = true })
  f = io.open(dir .. "/exec.env", "w")
  f:write(out)
  f:close()
end } }
]])
    local key = t.read(cfg .. "/db-tool/keys/" .. key_id() .. ".key")
    local wd = dir .. "/envcluster"
    t.at_exit(function() pcall(require("dbtool.cluster").stop, wd, { mode = "immediate" }) end)
    local r = db({ "deploy" }, { env = { LOCAL_DIR = envproj, ENVIRONMENT = "test", PG_WORKING_DIR = wd,
      XDG_CONFIG_HOME = dir .. "/nokeys", DB_TOOL_SECRET_KEY = key, DB_TOOL_SECRET_KEY_FILE = "/nonexistent",
      PROBE_MARK = "visible-" .. TAG, PG_SHARED_PRELOAD_LIBRARIES = "", PG_DISABLE_LOGGING = "1" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("backtick done\n", r.stdout)
    -- the key was there to be used: without the key directory, only DB_TOOL_SECRET_KEY decrypts
    assert.matches("loaded 5 secrets from " .. envproj:gsub("%p", "%%%0") .. "/%.env%.test%.enc", r.stderr)
    local url = "postgresql:///testdb?host=" .. wd .. "/sock&port=5432"
    assert.are.same(SECRETS, secrets_in(url))
    -- every child saw the environment, but not the key; the key file path is not a secret
    local pid = t.read(wd .. "/data/postmaster.pid"):match("^(%d+)")
    local seen = {
      server = (t.read("/proc/" .. pid .. "/environ") or ""):gsub("%z", "\n"),
      os_execute = t.read(probes .. "/os_execute.env"),
      popen = t.read(probes .. "/popen.env"),
      exec = t.read(probes .. "/exec.env"),
      backtick = t.read(probes .. "/backtick.env"),
    }
    for what, text in pairs(seen) do
      assert.is_string(text, what)
      if what ~= "server" then
        assert.matches("\nPROBE_MARK=visible%-" .. TAG .. "\n", "\n" .. text, 1, false, what)
        assert.matches("\nDB_TOOL_SECRET_KEY_FILE=/nonexistent\n", "\n" .. text, 1, false, what)
      end
      assert.matches("\nPATH=", "\n" .. text, 1, false, what)
      assert.is_nil(text:find("DB_TOOL_SECRET_KEY=", 1, true), what .. " inherited the private key")
      assert.is_nil(text:find(key:match("\n([%w+/=]+)\n$"), 1, true), what .. " saw the private key")
    end
    r = t.run { argv = { "database", "cleanup" },
      env = base_env { LOCAL_DIR = envproj, PG_WORKING_DIR = wd } }
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("wrong, missing keys and damaged files: clear error, nothing loaded, old secrets kept", function()
    local url, plain_url = url_with_password()
    local henv = { LOCAL_DIR = clone, ENVIRONMENT = "test", PGURL = url }
    local r = db({ "hydrate" }, { env = henv })
    assert.are.equal(0, r.code, r.stderr)
    -- the file changes (a new value), but whoever hydrates has the wrong key
    r = db({ "secrets", "set", "API_TOKEN" }, { env = { LOCAL_DIR = clone, ENVIRONMENT = "test" },
      stdin = "new-token-" .. TAG .. "\n" })
    assert.are.equal(0, r.code, r.stderr)
    local _, other = na.box_keypair()
    local wrong = na.to_base64(other:export())
    local e = {}
    for k, v in pairs(henv) do e[k] = v end
    e.DB_TOOL_SECRET_KEY = wrong
    r = db({ "hydrate" }, { env = e })
    assert.are.equal(1, r.code)
    assert.matches("wrong private key: " .. clone:gsub("%p", "%%%0")
      .. "/%.env%.test%.enc is encrypted for key id "
      .. key_id() .. ", but DB_TOOL_SECRET_KEY holds key id %x+", r.stderr)
    assert.are.same(SECRETS, secrets_in(plain_url))
    assert.are.equal(1, hydrations(plain_url))                     -- nothing ran
    -- no key at all
    e.DB_TOOL_SECRET_KEY, e.XDG_CONFIG_HOME = false, dir .. "/nokeys"
    r = db({ "hydrate" }, { env = e })
    assert.are.equal(3, r.code)
    assert.matches("no private key for key id " .. key_id(), r.stderr)
    -- a key file others can read
    local key_file = cfg .. "/db-tool/keys/" .. key_id() .. ".key"
    stat.chmod(key_file, tonumber("644", 8))
    r = db({ "hydrate" }, { env = henv })
    assert.are.equal(1, r.code)
    assert.matches("has mode 0644: it must be readable by you only", r.stderr)
    assert.matches("chmod 600", r.stderr)
    stat.chmod(key_file, tonumber("600", 8))
    -- a damaged file
    local good = t.read(clone .. "/.env.test.enc")
    local lines = {}
    for l in good:gmatch("[^\n]+") do lines[#lines + 1] = l end
    local l2 = lines[2]
    lines[2] = l2:sub(1, 10) .. (l2:sub(11, 11) == "A" and "B" or "A") .. l2:sub(12)
    t.write(clone .. "/.env.test.enc", table.concat(lines, "\n") .. "\n")
    r = db({ "hydrate" }, { env = henv })
    assert.are.equal(1, r.code)
    assert.matches("cannot decrypt .*%.env%.test%.enc: it is damaged or was changed after encryption",
      r.stderr)
    -- valid encryption of invalid dotenv
    local secrets = require "dbtool.secrets"
    local pk = na.from_base64(t.read(clone .. "/db/secrets.pub"):match("\n([%w+/=]+)\n$"))
    t.write(clone .. "/.env.test.enc", secrets.encrypt("A=1\nB=\"" .. SECRETS.DB_PASSWORD .. "\n", pk))
    r = db({ "hydrate" }, { env = henv })
    assert.are.equal(3, r.code)
    assert.matches("%.env%.test%.enc:2:3: invalid dotenv: unterminated double%-quoted value of B", r.stderr)
    -- plain and encrypted side by side
    t.write(clone .. "/.env.test.enc", good)
    t.write(clone .. "/.env.test", "A=1\n")
    r = db({ "hydrate" }, { env = henv })
    assert.are.equal(2, r.code)
    assert.matches("both .*%.env%.test and .*%.env%.test%.enc exist", r.stderr)
    os.remove(clone .. "/.env.test")
    assert.are.same(SECRETS, secrets_in(plain_url))
    assert.are.equal(1, hydrations(plain_url))
    -- and with the right key, the new value arrives
    r = db({ "hydrate" }, { env = henv })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("new-token-" .. TAG, secrets_in(plain_url).API_TOKEN)
  end)

  it("secrets edit: round trip with a scripted $EDITOR, invalid edits change nothing", function()
    local probe = dir .. "/probe"
    local editor = t.write(dir .. "/editor.sh", table.concat({
      "#!/bin/sh",
      "echo \"$1\" > " .. t.shq(probe),
      "stat -c %a \"$1\" >> " .. t.shq(probe),
      "sed -i 's/^export DB_PASSWORD=.*/DB_PASSWORD=edited-" .. TAG .. "/' \"$1\"",
      "printf 'ADDED=\"added-" .. TAG .. "\"\\n' >> \"$1\"",
    }, "\n") .. "\n")
    stat.chmod(editor, tonumber("755", 8))
    local before = t.read(proj .. "/.env.test.enc")
    local r = db({ "secrets", "edit", ".env.test" }, { env = { EDITOR = editor } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("saved %.env%.test%.enc %(encrypted%)", r.stderr)
    local tmp, mode = t.read(probe):match("^(.-)\n(%d+)\n$")
    assert.are.equal("600", mode)
    assert.is_nil(stat.stat(tmp))
    assert.is_nil(stat.stat((tmp:match("^(.*)/"))))
    local after = t.read(proj .. "/.env.test.enc")
    assert.are_not.equal(before, after)
    assert.is_nil(after:find(TAG, 1, true))
    r = db({ "secrets", "decrypt", ".env.test" }, { plaintext = true })
    assert.matches("\r\nDB_PASSWORD=edited%-" .. TAG .. "\n", r.stdout)   -- sed's .* took the CR
    assert.matches("ADDED=\"added%-" .. TAG .. "\"\n$", r.stdout)
    assert.matches("MULTI=\"multi%-" .. TAG .. "%-first\r\nmulti", r.stdout)
    -- it loads
    local url, plain_url = url_with_password()
    r = db({ "secrets", "load", "-u", url, "-f", ".env.test.enc" })
    assert.are.equal(0, r.code, r.stderr)
    local got = secrets_in(plain_url)
    assert.are.equal("edited-" .. TAG, got.DB_PASSWORD)
    assert.are.equal("added-" .. TAG, got.ADDED)
    -- an editor that writes invalid dotenv, or fails: exit 3 / 1, the file is unchanged
    local bad = t.write(dir .. "/bad.sh", "#!/bin/sh\nprintf 'oops no equals\\n' >> \"$1\"\n")
    stat.chmod(bad, tonumber("755", 8))
    r = db({ "secrets", "edit", ".env.test.enc" }, { env = { EDITOR = bad } })
    assert.are.equal(3, r.code)
    assert.matches("%.env%.test%.enc %(edited%):%d+:1: invalid dotenv: expected KEY=value", r.stderr)
    assert.matches("was not changed", r.stderr)
    assert.are.equal(after, t.read(proj .. "/.env.test.enc"))
    r = db({ "secrets", "edit", ".env.test.enc" }, { env = { EDITOR = "false" } })
    assert.are.equal(1, r.code)
    assert.matches("the editor exited with status 1", r.stderr)
    r = db({ "secrets", "edit", ".env.test.enc" }, { env = { EDITOR = "true" } })
    assert.are.equal(0, r.code)
    assert.matches("no changes", r.stderr)
    assert.are.equal(after, t.read(proj .. "/.env.test.enc"))
  end)

  it("secrets set reads the value from stdin; unset removes a key", function()
    local r = db({ "secrets", "set", "NEW_SECRET" }, { env = { ENVIRONMENT = "test" },
      stdin = "set-value-" .. TAG .. "\n" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("added NEW_SECRET in .*%.env%.test%.enc", r.stderr)
    r = db({ "secrets", "set", "NEW_SECRET", ".env.test.enc" }, { stdin = "set-value2-" .. TAG })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("updated NEW_SECRET", r.stderr)
    r = db({ "secrets", "decrypt", ".env.test" }, { plaintext = true })
    assert.matches("\nNEW_SECRET=set%-value2%-" .. TAG .. "\r\n", r.stdout)   -- CRLF file: CRLF line
    r = db({ "secrets", "set", "EMPTY" }, { env = { ENVIRONMENT = "test" }, stdin = "" })
    assert.are.equal(3, r.code)
    assert.matches("no value for EMPTY on standard input", r.stderr)
    r = db({ "secrets", "set", "1BAD" }, { env = { ENVIRONMENT = "test" }, stdin = "x\n" })
    assert.are.equal(1, r.code)
    assert.matches("invalid key '1BAD'", r.stderr)
    r = db({ "secrets", "set", "X" }, { stdin = "x\n" })
    assert.are.equal(3, r.code)
    assert.matches("no file given and ENVIRONMENT is not set", r.stderr)
    r = db({ "secrets", "unset", "NEW_SECRET" }, { env = { ENVIRONMENT = "test" } })
    assert.are.equal(0, r.code, r.stderr)
    r = db({ "secrets", "list" }, { env = { ENVIRONMENT = "test" } })
    assert.is_nil(r.stdout:find("NEW_SECRET", 1, true))
    assert.matches("ADDED\n$", r.stdout)
  end)

  it("secrets load behaves like the original db-ops secrets load", function()
    -- the URL is checked first
    local r = db { "secrets", "load", "-f", ".env.test.enc" }
    assert.are.equal(3, r.code)
    assert.matches("PGURL or DB_URL is required", r.stderr)
    local url, plain_url = url_with_password()
    r = db { "secrets", "load", "-u", url, "-f", "missing.env" }
    assert.are.equal(3, r.code)
    assert.matches("dotenv file is not readable: missing%.env", r.stderr)
    r = db({ "secrets", "load" }, { env = { PGURL = url } })
    assert.are.equal(3, r.code)
    assert.matches("dotenv source is required %(HECTIC_DOTENV_CONTENT, readable dotenv file, or "
      .. "%$LOCAL_DIR/%.env%.%$ENVIRONMENT%)", r.stderr)
    -- an invalid file: exit 3 at file:line, and nothing happened (not even the bundle)
    t.write(dir .. "/bad.env", "GOOD=1\n\"" .. SECRETS.DB_PASSWORD .. "\n")
    r = db({ "secrets", "load", "--dotenv-file", dir .. "/bad.env" }, { env = { DB_URL = url } })
    assert.are.equal(3, r.code)
    assert.matches("bad%.env:2:1: invalid dotenv", r.stderr)
    assert.are.equal(0, rows(plain_url,
      "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'hectic'")[1].n)
    -- an empty file applies the bundle and leaves the secrets alone
    t.write(dir .. "/empty.env", "")
    r = db({ "secrets", "load", "-f", dir .. "/empty.env" }, { env = { PGURL = url } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("apply hectic bundle and load secrets", r.stderr)
    assert.are.same({}, secrets_in(plain_url))
    -- the encrypted file through $LOCAL_DIR/.env.$ENVIRONMENT, with --verbose
    r = db({ "--verbose", "secrets", "load" }, { env = { PGURL = url, ENVIRONMENT = "test",
      HECTIC_LOG = "trace" } })
    assert.are.equal(0, r.code, r.stderr)
    local got = secrets_in(plain_url)
    assert.are.equal(SECRETS.API_TOKEN, got.API_TOKEN)
    assert.are.equal(SECRETS.MULTI, got.MULTI)
    -- HECTIC_DOTENV_CONTENT first; an empty file later keeps them
    r = db({ "secrets", "load", "-f", ".env.test.enc" }, { env = { PGURL = url,
      HECTIC_DOTENV_CONTENT = "ONLY=content-" .. TAG } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ ONLY = "content-" .. TAG }, secrets_in(plain_url))
    r = db({ "secrets", "load", "-f", dir .. "/empty.env" }, { env = { PGURL = url } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ ONLY = "content-" .. TAG }, secrets_in(plain_url))
    -- a duplicate key: the last wins, with a warning naming the lines (not the values)
    t.write(dir .. "/dup.env", "K=first-" .. TAG .. "\nK=second-" .. TAG .. "\n")
    r = db({ "secrets", "load", "-f", dir .. "/dup.env" }, { env = { PGURL = url } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("dup%.env:2: K is set again %(first at line 1%); the last value wins", r.stderr)
    assert.are.same({ K = "second-" .. TAG }, secrets_in(plain_url))
  end)

  it("no output of these commands shows a secret value or the URL password", function()
    assert.is_true(#outputs > 40, "too few runs recorded: " .. #outputs)
    local needles = { URL_PASSWORD, TAG }
    local key_file = cfg .. "/db-tool/keys/" .. key_id() .. ".key"
    needles[#needles + 1] = t.read(key_file):match("\n([%w+/=]+)\n$")
    local checked = 0
    for _, o in ipairs(outputs) do
      local text = o.stderr .. (o.plaintext and "" or o.stdout)
      for _, needle in ipairs(needles) do
        local at = text:find(needle, 1, true)
        assert.is_nil(at, string.format("`database %s` printed a secret: ...%s...", o.args,
          at and text:sub(math.max(1, at - 40), at + 40) or ""))
      end
      checked = checked + #text
    end
    assert.is_true(checked > 2000)
    -- and the decrypting runs did print the values (the needles can be found)
    local found = false
    for _, o in ipairs(outputs) do
      if o.plaintext and o.stdout:find(TAG, 1, true) then found = true end
    end
    assert.is_true(found)
  end)
end)
