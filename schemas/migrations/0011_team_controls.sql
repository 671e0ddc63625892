-- Runtime controls per team (issue #21): what the gateway does with a team's writes
-- besides its quota, switched with ingest-admin control and taken up by every gateway
-- process within QUOTA_REFRESH_S.

ALTER TABLE teams
    ADD COLUMN controls text[] NOT NULL DEFAULT '{}'
        CHECK (controls <@ ARRAY['skip_identity', 'overflow', 'drop', 'dead_letter']::text[]
               AND NOT controls @> ARRAY['drop', 'dead_letter']::text[]),
    ADD COLUMN controls_changed_at timestamptz;

COMMENT ON COLUMN teams.controls IS
    'Runtime controls of the team''s writes (ingest-admin control): skip_identity (each '
    'write applies to the customer its first identifier names, no merge), overflow (every '
    'write goes to the overflow lane), drop (answered as accepted, counted, not stored) or '
    'dead_letter (published to the dead-letter topic, not applied); empty: none.';
COMMENT ON COLUMN teams.controls_changed_at IS
    'When ingest-admin control last changed the team''s controls; NULL: never.';
