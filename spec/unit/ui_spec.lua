-- dbtool.ui: terminal widths (carets under error positions line up with what is shown).
local ui = require "dbtool.ui"

describe("ui", function()
  describe("char_width", function()
    it("gives 1 for ASCII, Latin and most scripts", function()
      for _, cp in ipairs { 0x41, 0x20, 0xE9, 0x0416, 0x05D0, 0x2192, 0x10FFFF - 2 } do
        assert.equal(1, ui.char_width(cp), string.format("U+%04X", cp))
      end
    end)

    it("gives 2 for CJK, Hangul, fullwidth forms and emoji", function()
      for _, cp in ipairs { 0x6F22, 0x3042, 0x30AB, 0xAC00, 0xD7A3, 0xFF21, 0x1F600, 0x1F680, 0x20000 } do
        assert.equal(2, ui.char_width(cp), string.format("U+%04X", cp))
      end
    end)

    it("gives 0 for combining marks and zero-width characters", function()
      for _, cp in ipairs { 0x0301, 0x200B, 0x200D, 0xFE0F, 0xFEFF, 0x20E3 } do
        assert.equal(0, ui.char_width(cp), string.format("U+%04X", cp))
      end
    end)

    it("is exact at range edges", function()
      assert.equal(1, ui.char_width(0x10FF))
      assert.equal(2, ui.char_width(0x1100))
      assert.equal(2, ui.char_width(0x115F))
      assert.equal(0, ui.char_width(0x1160))
      assert.equal(2, ui.char_width(0x9FFF))
      assert.equal(1, ui.char_width(0xA4D0))
      assert.equal(2, ui.char_width(0xFF60))
      assert.equal(1, ui.char_width(0xFF61))
    end)
  end)

  it("width sums a string's columns, bytes for invalid UTF-8", function()
    assert.equal(0, ui.width(""))
    assert.equal(3, ui.width("abc"))
    assert.equal(7, ui.width("é漢字😀"))
    assert.equal(1, ui.width("e\u{301}"))
    assert.equal(4, ui.width("caf\xe9"))
  end)
end)
