-- Tracking plans and their violations (issue #22; docs/tracking-plans.md).
--
-- A team's plans are versioned (tracking_plans), one version is active at a time
-- (tracking_plan_activations: the latest row per team; a NULL version: no plan), and
-- every gateway process reads the active versions every TRACKING_PLAN_REFRESH_S.
-- What broke a plan is kept in tracking_violations, written by the consumers in the
-- transaction of the batch that carried it, with the message as sent: an analyst fixes
-- a blocked message there with UPDATE, and `ingest-admin replay-violations` sends it
-- again through the write path.

CREATE TABLE tracking_plans (
    team_id     bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    plan        jsonb NOT NULL,
    source      text NOT NULL DEFAULT 'file',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, version)
);

COMMENT ON TABLE tracking_plans IS
    'Every version of each team''s tracking plan (ingest-admin plan-upload); never changed '
    'once written: a change is a new version.';
COMMENT ON COLUMN tracking_plans.team_id IS 'The team.';
COMMENT ON COLUMN tracking_plans.version IS 'The version: 1, 2, ... per team.';
COMMENT ON COLUMN tracking_plans.plan IS
    'The plan document: mode, unplanned, events (name -> schema, mode), identify, group.';
COMMENT ON COLUMN tracking_plans.source IS
    'Where it came from: file (our own format) or segment (a Segment Protocols export).';
COMMENT ON COLUMN tracking_plans.created_at IS 'When it was uploaded.';

CREATE TABLE tracking_plan_activations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id     bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    version     integer,
    activated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (team_id, version) REFERENCES tracking_plans (team_id, version)
);
CREATE INDEX tracking_plan_activations_team_idx ON tracking_plan_activations (team_id, id DESC);

COMMENT ON TABLE tracking_plan_activations IS
    'Each activation of a plan version (ingest-admin plan-activate, plan-rollback): the '
    'latest row of a team is its active plan. The history is what a rollback goes back on.';
COMMENT ON COLUMN tracking_plan_activations.id IS 'Order of the activations.';
COMMENT ON COLUMN tracking_plan_activations.team_id IS 'The team.';
COMMENT ON COLUMN tracking_plan_activations.version IS
    'The version made active; NULL: no plan (every write stored as sent).';
COMMENT ON COLUMN tracking_plan_activations.activated_at IS 'When.';

CREATE VIEW tracking_plan_active AS
    SELECT DISTINCT ON (team_id) team_id, version, activated_at
    FROM tracking_plan_activations
    ORDER BY team_id, id DESC;

COMMENT ON VIEW tracking_plan_active IS
    'The active plan version of each team that ever activated one (NULL: none now).';

CREATE TABLE tracking_violations (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id             bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    message_id          uuid NOT NULL,
    original_message_id uuid NOT NULL,
    attempt             integer NOT NULL DEFAULT 1,
    plan_version        integer,
    action              text NOT NULL CHECK (action IN ('allow', 'omit', 'block')),
    op                  text NOT NULL,
    event_name          text,
    surface             text NOT NULL,
    failures            jsonb NOT NULL,
    message             jsonb NOT NULL,
    library             text,
    library_version     text,
    occurred_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    replayed_at         timestamptz,
    replay_message_id   uuid,
    UNIQUE (team_id, message_id)
);
CREATE INDEX tracking_violations_team_time_idx ON tracking_violations (team_id, received_at, id);
CREATE INDEX tracking_violations_pending_idx ON tracking_violations (team_id, received_at, id)
    WHERE action = 'block' AND replayed_at IS NULL;

COMMENT ON TABLE tracking_violations IS
    'Writes that broke their team''s tracking plan, one row per attempt, with the message '
    'as sent. action block: not stored in events; fix message (UPDATE) or the plan, then '
    'ingest-admin replay-violations sends it again (a new row if it breaks the plan again).';
COMMENT ON COLUMN tracking_violations.id IS 'Order of recording (the replay''s order within a time).';
COMMENT ON COLUMN tracking_violations.team_id IS 'The team.';
COMMENT ON COLUMN tracking_violations.message_id IS 'The id of this attempt''s message.';
COMMENT ON COLUMN tracking_violations.original_message_id IS
    'The id of the first attempt (message_id when this is the first).';
COMMENT ON COLUMN tracking_violations.attempt IS '1 for the message as sent, 2... for replays.';
COMMENT ON COLUMN tracking_violations.plan_version IS 'The plan version it was checked against.';
COMMENT ON COLUMN tracking_violations.action IS
    'allow: stored as sent; omit: stored without the offending properties or traits; '
    'block: not stored.';
COMMENT ON COLUMN tracking_violations.op IS 'upsert_customer (identify), track_event, ...';
COMMENT ON COLUMN tracking_violations.event_name IS
    'The event''s name; identify or group for those calls.';
COMMENT ON COLUMN tracking_violations.surface IS 'The API it came through (000, 004, segment, ...).';
COMMENT ON COLUMN tracking_violations.failures IS
    'The failed rules: [{"pointer": "/properties/total", "rule": "type", "message": ...}].';
COMMENT ON COLUMN tracking_violations.message IS
    'The canonical message as sent (before any omission); what a replay sends: fix it here.';
