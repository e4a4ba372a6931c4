CREATE VIEW page_titles AS SELECT id_page, title FROM page;
