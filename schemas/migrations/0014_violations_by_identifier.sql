-- An erasure removes the tracking-plan violations that name the erased customer's
-- identifiers (they keep the message as sent): found through this index, not by
-- reading every violation of the team.
CREATE INDEX tracking_violations_identifiers_idx
    ON tracking_violations USING gin ((message -> 'identifiers') jsonb_path_ops);

COMMENT ON INDEX tracking_violations_identifiers_idx IS
    'Finds the violations naming an identifier, for erasure (consumers/statements.py).';

-- When the gateway accepted a write: the time in its message id when that is the
-- gateway's UUIDv7, else (an id the client named: Segment's messageId) received_at.
-- schemas/messages.py's acceptance_order is the same order.
CREATE FUNCTION accepted_at(message_id uuid, received_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN substr(message_id::text, 15, 1) = '7'
                THEN to_timestamp(('x' || substr(replace(message_id::text, '-', ''), 1, 12))
                                  ::bit(48)::bigint / 1000.0)
                ELSE received_at END
$$;

COMMENT ON FUNCTION accepted_at IS
    'When the gateway accepted a write: its UUIDv7 message id''s time, else received_at.';
