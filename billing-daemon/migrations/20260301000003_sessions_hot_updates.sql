-- Interim-Updates rewrite a session row several times an hour. They change no indexed column
-- but last_update_at, whose index made every one of them a non-HOT update: a new entry in
-- each of the table's eight indexes per packet, most of Postgres' work in the ingest. Without
-- it, and with room left in each page, an Interim is a heap-only (HOT) update.
--
-- The stale-session sweep (once a minute) reads the open sessions through one of the other
-- partial indexes on stopped_at IS NULL instead.
DROP INDEX sessions_open_last_update_idx;
ALTER TABLE sessions SET (fillfactor = 70);
-- The same for a subscriber's row of the day, which every counted increase rewrites.
ALTER TABLE usage_daily SET (fillfactor = 70);
