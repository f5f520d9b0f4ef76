-- postdesk store, version 4: message_raw says how its bytes are encoded.
-- New rows hold one LZ4 frame ('lz4'), compressed on the analysis
-- threads so that the single writer copies a third of the bytes; rows
-- written before keep the bytes as received ('identity'). Adding a column
-- with a default rewrites no row. The CHECK is written with OR, not IN:
-- SQLite builds a temporary table for `IN (...)` on every insert.
ALTER TABLE message_raw ADD COLUMN encoding TEXT NOT NULL DEFAULT 'identity'
    CHECK (encoding = 'identity' OR encoding = 'lz4');
