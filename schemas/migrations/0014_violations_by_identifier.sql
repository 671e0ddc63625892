-- An erasure removes the tracking-plan violations that name the erased customer's
-- identifiers (they keep the message as sent): found through this index, not by
-- reading every violation of the team.
CREATE INDEX tracking_violations_identifiers_idx
    ON tracking_violations USING gin ((message -> 'identifiers') jsonb_path_ops);

COMMENT ON INDEX tracking_violations_identifiers_idx IS
    'Finds the violations naming an identifier, for erasure (consumers/statements.py).';
