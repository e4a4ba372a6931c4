-- dbtool.secrets without a database: keys, the encrypted file format, finding dotenv files,
-- editing files (a scripted editor). End to end with PostgreSQL: spec/cli/secrets_spec.lua.
local env = require "dbtool.env"
local na = require "dbtool.core.sodium"
local secrets = require "dbtool.secrets"
local stat = require "posix.sys.stat"
local testutil = require "testutil"

local function mode_of(path)
  return stat.stat(path).st_mode & tonumber("777", 8)
end

local function failing(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.is_table(e, tostring(e))
  return e
end

-- A project in a fresh directory with its own key directory; returns dir.
local function project()
  local dir = testutil.tmpdir("secrets")
  env.reset()
  env.set("LOCAL_DIR", dir .. "/proj")
  env.set("DATABASE_DIR", nil)
  env.set("XDG_CONFIG_HOME", dir .. "/config")
  env.set("HOME", dir .. "/home")
  for _, v in ipairs { "DB_TOOL_SECRET_KEY", "DB_TOOL_SECRET_KEY_FILE", "ENVIRONMENT",
    "HECTIC_DOTENV_FILE", "HECTIC_DOTENV_CONTENT", "EDITOR", "XDG_RUNTIME_DIR" } do
    env.set(v, nil)
  end
  testutil.mkdir_p(dir .. "/proj/db")
  return dir
end

describe("dbtool.secrets", function()
  -- values registered with the redaction here must not hide words of later specs' messages
  teardown(function() require("dbtool.log").forget_secrets() end)

  after_each(function() env.reset() end)

  describe("keygen", function()
    it("writes the private key (0600 in a 0700 directory) and the public key", function()
      local dir = project()
      local r = secrets.keygen()
      assert.matches("^%x+$", r.id)
      assert.are.equal(16, #r.id)
      assert.are.equal(dir .. "/proj/db/secrets.pub", r.public)
      assert.are.equal(dir .. "/config/db-tool/keys/" .. r.id .. ".key", r.private)
      assert.are.equal(tonumber("600", 8), mode_of(r.private))
      assert.are.equal(tonumber("700", 8), mode_of(dir .. "/config/db-tool/keys"))
      local pk, id = secrets.read_public_key()
      assert.are.equal(r.id, id)
      assert.are.equal(32, #pk)
      local key = secrets.secret_key(id)
      assert.are.equal(pk, na.box_public_key(key))
      key:close()
      assert.matches("^# db%-tool public key", testutil.read(r.public))
      assert.is_nil(r.replaced)
    end)

    it("keeps an existing public key unless forced", function()
      project()
      local first = secrets.keygen()
      local e = failing(secrets.keygen)
      assert.are.equal(1, e.exit)
      assert.are.equal(first.public .. " already exists (key id " .. first.id .. ")", e.msg)
      local second = secrets.keygen { force = true }
      assert.are_not.equal(first.id, second.id)
      assert.are.equal(first.id, second.replaced)
      assert.are.equal(second.id, select(2, secrets.read_public_key()))
      -- the old private key stays where it was (old files can still be decrypted)
      assert.is_truthy(stat.stat(first.private))
    end)

    it("refuses to put the private key inside the project", function()
      local dir = project()
      local e = failing(secrets.keygen, { key_file = dir .. "/proj/keys/my.key" })
      assert.are.equal(1, e.exit)
      assert.matches("refusing to write the private key inside the project", e.msg)
      assert.is_nil(stat.stat(dir .. "/proj/db/secrets.pub"))
      assert.is_nil(stat.stat(dir .. "/proj/keys/my.key"))
      local r = secrets.keygen { key_file = dir .. "/elsewhere/my.key" }
      assert.are.equal(dir .. "/elsewhere/my.key", r.private)
      assert.are.equal(tonumber("600", 8), mode_of(r.private))
    end)
  end)

  describe("private keys", function()
    it("come from DB_TOOL_SECRET_KEY, then DB_TOOL_SECRET_KEY_FILE, then the key directory", function()
      local dir = project()
      local r = secrets.keygen()
      local text = testutil.read(r.private)
      assert.are.equal("file", secrets.key_source(r.id).kind)
      assert.is_true(secrets.key_source(r.id).default)
      -- the whole file in the variable, or just its base64 line
      for _, v in ipairs { text, text:match("\n([^#\n][^\n]*)\n$") } do
        env.set("DB_TOOL_SECRET_KEY", v)
        local key, src = secrets.secret_key(r.id)
        assert.are.equal("env", src.kind)
        key:close()
      end
      env.set("DB_TOOL_SECRET_KEY", nil)
      local moved = testutil.write(dir .. "/other/k.key", text)
      stat.chmod(moved, tonumber("600", 8))
      os.remove(r.private)
      env.set("DB_TOOL_SECRET_KEY_FILE", moved)
      local key, src = secrets.secret_key(r.id)
      key:close()
      assert.are.equal(moved, src.path)
    end)

    it("a missing key is exit 3 saying where to put it", function()
      project()
      local r = secrets.keygen()
      os.remove(r.private)
      local e = failing(secrets.secret_key, r.id, "x.enc")
      assert.are.equal(3, e.exit)
      assert.are.equal("no private key for key id " .. r.id .. " (to decrypt x.enc)", e.msg)
      assert.matches(r.private, e.hint, 1, true)
      assert.matches("DB_TOOL_SECRET_KEY", e.hint)
    end)

    it("a key for another project is exit 1 naming both key ids", function()
      project()
      local r = secrets.keygen()
      local _, other = na.box_keypair()
      local other_b64 = na.to_base64(other:export())
      env.set("DB_TOOL_SECRET_KEY", other_b64)
      local e = failing(secrets.secret_key, r.id, ".env.prod.enc")
      assert.are.equal(1, e.exit)
      assert.matches("^wrong private key: %.env%.prod%.enc is encrypted for key id " .. r.id
        .. ", but DB_TOOL_SECRET_KEY holds key id %x+$", e.msg)
      assert.is_nil(e.msg:find(other_b64, 1, true))
    end)

    it("garbage in DB_TOOL_SECRET_KEY is a clear error that does not echo it", function()
      project()
      local r = secrets.keygen()
      for _, v in ipairs { "not base64!", na.to_base64("short"), "a\nb\n" } do
        env.set("DB_TOOL_SECRET_KEY", v)
        local e = failing(secrets.secret_key, r.id)
        assert.are.equal(1, e.exit)
        assert.matches("^invalid private key in DB_TOOL_SECRET_KEY", e.msg)
        assert.is_nil(e.msg:find(v, 1, true))
      end
    end)

    it("key files readable by others are refused with the chmod to run", function()
      project()
      local r = secrets.keygen()
      for _, m in ipairs { "644", "640", "604", "660", "606" } do
        stat.chmod(r.private, tonumber(m, 8))
        local e = failing(secrets.secret_key, r.id)
        assert.are.equal(1, e.exit)
        assert.are.equal("private key file " .. r.private .. " has mode 0" .. m
          .. ": it must be readable by you only", e.msg)
        assert.are.equal("run: chmod 600 " .. r.private, e.hint)
      end
      for _, m in ipairs { "400", "600", "700" } do         -- no group/other bits: accepted
        stat.chmod(r.private, tonumber(m, 8))
        secrets.secret_key(r.id):close()
      end
    end)
  end)

  describe("encrypted file format", function()
    local pk, sk
    before_each(function() pk, sk = na.box_keypair() end)

    it("is a header line and wrapped base64 of a sealed box", function()
      local text = "A=1\nPASSWORD=\"p w\"\n"
      local enc = secrets.encrypt(text, pk)
      local lines = {}
      for l in enc:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
      assert.are.equal("db-tool secrets v1 sealedbox " .. secrets.key_id(pk), lines[1])
      for i = 2, #lines - 1 do assert.are.equal(64, #lines[i]) end
      assert.is_true(#lines[#lines] <= 64)
      assert.is_true(secrets.is_encrypted(enc))
      assert.is_false(secrets.is_encrypted(text))
      local h = secrets.parse_encrypted(enc, "f")
      assert.are.same({ 1, "sealedbox", secrets.key_id(pk) }, { h.version, h.algorithm, h.id })
      assert.are.equal(#text + na.SEALBYTES, #h.body)
      assert.are.equal(text, na.seal_open(h.body, pk, sk))
      assert.are.equal(text, (secrets.decrypt(enc, "f", { key = sk })))
      assert.are.equal(text, (secrets.decrypt(enc:gsub("\n", "\r\n"), "f", { key = sk })))
      assert.is_nil(enc:find("PASSWORD", 1, true))
      assert.are_not.equal(enc, secrets.encrypt(text, pk))        -- fresh ephemeral key each time
      assert.are.equal("", (secrets.decrypt(secrets.encrypt("", pk), "f", { key = sk })))
    end)

    it("rejects other versions, damaged headers and bodies at file:line", function()
      local enc = secrets.encrypt("A=1\n", pk)
      local cases = {
        { enc:gsub("^db%-tool secrets v1", "db-tool secrets v2"), "f:1",
          "unsupported encrypted dotenv format v2 %(this db%-tool reads v1%)" },
        { enc:gsub("sealedbox", "aes"), "f:1", "damaged header" },
        { enc:gsub(" %x+\n", " 12ab\n", 1), "f:1", "damaged header" },
        { "A=1\n", "f:1", "not an encrypted dotenv file" },
        { enc .. "not*base64\n", "f:%d+", "damaged file: line %d+ is not base64" },
        { enc:match("^[^\n]*\n") .. "QUJD\n", "f", "damaged file: the encrypted body is truncated" },
      }
      for _, c in ipairs(cases) do
        local e = failing(secrets.parse_encrypted, c[1], "f")
        assert.are.equal(1, e.exit)
        assert.matches("^" .. c[2] .. "$", e.where)
        assert.matches(c[3], e.msg)
      end
    end)

    it("a changed byte fails authentication: exit 1, nothing returned", function()
      local enc = secrets.encrypt("SECRET=abcdef\n", pk)
      local header, body = enc:match("^([^\n]*\n)(.*)$")
      local b = na.from_base64((body:gsub("\n", "")))
      local flipped = b:sub(1, 60) .. string.char(b:byte(61) ~ 1) .. b:sub(62)
      local e = failing(secrets.decrypt, header .. na.to_base64(flipped) .. "\n", "x.enc", { key = sk })
      assert.are.equal(1, e.exit)
      assert.are.equal("cannot decrypt x.enc: it is damaged or was changed after encryption "
        .. "(authentication failed)", e.msg)
    end)
  end)

  describe("finding dotenv files", function()
    it("resolve(): FILE, else FILE.enc; both is exit 2", function()
      local dir = project()
      local p = dir .. "/proj/.env.dev"
      assert.is_nil(secrets.resolve(p))
      testutil.write(p .. ".enc", "x")
      assert.are.equal(p .. ".enc", secrets.resolve(p))
      assert.are.equal(p .. ".enc", secrets.resolve(p .. ".enc"))
      testutil.write(p, "A=1\n")
      local e = failing(secrets.resolve, p)
      assert.are.equal(2, e.exit)
      assert.are.equal("both " .. p .. " and " .. p .. ".enc exist", e.msg)
      os.remove(p .. ".enc")
      assert.are.equal(p, secrets.resolve(p))
    end)

    it("find(): HECTIC_DOTENV_CONTENT, the file, then $LOCAL_DIR/.env.$ENVIRONMENT[.enc]", function()
      local dir = project()
      local r = secrets.keygen()
      local pk = secrets.read_public_key()
      assert.is_nil(secrets.find())
      local e = failing(secrets.find, { required = true })
      assert.are.equal(3, e.exit)
      assert.are.equal("dotenv source is required (HECTIC_DOTENV_CONTENT, readable dotenv file, "
        .. "or $LOCAL_DIR/.env.$ENVIRONMENT)", e.msg)
      env.set("ENVIRONMENT", "test")
      testutil.write(dir .. "/proj/.env.test.enc", secrets.encrypt("FROM=enc\n", pk))
      local text, source = secrets.find()
      assert.are.equal("FROM=enc\n", text)
      assert.are.equal(dir .. "/proj/.env.test.enc", source)
      testutil.write(dir .. "/plain.env", "FROM=file\n")
      env.set("HECTIC_DOTENV_FILE", dir .. "/plain.env")
      assert.are.equal("FROM=file\n", (secrets.find()))
      assert.are.equal("FROM=enc\n", (secrets.find { file = dir .. "/proj/.env.test" }))
      env.set("HECTIC_DOTENV_CONTENT", "FROM=content\n")
      assert.are.equal("FROM=content\n", (secrets.find()))
      env.set("HECTIC_DOTENV_CONTENT", secrets.encrypt("FROM=encrypted content\n", pk))
      assert.are.equal("FROM=encrypted content\n", (secrets.find()))
      env.set("HECTIC_DOTENV_CONTENT", nil)
      env.set("HECTIC_DOTENV_FILE", dir .. "/missing.env")
      e = failing(secrets.find)
      assert.are.equal(3, e.exit)
      assert.are.equal("dotenv file is not readable: " .. dir .. "/missing.env", e.msg)
      e = failing(secrets.find, { file = dir, required = true })
      assert.are.equal("dotenv file is not readable: " .. dir, e.msg)
      assert.is_string(r.id)
    end)

    it("prepare(): nothing for empty content, parsed secrets otherwise, errors at file:line", function()
      local dir = project()
      env.set("HECTIC_DOTENV_FILE", testutil.write(dir .. "/e.env", "  \n\n"))
      assert.is_nil(secrets.prepare())
      testutil.write(dir .. "/e.env", "A=1\nB='two'\nA=3\n")
      local p = secrets.prepare()
      assert.are.same({ map = { A = "3", B = "two" }, source = dir .. "/e.env", count = 2 }, p)
      testutil.write(dir .. "/e.env", "A=1\nnot a line\n")
      local e = failing(secrets.prepare)
      assert.are.equal(3, e.exit)
      assert.are.equal(dir .. "/e.env:2:1", e.where)
    end)
  end)

  describe("editing files", function()
    it("set/unset keep the file encrypted, re-encrypt for the current key", function()
      local dir = project()
      env.set("ENVIRONMENT", "dev")
      local first = secrets.keygen()
      local t, is_new = secrets.set(nil, "TOKEN", "tok-123")
      assert.is_true(is_new)
      assert.are.equal(dir .. "/proj/.env.dev.enc", t.path)
      local enc = testutil.read(t.path)
      assert.matches("^db%-tool secrets v1 sealedbox " .. first.id, enc)
      assert.is_nil(enc:find("tok-123", 1, true))
      secrets.set(nil, "OTHER", "x y")
      t, is_new = secrets.set(t.path, "TOKEN", "tok-456")
      assert.is_false(is_new)
      local plain = secrets.open_target(secrets.target())
      assert.are.equal("TOKEN=tok-456\nOTHER=\"x y\"\n", plain)
      -- a new key pair: the next write re-encrypts for it (the old key still decrypts)
      local second = secrets.keygen { force = true }
      secrets.set(nil, "NEW", "1")
      assert.matches("sealedbox " .. second.id, testutil.read(t.path))
      local _, n = secrets.unset(nil, "OTHER")
      assert.are.equal(1, n)
      assert.are.equal("TOKEN=tok-456\nNEW=1\n", (secrets.open_target(secrets.target())))
      _, n = secrets.unset(nil, "ABSENT")
      assert.are.equal(0, n)
    end)

    it("set on a plain file keeps it plain (and its mode)", function()
      local dir = project()
      local p = testutil.write(dir .. "/proj/.env.local", "# mine\nA=1\n")
      stat.chmod(p, tonumber("600", 8))
      secrets.set(p, "B", "two words")
      assert.are.equal("# mine\nA=1\nB=\"two words\"\n", testutil.read(p))
      assert.are.equal(tonumber("600", 8), mode_of(p))
      local e = failing(secrets.set, p, "1BAD", "x")
      assert.are.equal(1, e.exit)
    end)

    it("edit: a private temporary file, checked, re-encrypted and wiped", function()
      local dir = project()
      secrets.keygen()
      local file = dir .. "/proj/.env.dev.enc"
      secrets.set(file, "A", "1")
      local before = testutil.read(file)
      local probe = dir .. "/probe"
      local script = testutil.write(dir .. "/editor.sh", table.concat({
        "#!/bin/sh",
        "f=$1",
        "echo \"$f\" > " .. probe,
        "stat -c %a \"$f\" >> " .. probe,
        "stat -c %a \"$(dirname \"$f\")\" >> " .. probe,
        "echo \"key=${DB_TOOL_SECRET_KEY:-unset}\" >> " .. probe,
        "echo 'B=\"edited value\"' >> \"$f\"",
        "touch \"$f~\"",                           -- an editor backup next to it
      }, "\n") .. "\n")
      stat.chmod(script, tonumber("755", 8))
      env.set("EDITOR", script)
      local _, id = secrets.read_public_key()
      env.set("DB_TOOL_SECRET_KEY", testutil.read(secrets.default_key_file(id)))
      local outcome = secrets.edit(file)
      assert.are.equal("saved", outcome)
      local tmp, fmode, dmode, key = testutil.read(probe):match("^(.-)\n(%d+)\n(%d+)\n(.-)\n$")
      assert.are.equal("600", fmode)
      assert.are.equal("700", dmode)
      assert.are.equal("key=unset", key)                    -- not passed to the editor
      assert.matches("/db%-tool%-secrets%-[^/]+/%.env%.dev$", tmp)
      assert.is_nil(stat.stat(tmp))
      assert.is_nil(stat.stat(tmp .. "~"))
      assert.is_nil(stat.stat((tmp:match("^(.*)/"))))
      assert.are_not.equal(before, testutil.read(file))
      assert.are.equal("A=1\nB=\"edited value\"\n", (secrets.open_target(secrets.target(file))))
    end)

    it("edit: no change, a failing editor or invalid text leave the file as it was", function()
      local dir = project()
      secrets.keygen()
      local file = dir .. "/proj/.env.dev.enc"
      secrets.set(file, "A", "1")
      local before = testutil.read(file)
      env.set("EDITOR", "true")
      assert.are.equal("unchanged", (secrets.edit(file)))
      env.set("EDITOR", "false")
      local e = failing(secrets.edit, file)
      assert.are.equal(1, e.exit)
      assert.are.equal("the editor exited with status 1; " .. file .. " was not changed", e.msg)
      local script = testutil.write(dir .. "/bad.sh", "#!/bin/sh\necho 'broken line' >> \"$1\"\n")
      stat.chmod(script, tonumber("755", 8))
      env.set("EDITOR", script)
      e = failing(secrets.edit, file)
      assert.are.equal(3, e.exit)
      assert.are.equal(file .. " (edited):2:1", e.where)
      assert.matches("was not changed", e.hint)
      local asked = 0
      e = failing(secrets.edit, file, nil, { retry = function() asked = asked + 1; return asked < 3 end })
      assert.are.equal(3, asked)
      assert.are.equal(3, e.exit)
      env.set("EDITOR", dir .. "/no-such-editor")
      e = failing(secrets.edit, file)
      assert.are.equal(127, e.exit)
      assert.are.equal(before, testutil.read(file))
    end)
  end)

  describe("writing files", function()
    it("write_private refuses to replace unless asked and always ends 0600", function()
      local dir = project()
      local p = dir .. "/p"
      secrets.write_private(p, "one", false)
      assert.are.equal(tonumber("600", 8), mode_of(p))
      local e = failing(secrets.write_private, p, "two", false)
      assert.are.equal(p .. " already exists", e.msg)
      stat.chmod(p, tonumber("644", 8))
      secrets.write_private(p, "two", true)
      assert.are.equal("two", testutil.read(p))
      assert.are.equal(tonumber("600", 8), mode_of(p))
    end)

    it("wipe_file overwrites before removing; write_atomic keeps the mode", function()
      local dir = project()
      local p = testutil.write(dir .. "/w", string.rep("s", 200000))
      secrets.wipe_file(p)
      assert.is_nil(stat.stat(p))
      local a = testutil.write(dir .. "/a", "old")
      stat.chmod(a, tonumber("640", 8))
      secrets.write_atomic(a, "new")
      assert.are.equal("new", testutil.read(a))
      assert.are.equal(tonumber("640", 8), mode_of(a))
    end)
  end)
end)
