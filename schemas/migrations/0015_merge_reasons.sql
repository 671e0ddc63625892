-- Why two customers were merged: the kinds of the merging write's identifiers each
-- of them held (email, external_id, phone, customer_id, anonymous_id). The kinds,
-- not the values: a merge row outlives an erasure of the customers it names.
ALTER TABLE customer_merges
    ADD COLUMN merged_named_by text[] NOT NULL DEFAULT '{}',
    ADD COLUMN survivor_named_by text[] NOT NULL DEFAULT '{}';

COMMENT ON COLUMN customer_merges.merged_named_by IS
    'Kinds of the merging write''s identifiers the merged customer held, e.g. {anonymous_id} '
    '(empty for merges recorded before migration 0015).';
COMMENT ON COLUMN customer_merges.survivor_named_by IS
    'Kinds of the merging write''s identifiers the survivor held, e.g. {email}.';

-- The analysts' view shows them too (new columns go last: CREATE OR REPLACE VIEW).
CREATE OR REPLACE VIEW customer_merge_history AS
SELECT m.team_id,
       m.id AS merge_id,
       m.merged_at,
       m.merged_customer_id,
       m.survivor_customer_id,
       now_held.customer_id AS current_customer_id,
       m.message_id,
       t.name AS event_type,
       m.merged_named_by,
       m.survivor_named_by
  FROM customer_merges m
  LEFT JOIN customer_identifiers now_held
         ON now_held.team_id = m.team_id AND now_held.kind = 'customer_id'
        AND now_held.value = m.merged_customer_id::text
  LEFT JOIN events e ON e.team_id = m.team_id AND e.id = m.message_id
  LEFT JOIN event_types t ON t.id = e.event_type_id;

COMMENT ON COLUMN customer_merge_history.merged_named_by IS
    'Why: the kinds of the merging write''s identifiers the merged customer held.';
COMMENT ON COLUMN customer_merge_history.survivor_named_by IS
    'Why: the kinds of the merging write''s identifiers the survivor held.';
