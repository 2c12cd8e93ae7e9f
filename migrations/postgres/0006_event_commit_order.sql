-- Which transaction wrote each event, so the event feed can read events in commit
-- order (see src/store/postgres/event_feed.rs): ids are drawn before commit.
ALTER TABLE case_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX case_events_tx ON case_events (tx, id);
