-- Lanes (issue 21): a customer's writes may be applied in another order than the
-- gateway accepted them (the main and the overflow topic have their own consumers).
-- A delete leaves a tombstone on every identifier the erased customer held (and every
-- one the delete named): a write accepted before the delete (a smaller gateway message
-- id, UUIDv7) but applied after it is discarded instead of re-creating the customer.
-- Pruned with the ledger (consumers.ledger): no message older than the topic's
-- retention can still arrive.

CREATE TABLE delete_tombstones (
    team_id     bigint NOT NULL,
    kind        text NOT NULL,
    value       text NOT NULL,
    -- The largest message id of the deletes that erased a customer holding it.
    message_id  uuid NOT NULL,
    PRIMARY KEY (team_id, kind, value)
);
-- Pruning finds the old ones by message id (UUIDv7 orders by time).
CREATE INDEX delete_tombstones_message_idx ON delete_tombstones (message_id);

COMMENT ON TABLE delete_tombstones IS
    'Identifiers of erased customers, with the delete''s message id: a write accepted '
    'before the delete and applied after it is discarded (rule erased). Pruned with the '
    'ledger (docs/identity.md, "Lanes and order").';
COMMENT ON COLUMN delete_tombstones.team_id IS 'The team.';
COMMENT ON COLUMN delete_tombstones.kind IS
    'email, external_id, phone, customer_id or anonymous_id.';
COMMENT ON COLUMN delete_tombstones.value IS 'The identifier, normalised.';
COMMENT ON COLUMN delete_tombstones.message_id IS
    'The latest (largest) gateway message id of a delete that erased it.';

COMMENT ON COLUMN discarded_events.rule IS
    'bot, duplicate_confirmation, email_open_window, unknown_customer or erased '
    '(docs/identity.md).';
