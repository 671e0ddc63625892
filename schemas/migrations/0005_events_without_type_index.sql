-- The (team_id, event_type_id, id) index cost about a fifth of PostgreSQL's CPU per
-- stored event (each event type's newest ids go to the right end of their own key
-- range, so inserts split pages in the middle of the index), measured with the
-- bench's raw PostgreSQL ceiling: 34.8 -> 27.7 us of PostgreSQL CPU per event.
-- The only reader was the 003 list call filtered by type, which now reads the
-- team's events by the primary key. A store that lists by type often can add it
-- back (README "The store, for analysts").
DROP INDEX IF EXISTS events_team_type_idx;
