-- Every read of events is scoped by team, so the primary key leads with team_id and
-- the separate (team_id, id) index is redundant: one index fewer to maintain per
-- inserted event.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (team_id, id);
DROP INDEX events_team_idx;
