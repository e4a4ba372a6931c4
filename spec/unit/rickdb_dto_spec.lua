-- dbtool.rickdb.dto without a database: rick_db's naming rules (class names, repr, the `id`
-- attribute), the fixes of its defects, the default Python template and a project template.
local t = require "testutil"
local dto = require "dbtool.rickdb.dto"

local function cols(...)
  local out = {}
  for i, n in ipairs { ... } do out[i] = { name = n } end
  return out
end

local function render(raw, arg, tpl)
  local schema, name = dto.split(arg)
  local obj = dto.model(arg, schema, name, raw, "postgresql")
  return dto.render(obj, tpl or dto.load_template()), obj
end

describe("rickdb dto", function()
  it("names classes like rick_db (str.title, drop _ and non-alphanumerics, T prefix, Record)", function()
    local cases = {
      page = "PageRecord", some_page = "SomePageRecord", ["2fa_codes"] = "T2FaCodesRecord",
      userProfile = "UserprofileRecord", page2x = "Page2XRecord", [""] = "TRecord", ["_x"] = "XRecord",
      ["user-accounts"] = "UserAccountsRecord", ["café_menu"] = "CafMenuRecord", ["a b.c"] = "ABCRecord",
      ORDERS = "OrdersRecord", ["__"] = "TRecord", ["9"] = "T9Record",
    }
    for tablename, class in pairs(cases) do
      assert.are.equal(class, dto.class_name(tablename), tablename)
    end
    assert.are.equal("Hello World 2X", dto.title("hello WORLD 2x"))
  end)

  it("quotes like Python's repr()", function()
    assert.are.equal("'page'", dto.py_repr("page"))
    assert.are.equal([["it's"]], dto.py_repr("it's"))
    assert.are.equal([['say "hi"']], dto.py_repr('say "hi"'))
    assert.are.equal([['it\'s "x"']], dto.py_repr([[it's "x"]]))
    assert.are.equal([['a\\b\n\t\x01']], dto.py_repr("a\\b\n\t\1"))
    assert.are.equal("'é'", dto.py_repr("é"))
  end)

  it("maps a single primary key to id unless a column is named id", function()
    local attrs = dto.attributes(cols("id_user", "name", "select"), "id_user")
    assert.are.same({ "id", "name", "select" }, attrs)
    attrs = dto.attributes(cols("id", "id_user", "name"), "id_user")
    assert.are.same({ "id", "id_user", "name" }, attrs)
    attrs = dto.attributes(cols("a", "b"), nil)
    assert.are.same({ "a", "b" }, attrs)
  end)

  it("fixes rick_db's defects: keywords, leading underscores, record methods, non-identifiers, clashes",
    function()
      local attrs, notes = dto.attributes(cols("class", "_secret", "values", "pk", "my col", "2fa", "None",
        "from", "secret_", "größe", "a€", "__"), nil)
      assert.are.same({ "class_", "secret_", "values_", "pk_", "my_col", "f_2fa", "None_", "from_",
        "secret__",
        "größe", "a_", "field_" }, attrs)
      assert.are.equal(11, #notes)
      assert.are.equal("column 'class' is attribute class_: is a Python keyword", notes[1])
      assert.are.equal("column '_secret' is attribute secret_: starts with '_' (fieldmapper ignores such "
        .. "attributes)", notes[2])
      assert.are.equal("column 'values' is attribute values_: is the name of a record method", notes[3])
      assert.are.equal("column 'my col' is attribute my_col: is not a Python identifier", notes[5])
      assert.are.equal("column 'secret_' is attribute secret__: would repeat another attribute", notes[9])
      for _, a in ipairs(attrs) do assert.is_true(dto.is_identifier(a), a) end
    end)

  it("writes rick_db's file for a table, a schema-qualified table and a view", function()
    local text = render({ kind = "table", schema = "public", pk = { "id_page" },
      columns = cols("id_page", "crawled", "url", "type", "title", "description", "breadcrumbs") }, "page")
    assert.are.equal([[
from rick_db import fieldmapper


@fieldmapper(tablename='page', pk='id_page')
class PageRecord:
    id = 'id_page'
    crawled = 'crawled'
    url = 'url'
    type = 'type'
    title = 'title'
    description = 'description'
    breadcrumbs = 'breadcrumbs'
]], text)
    text = render({ kind = "table", schema = "test", pk = { "id_page" }, columns = cols("id_page", "url") },
      "test.some_page")
    assert.are.equal([[
from rick_db import fieldmapper


@fieldmapper(tablename='some_page', schema='test', pk='id_page')
class SomePageRecord:
    id = 'id_page'
    url = 'url'
]], text)
    text = render({ kind = "view", schema = "public", pk = {}, columns = cols("id_page", "title") },
      "page_titles")
    assert.are.equal([[
from rick_db import fieldmapper


@fieldmapper(tablename='page_titles')
class PageTitlesRecord:
    id_page = 'id_page'
    title = 'title'
]], text)
  end)

  it("sets no single pk for a composite key, and says why in comments", function()
    local text, obj = render({ kind = "table", schema = "public", pk = { "a", "b" },
      columns = cols("a", "b", "class") }, "pair")
    assert.is_true(obj.composite)
    assert.is_nil(obj.pk_column)
    assert.are.equal([[
from rick_db import fieldmapper


# composite primary key ('a', 'b'): fieldmapper takes a single pk, so none is set
# column 'class' is attribute class_: is a Python keyword
@fieldmapper(tablename='pair')
class PairRecord:
    a = 'a'
    b = 'b'
    class_ = 'class'
]], text)
  end)

  it("quotes names with repr() so identifiers cannot inject code", function()
    local text = render({ kind = "table", schema = "public", pk = {}, columns = cols("it's", "x\ny") },
      [[s".t'x]])
    assert.matches([[@fieldmapper%(tablename="t'x", schema='s"'%)]], text)
    assert.matches("\n    it_s = \"it's\"\n    x_y = 'x\\ny'\n", text, 1, true)
  end)

  it("loads another template: a module, or a .lua file relative to a directory", function()
    local tpl = dto.load_template(t.top .. "/examples/rickdb/templates/dto_typescript.lua")
    local text = render({ kind = "table", schema = "public", pk = { "id_page" },
      columns = { { name = "id_page", type = "integer", nullable = false }, { name = "title", type = "text",
        nullable = true }, { name = "class", type = "character varying(20)", nullable = false } } }, "page",
          tpl)
    assert.are.equal([[
// table page (generated by rickdb dto)
export interface Page {
  id: number;
  title?: string;
  class_: string;
}

export const PageColumns = {
  id: 'id_page',
  title: 'title',
  class_: 'class',
} as const;
export const PagePrimaryKey = ['id_page'] as const;
]], text)
    tpl = dto.load_template("templates/dto_typescript.lua", t.top .. "/examples/rickdb")
    assert.are.equal("ts", tpl.extension)
    local ok, e = pcall(dto.load_template, "no.such.module")
    assert.is_false(ok)
    assert.matches("cannot load DTO template 'no.such.module'", e.msg, 1, true)
    local dir = t.tmpdir("tpl")
    t.write(dir .. "/bad.lua", "return 1")
    ok, e = pcall(dto.load_template, dir .. "/bad.lua")
    assert.is_false(ok)
    assert.matches("must return a table with render", e.msg, 1, true)
    t.write(dir .. "/boom.lua", "return { render = function() error('boom') end }")
    ok, e = pcall(render, { kind = "table", schema = "public", pk = {}, columns = cols("a") }, "x",
      dto.load_template(dir .. "/boom.lua"))
    assert.is_false(ok)
    assert.matches("DTO template failed: .*boom", e.msg)
  end)
end)