COMMENT ON COLUMN tracking_violations.library IS 'The client library (Segment context.library.name).';
COMMENT ON COLUMN tracking_violations.library_version IS 'Its version.';
COMMENT ON COLUMN tracking_violations.occurred_at IS 'The event time.';
COMMENT ON COLUMN tracking_violations.received_at IS 'When the gateway received it.';
COMMENT ON COLUMN tracking_violations.recorded_at IS 'When the consumers recorded it.';
COMMENT ON COLUMN tracking_violations.replayed_at IS
    'When ingest-admin replay-violations sent it again; NULL: not replayed.';
COMMENT ON COLUMN tracking_violations.replay_message_id IS 'The replay''s message id.';

-- One row per failed rule: the unit of the analysts' views.
CREATE VIEW tracking_violation_failures AS
    SELECT v.team_id, v.id AS violation_id, v.message_id, v.plan_version, v.action,
           v.event_name, v.surface, f.pointer, f.rule, f.message AS reason,
           v.library, v.library_version, v.received_at
    FROM tracking_violations v,
         jsonb_to_recordset(v.failures) AS f (pointer text, rule text, message text);

COMMENT ON VIEW tracking_violation_failures IS
    'Each failed rule of each violation (pointer: where in the event, rule: the keyword).';

CREATE VIEW tracking_violations_daily AS
    SELECT team_id, (received_at AT TIME ZONE 'UTC')::date AS day, event_name, pointer, rule,
           count(*) AS failures, count(DISTINCT message_id) AS messages,
           min(received_at) AS first_seen, max(received_at) AS last_seen
    FROM tracking_violation_failures
    GROUP BY team_id, day, event_name, pointer, rule;

COMMENT ON VIEW tracking_violations_daily IS
    'Failures per team, UTC day, event and property (pointer) and rule, first and last seen.';

CREATE VIEW tracking_violation_libraries AS
    SELECT team_id, event_name, library, library_version, count(*) AS violations,
           min(received_at) AS first_seen, max(received_at) AS last_seen
    FROM tracking_violations
    GROUP BY team_id, event_name, library, library_version;

COMMENT ON VIEW tracking_violation_libraries IS
    'Violations per event and the client library and version that sent them.';

COMMENT ON COLUMN tracking_plan_active.team_id IS 'The team.';
COMMENT ON COLUMN tracking_plan_active.version IS 'Its active plan version; NULL: none.';
COMMENT ON COLUMN tracking_plan_active.activated_at IS 'Since when.';

COMMENT ON COLUMN tracking_violation_failures.team_id IS 'The team.';
COMMENT ON COLUMN tracking_violation_failures.violation_id IS 'tracking_violations.id.';
COMMENT ON COLUMN tracking_violation_failures.message_id IS 'The message of the attempt.';
COMMENT ON COLUMN tracking_violation_failures.plan_version IS 'The plan version checked against.';
COMMENT ON COLUMN tracking_violation_failures.action IS 'allow, omit or block.';
COMMENT ON COLUMN tracking_violation_failures.event_name IS 'The event (identify, group).';
COMMENT ON COLUMN tracking_violation_failures.surface IS 'The API it came through.';
COMMENT ON COLUMN tracking_violation_failures.pointer IS 'Where: /properties/total, /traits/plan, /event.';
COMMENT ON COLUMN tracking_violation_failures.rule IS 'The JSON Schema keyword that failed, or unplanned.';
COMMENT ON COLUMN tracking_violation_failures.reason IS 'The validator''s message.';
COMMENT ON COLUMN tracking_violation_failures.library IS 'The client library.';
COMMENT ON COLUMN tracking_violation_failures.library_version IS 'Its version.';
COMMENT ON COLUMN tracking_violation_failures.received_at IS 'When the gateway received it.';

COMMENT ON COLUMN tracking_violations_daily.team_id IS 'The team.';
COMMENT ON COLUMN tracking_violations_daily.day IS 'The UTC day it was received.';
COMMENT ON COLUMN tracking_violations_daily.event_name IS 'The event (identify, group).';
COMMENT ON COLUMN tracking_violations_daily.pointer IS 'The property or trait (a JSON pointer).';
COMMENT ON COLUMN tracking_violations_daily.rule IS 'The rule that failed.';
COMMENT ON COLUMN tracking_violations_daily.failures IS 'How many times it failed that day.';
COMMENT ON COLUMN tracking_violations_daily.messages IS 'In how many messages.';
COMMENT ON COLUMN tracking_violations_daily.first_seen IS 'The first that day.';
COMMENT ON COLUMN tracking_violations_daily.last_seen IS 'The last that day.';

COMMENT ON COLUMN tracking_violation_libraries.team_id IS 'The team.';
COMMENT ON COLUMN tracking_violation_libraries.event_name IS 'The event (identify, group).';
COMMENT ON COLUMN tracking_violation_libraries.library IS 'The client library (NULL: not said).';
COMMENT ON COLUMN tracking_violation_libraries.library_version IS 'Its version.';
COMMENT ON COLUMN tracking_violation_libraries.violations IS 'Violations it sent.';
COMMENT ON COLUMN tracking_violation_libraries.first_seen IS 'The first.';
COMMENT ON COLUMN tracking_violation_libraries.last_seen IS 'The last.';
