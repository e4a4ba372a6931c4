-- a comment with a ; inside must not split anything
CREATE TABLE page (
  id_page INTEGER PRIMARY KEY,
  url TEXT NOT NULL,
  title TEXT,
  "select" TEXT -- a keyword column: `rickdb dto page page.py` must still produce valid Python
);
CREATE TRIGGER page_title_default AFTER INSERT ON page WHEN NEW.title IS NULL
BEGIN
  UPDATE page SET title = NEW.url WHERE id_page = NEW.id_page;
END;
