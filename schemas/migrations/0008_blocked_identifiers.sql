-- Per-team blocked identifier values (issue 17, "identifiers that cannot merge
-- strangers"): values a team's clients send as an identifier that name nobody in
-- particular (a QA account's id hard-coded in an app, a placeholder of their own)
-- beyond the built-in junk list of schemas/identity.py. A write naming one is
-- refused by the gateway (or, on the Segment surface, the value is ignored and the
-- call kept), so such a value never links two customers.
--
-- Managed with `ingest-admin block-identifier | unblock-identifier |
-- list-blocked-identifiers`; values are stored as schemas/identity.py normalises
-- that kind (an email lower-cased, a phone in E.164, ids trimmed and NFKC), so the
-- gateway compares them byte for byte with a message's identifiers. Gateways read a
-- team's list again at most every KEY_CACHE_SECONDS (10 s).

CREATE TABLE blocked_identifiers (
    team_id     bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    kind        text NOT NULL
        CHECK (kind IN ('email', 'external_id', 'phone', 'customer_id', 'anonymous_id')),
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, kind, value)
);

COMMENT ON TABLE blocked_identifiers IS
    'Identifier values a team never wants used to name a customer (ingest-admin block-identifier); stored normalised.';
