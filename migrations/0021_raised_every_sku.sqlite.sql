CREATE TABLE atp_raised_any (
    sku TEXT PRIMARY KEY,
    raised_at TEXT NOT NULL
);
INSERT INTO atp_raised_any (sku, raised_at) SELECT sku, raised_at FROM atp_raised;
DROP TABLE atp_raised;
ALTER TABLE atp_raised_any RENAME TO atp_raised;
