-- SQLite: rows written before 0008 take their rowid as position (run after 0008_positions.sql).
UPDATE order_lines SET position = rowid;
UPDATE outbox SET position = rowid;
