-- The store for analysts (issue #20, point 6): views for the common questions, one
-- index they need, and a comment on every table, view and column, so that `\d+`
-- explains the store (docs/store.md says the same at more length, with queries).
--
-- Every view exposes team_id; `WHERE team_id = ...` on a view reaches the indexes of
-- the tables below it (tests/schemas/test_views.py checks the plans).
--
-- How merges are recorded decides how the views follow them: a merge moves the merged
-- customer's events and identifiers (its own `customer_id` identifier among them) to the
-- survivor in the transaction that records it, and deletes the merged customer. So
-- events.customer_id is always the current customer, and a merged-away id's
-- `customer_id` identifier leads to the current customer in one look-up, however long
-- the chain of merges since (a -> b, then b -> c: a's identifier is on c). The survivor
-- recorded in customer_merges is the survivor of that merge, which may have been
-- merged away since; following customer_merges would need a recursive walk and would
-- not notice an erasure.

-- Events per team and UTC day of their event time, with their type: the daily counts
-- read this index alone (an index-only scan), and a day range of a team's events is an
-- index range. occurred_at is a key column so that the planner can compute the day from
-- the index (it cannot take an expression's value from an index) and a day's events come
-- out in time order. Live events arrive in time order, so inserts land at the right end
-- of the team's range, as with the primary key (UUIDv7). Its write cost: docs/benchmark.md.
-- IF NOT EXISTS: on a large store, build it first, without blocking the consumers, with
--   CREATE INDEX CONCURRENTLY events_team_day_idx ON events
--       (team_id, ((occurred_at AT TIME ZONE 'UTC')::date), occurred_at) INCLUDE (event_type_id);
-- (a migration runs in a transaction, where CONCURRENTLY is not allowed).
CREATE INDEX IF NOT EXISTS events_team_day_idx ON events
    (team_id, ((occurred_at AT TIME ZONE 'UTC')::date), occurred_at) INCLUDE (event_type_id);

CREATE VIEW customer_profiles AS
SELECT c.team_id,
       c.id AS customer_id,
       i.external_id,
       i.emails,
       i.phones,
       i.anonymous_ids,
       i.merged_customer_ids,
       c.attributes,
       c.first_seen_at,
       c.last_updated_at,
       c.created_at
  FROM customers c
 CROSS JOIN LATERAL (
       SELECT max(value) FILTER (WHERE kind = 'external_id') AS external_id,
              coalesce(array_agg(value ORDER BY created_at, value)
                       FILTER (WHERE kind = 'email'), '{}') AS emails,
              coalesce(array_agg(value ORDER BY created_at, value)
                       FILTER (WHERE kind = 'phone'), '{}') AS phones,
              coalesce(array_agg(value ORDER BY created_at, value)
                       FILTER (WHERE kind = 'anonymous_id'), '{}') AS anonymous_ids,
              coalesce(array_agg(value::bigint ORDER BY value::bigint)
                       FILTER (WHERE kind = 'customer_id' AND value <> c.id::text),
                       '{}') AS merged_customer_ids
         FROM customer_identifiers
        WHERE customer_id = c.id
       ) i;

CREATE VIEW customer_events AS
SELECT e.team_id,
       e.id AS event_id,
       e.customer_id,
       e.event_type_id,
       t.name AS event_type,
       e.kind,
       e.occurred_at,
       (e.occurred_at AT TIME ZONE 'UTC')::date AS occurred_on,
       e.received_at,
       e.stored_at,
       e.source,
       e.external_id,
       e.client_event_id,
       e.order_id,
       e.body,
       e.properties,
       e.context,
       e.version_message_id
  FROM events e
  JOIN event_types t ON t.id = e.event_type_id AND t.team_id = e.team_id;

-- A plain view, not a materialized one: it is always current, and with
-- events_team_day_idx a team's days are an index-only range scan, so the cost of a
-- query is the team's events in the days asked for, not the store's. A materialized
-- view would cost a recount of every team's events at each refresh, and be stale
-- between refreshes.
CREATE VIEW daily_event_counts AS
SELECT e.team_id,
       (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
       e.event_type_id,
       t.name AS event_type,
       count(*) AS events
  FROM events e
  JOIN event_types t ON t.id = e.event_type_id AND t.team_id = e.team_id
 GROUP BY e.team_id, (e.occurred_at AT TIME ZONE 'UTC')::date, e.event_type_id, t.name;

CREATE VIEW customer_merge_history AS
SELECT m.team_id,
       m.id AS merge_id,
       m.merged_at,
       m.merged_customer_id,
       m.survivor_customer_id,
       now_held.customer_id AS current_customer_id,
       m.message_id,
       t.name AS event_type
  FROM customer_merges m
  LEFT JOIN customer_identifiers now_held
         ON now_held.team_id = m.team_id AND now_held.kind = 'customer_id'
        AND now_held.value = m.merged_customer_id::text
  LEFT JOIN events e ON e.team_id = m.team_id AND e.id = m.message_id
  LEFT JOIN event_types t ON t.id = e.event_type_id;

-- Comments: what `\d+` shows. Every table, view and column has one
-- (tests/schemas/test_views.py fails on a new one without).

COMMENT ON TABLE schema_migrations IS
    'Migrations applied (schemas/migrations/NNNN_name.sql, by ingest-migrate), one row each.';
COMMENT ON COLUMN schema_migrations.version IS 'File name without .sql, e.g. 0009_analyst_views.';
COMMENT ON COLUMN schema_migrations.applied_at IS 'When it was applied.';

COMMENT ON TABLE teams IS
    'A tenant. Every customer, event and merge belongs to one team (team_id): filter by it first.';
COMMENT ON COLUMN teams.id IS 'The team id: team_id everywhere else.';
COMMENT ON COLUMN teams.name IS 'Unique name (004 API: the store''s app key).';
COMMENT ON COLUMN teams.created_at IS 'When the team was created.';
COMMENT ON COLUMN teams.allowed_origins IS
    'Browser origins its write key may send from (CORS); NULL allows any.';

COMMENT ON TABLE api_keys IS 'API keys (also Segment write keys) of a team; never the key itself.';
COMMENT ON COLUMN api_keys.id IS 'Key id.';
COMMENT ON COLUMN api_keys.team_id IS 'The team the key writes and reads as.';
COMMENT ON COLUMN api_keys.key_hash IS 'SHA-256 digest of the key.';
COMMENT ON COLUMN api_keys.key_prefix IS 'First 6 characters of the key, to tell keys apart.';
COMMENT ON COLUMN api_keys.created_at IS 'When the key was created.';
COMMENT ON COLUMN api_keys.revoked_at IS 'When the key was revoked; NULL while it is valid.';

COMMENT ON TABLE customers IS
    'A customer (person or anonymous device) of a team, as identity resolution leaves it: '
    'merged-away and erased customers are deleted. Identifiers: customer_identifiers. '
    'Analysts: the view customer_profiles.';
COMMENT ON COLUMN customers.id IS
    'Customer id (also the customer_id identifier; a merged-away id resolves through it).';
COMMENT ON COLUMN customers.team_id IS 'The team.';
COMMENT ON COLUMN customers.attributes IS
    'Current traits, flat JSON ({"name": "Ana", "plan": "gold"}): per attribute, the value '
    'of the write with the newest event time.';
COMMENT ON COLUMN customers.attribute_times IS
    'Version of each attribute: "<microseconds since year 1, 20 digits>/<message id>" of the '
    'write that set it; an older write never overwrites a newer value.';
COMMENT ON COLUMN customers.first_seen_at IS
    'Earliest event time of any write naming the customer (or a customer merged into it).';
COMMENT ON COLUMN customers.last_updated_at IS 'Event time of the newest attribute change.';
COMMENT ON COLUMN customers.created_at IS 'When the row was inserted (wall clock).';

COMMENT ON TABLE customer_identifiers IS
    'Every way a customer is known; an identifier belongs to at most one customer of a team. '
    'A merge moves them all to the survivor.';
COMMENT ON COLUMN customer_identifiers.team_id IS 'The team.';
COMMENT ON COLUMN customer_identifiers.kind IS
    'email, phone, external_id (at most one per customer), anonymous_id (many), or '
    'customer_id (the customer''s own id and the ids of customers merged into it).';
COMMENT ON COLUMN customer_identifiers.value IS
    'Normalised value (docs/identity.md): email lower-cased, phone E.164, ids as text.';
COMMENT ON COLUMN customer_identifiers.customer_id IS 'The customer holding it now.';
COMMENT ON COLUMN customer_identifiers.created_at IS
    'When the identifier was first stored (kept when a merge moves it).';

COMMENT ON TABLE customer_merges IS
    'One row per merge: a write named identifiers held by two customers, and the younger '
    'was merged into the older. Analysts: the view customer_merge_history.';
COMMENT ON COLUMN customer_merges.id IS 'Merge id.';
COMMENT ON COLUMN customer_merges.team_id IS 'The team.';
COMMENT ON COLUMN customer_merges.merged_customer_id IS
    'The customer merged away (deleted; its id now resolves to the survivor).';
COMMENT ON COLUMN customer_merges.survivor_customer_id IS
    'The survivor of this merge, which a later merge may have merged away in turn.';
COMMENT ON COLUMN customer_merges.message_id IS
    'The gateway''s message id (UUIDv7) of the write that named both customers.';
COMMENT ON COLUMN customer_merges.merged_at IS 'Start of the transaction that applied the merge.';

COMMENT ON TABLE event_types IS 'Event names of a team, created on first use.';
COMMENT ON COLUMN event_types.id IS 'Event type id (events.event_type_id).';
COMMENT ON COLUMN event_types.team_id IS 'The team.';
COMMENT ON COLUMN event_types.name IS 'The event name as sent (unique per team).';
COMMENT ON COLUMN event_types.created_at IS 'When the name was first used.';

COMMENT ON TABLE event_groups IS 'Named groups of a team''s event types (002 API).';
COMMENT ON COLUMN event_groups.id IS 'Group id.';
COMMENT ON COLUMN event_groups.team_id IS 'The team.';
COMMENT ON COLUMN event_groups.name IS 'Display name, e.g. Shopping Cart.';
COMMENT ON COLUMN event_groups.text_id IS 'Text id, unique per team, e.g. shopping_cart.';
COMMENT ON COLUMN event_groups.state IS 'State as the 002 API sets it (0 to 32767; default 1).';
COMMENT ON COLUMN event_groups.created_at IS 'When the group was created.';

COMMENT ON TABLE event_group_members IS
    'Which event types are in which group (team: the group''s).';
COMMENT ON COLUMN event_group_members.event_group_id IS 'The group (event_groups.id).';
COMMENT ON COLUMN event_group_members.event_type_id IS 'The event type (event_types.id).';

COMMENT ON TABLE events IS
    'Events kept by the consumers, on their current customer (a merge moves them). '
    'customer_id and event_type_id are kept true by the consumers, not by foreign keys. '
    'Analysts: the views customer_events and daily_event_counts.';
COMMENT ON COLUMN events.id IS
    'The gateway''s message id (UUIDv7, time-ordered) of the write that created the event.';
COMMENT ON COLUMN events.team_id IS 'The team.';
COMMENT ON COLUMN events.customer_id IS 'The current customer (customers.id).';
COMMENT ON COLUMN events.event_type_id IS 'The event type (event_types.id).';
COMMENT ON COLUMN events.kind IS
    'custom, or a kind with rules of its own: update, login, confirmation, email_open, '
    'generic (001 API).';
COMMENT ON COLUMN events.external_id IS 'The client''s external id of the event (000, 003 APIs).';
COMMENT ON COLUMN events.client_event_id IS
    'The client''s event id (004 id, batch eventId): unique per team; a later-accepted write '
    'with the same id replaces the event.';
COMMENT ON COLUMN events.order_id IS
    'Order id of a confirmation: unique per team, later duplicates are discarded.';
COMMENT ON COLUMN events.source IS 'The 004 API''s source of the event.';
COMMENT ON COLUMN events.body IS 'The event''s data as sent (Segment: properties).';
COMMENT ON COLUMN events.properties IS
    'The 003 API''s property records ([{"property_id", "property_value"}]); NULL from others.';
COMMENT ON COLUMN events.occurred_at IS 'Event time (as the client gave it, else when received).';
COMMENT ON COLUMN events.received_at IS 'When the gateway received the write.';
COMMENT ON COLUMN events.stored_at IS
    'When the row was written (stored_at - received_at: ingest-to-queryable latency).';
COMMENT ON COLUMN events.version_message_id IS
    'Message id of the version stored now (differs from id once a later write replaced it).';
COMMENT ON COLUMN events.context IS
    'Segment''s context (ip, userAgent, library, page, ...); NULL from the other APIs.';

COMMENT ON TABLE processed_messages IS
    'The consumers'' ledger: every message id applied, discarded or dead-lettered, so a '
    'redelivery changes nothing. Pruned after the topic''s retention (ingest-admin prune-ledger).';
COMMENT ON COLUMN processed_messages.message_id IS 'The gateway''s message id (UUIDv7).';
COMMENT ON COLUMN processed_messages.outcome IS
    'applied, discarded:<rule> (see discarded_events.rule) or dead_letter.';
COMMENT ON COLUMN processed_messages.processed_at IS 'When the consumers were done with it.';

COMMENT ON TABLE discarded_events IS 'Events the rules discarded, counted per team, rule and day.';
COMMENT ON COLUMN discarded_events.team_id IS 'The team.';
COMMENT ON COLUMN discarded_events.rule IS
    'bot, duplicate_confirmation, email_open_window or unknown_customer (docs/identity.md).';
COMMENT ON COLUMN discarded_events.day IS 'Day of the event time (UTC).';
COMMENT ON COLUMN discarded_events.count IS 'Events discarded.';

COMMENT ON TABLE customer_groups IS 'Groups (accounts; Segment''s group call) of a team.';
COMMENT ON COLUMN customer_groups.team_id IS 'The team.';
COMMENT ON COLUMN customer_groups.group_id IS 'The client''s id of the group (Segment groupId).';
COMMENT ON COLUMN customer_groups.traits IS 'Current traits: per trait, the newest event time wins.';
COMMENT ON COLUMN customer_groups.trait_times IS
    'Version of each trait, as customers.attribute_times.';
COMMENT ON COLUMN customer_groups.first_seen_at IS 'Earliest event time of a call naming it.';
COMMENT ON COLUMN customer_groups.last_updated_at IS 'Newest event time of a call naming it.';

COMMENT ON TABLE customer_group_members IS
    'Which customers belong to which group; a merge moves the memberships to the survivor.';
COMMENT ON COLUMN customer_group_members.team_id IS 'The team.';
COMMENT ON COLUMN customer_group_members.group_id IS 'The group (customer_groups.group_id).';
COMMENT ON COLUMN customer_group_members.customer_id IS 'The member (customers.id).';
COMMENT ON COLUMN customer_group_members.joined_at IS
    'Event time of the first call that put the customer in the group.';

COMMENT ON COLUMN blocked_identifiers.team_id IS 'The team.';
COMMENT ON COLUMN blocked_identifiers.kind IS 'Identifier kind, as customer_identifiers.kind.';
COMMENT ON COLUMN blocked_identifiers.value IS 'The value, normalised as for that kind.';
COMMENT ON COLUMN blocked_identifiers.created_at IS 'When it was blocked.';

COMMENT ON INDEX events_team_day_idx IS
    'For daily_event_counts and day ranges of customer_events; write cost in docs/benchmark.md.';

COMMENT ON VIEW customer_profiles IS
    'A customer with all its identifiers and current traits, one row per customer. '
    'Find one by an identifier: customer_id = (SELECT customer_id FROM customer_identifiers '
    'WHERE team_id = ... AND kind = ... AND value = ...).';
COMMENT ON COLUMN customer_profiles.team_id IS 'The team: filter by it.';
COMMENT ON COLUMN customer_profiles.customer_id IS 'The customer id.';
COMMENT ON COLUMN customer_profiles.external_id IS 'Its external id (Segment userId), or NULL.';
COMMENT ON COLUMN customer_profiles.emails IS 'Its emails, in the order they were first stored.';
COMMENT ON COLUMN customer_profiles.phones IS 'Its phones (E.164), in the order first stored.';
COMMENT ON COLUMN customer_profiles.anonymous_ids IS
    'Its anonymous ids (Segment anonymousId), in the order first stored.';
COMMENT ON COLUMN customer_profiles.merged_customer_ids IS
    'Ids of the customers merged into it, directly or through a chain of merges.';
COMMENT ON COLUMN customer_profiles.attributes IS 'Current traits (customers.attributes).';
COMMENT ON COLUMN customer_profiles.first_seen_at IS 'Earliest event time of a write naming it.';
COMMENT ON COLUMN customer_profiles.last_updated_at IS 'Event time of the newest trait change.';
COMMENT ON COLUMN customer_profiles.created_at IS 'When the customer row was inserted.';

COMMENT ON VIEW customer_events IS
    'Events with their type name, on their current customer (merges included). '
    'Filter by team_id, and by occurred_on for a time range (indexed).';
COMMENT ON COLUMN customer_events.team_id IS 'The team: filter by it.';
COMMENT ON COLUMN customer_events.event_id IS 'Event id (events.id, a UUIDv7).';
COMMENT ON COLUMN customer_events.customer_id IS
    'The current customer: the survivor of every merge since the event was stored.';
COMMENT ON COLUMN customer_events.event_type_id IS 'Event type id.';
COMMENT ON COLUMN customer_events.event_type IS 'Event type name.';
COMMENT ON COLUMN customer_events.kind IS 'events.kind.';
COMMENT ON COLUMN customer_events.occurred_at IS 'Event time.';
COMMENT ON COLUMN customer_events.occurred_on IS
    'UTC day of the event time; a range on it (with team_id) is an index range.';
COMMENT ON COLUMN customer_events.received_at IS 'When the gateway received the write.';
COMMENT ON COLUMN customer_events.stored_at IS 'When the row was written.';
COMMENT ON COLUMN customer_events.source IS 'events.source (004 API).';
COMMENT ON COLUMN customer_events.external_id IS 'events.external_id (000, 003 APIs).';
COMMENT ON COLUMN customer_events.client_event_id IS 'events.client_event_id (004 id, eventId).';
COMMENT ON COLUMN customer_events.order_id IS 'events.order_id (confirmations).';
COMMENT ON COLUMN customer_events.body IS 'The event''s data as sent.';
COMMENT ON COLUMN customer_events.properties IS 'events.properties (003 API).';
COMMENT ON COLUMN customer_events.context IS 'Segment''s context, or NULL.';
COMMENT ON COLUMN customer_events.version_message_id IS 'Message id of the version stored now.';

COMMENT ON VIEW daily_event_counts IS
    'Events kept per team, UTC day of event time and event type; always current (a plain '
    'view, read from events_team_day_idx). Discarded events: discarded_events.';
COMMENT ON COLUMN daily_event_counts.team_id IS 'The team: filter by it.';
COMMENT ON COLUMN daily_event_counts.day IS 'UTC day of the event time; filter a range on it.';
COMMENT ON COLUMN daily_event_counts.event_type_id IS 'Event type id.';
COMMENT ON COLUMN daily_event_counts.event_type IS 'Event type name.';
COMMENT ON COLUMN daily_event_counts.events IS 'Events of that type on that day.';

COMMENT ON VIEW customer_merge_history IS
    'Merges with what the store records of their reason: the write (message_id) that named '
    'identifiers of both customers, and its event type when it stored an event. Which '
    'identifiers linked them, and through which API, are not recorded.';
COMMENT ON COLUMN customer_merge_history.team_id IS 'The team: filter by it.';
COMMENT ON COLUMN customer_merge_history.merge_id IS 'customer_merges.id.';
COMMENT ON COLUMN customer_merge_history.merged_at IS 'When the merge was applied.';
COMMENT ON COLUMN customer_merge_history.merged_customer_id IS 'The customer merged away.';
COMMENT ON COLUMN customer_merge_history.survivor_customer_id IS
    'The survivor of this merge (it may have been merged away since).';
COMMENT ON COLUMN customer_merge_history.current_customer_id IS
    'The customer the merged one is part of now, after any later merges; NULL once erased.';
COMMENT ON COLUMN customer_merge_history.message_id IS
    'Message id of the write that named identifiers of both customers: the reason.';
COMMENT ON COLUMN customer_merge_history.event_type IS
    'Type of the event that write stored; NULL when it stored none (a customer write, a '
    'Segment identify or alias) or the event is gone (erased, discarded, replaced).';
