-- Per-team quotas (issue #21): a rate in events per second and a burst, enforced by
-- every gateway process against one token bucket per team kept here.

ALTER TABLE teams
    ADD COLUMN events_per_second double precision CHECK (events_per_second >= 0),
    ADD COLUMN burst integer CHECK (burst >= 0);

COMMENT ON COLUMN teams.events_per_second IS
    'Quota: events per second the gateway accepts for the team (a batch counts its events); '
    'NULL: the TEAM_EVENTS_PER_SECOND setting; 0: no quota. Set with ingest-admin set-quota.';
COMMENT ON COLUMN teams.burst IS
    'Quota: events the team may send at once beyond the rate (the bucket''s size); '
    'NULL: the TEAM_BURST setting, or one second of the rate when that is 0 too.';

-- The token bucket of each team with a quota, shared by all gateway processes: each
-- leases tokens from it a few at a time (ingest_gateway/write/quotas.py).
CREATE TABLE team_quota_buckets (
    team_id     bigint PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);

COMMENT ON TABLE team_quota_buckets IS
    'The token bucket of each team with a quota, shared by every gateway process, which '
    'lease tokens from it a few at a time.';
COMMENT ON COLUMN team_quota_buckets.team_id IS 'The team.';
COMMENT ON COLUMN team_quota_buckets.tokens IS
    'Events the team may still send, as of updated_at (refilled at its rate up to its burst).';
COMMENT ON COLUMN team_quota_buckets.updated_at IS 'When tokens was last computed.';

-- One lease, in one round trip: refill the team's bucket at its rate up to its burst
-- (plus what a process gives back), then grant `want` tokens when at least `need` are
-- there, else none. The row lock orders the gateway processes' leases of a team.
CREATE FUNCTION lease_quota_tokens(
    team bigint, rate double precision, burst double precision,
    need double precision, want double precision, given_back double precision,
    OUT granted double precision, OUT remaining double precision
) LANGUAGE plpgsql AS $$
DECLARE
    available double precision;
BEGIN
    INSERT INTO team_quota_buckets (team_id, tokens, updated_at)
    VALUES (team, burst, clock_timestamp())
    ON CONFLICT (team_id) DO NOTHING;
    SELECT least(burst, b.tokens + given_back
                 + rate * extract(epoch FROM clock_timestamp() - b.updated_at))
      INTO available
      FROM team_quota_buckets b WHERE b.team_id = team FOR UPDATE;
    granted := CASE WHEN available >= need THEN least(available, want) ELSE 0 END;
    remaining := available - granted;
    UPDATE team_quota_buckets
       SET tokens = remaining, updated_at = clock_timestamp()
     WHERE team_id = team;
END
$$;

COMMENT ON FUNCTION lease_quota_tokens IS
    'A gateway process''s lease of quota tokens from a team''s bucket (ingest_gateway/write/quotas.py).';
