-- The Segment-spec surface (/v1/identify, /v1/track, ..., /v1/batch):
--
-- * anonymous ids (Segment's anonymousId) name customers too; a customer may hold
--   many, and one holding nothing else is an anonymous customer;
-- * events keep where and how they were sent (Segment's context: ip, userAgent,
--   library, page, ...) beside their body;
-- * groups (accounts, Segment's group call) with their traits, and which customers
--   belong to them;
-- * a team may restrict the browser origins allowed to send with its write key
--   (CORS); NULL allows any origin, as a write key in a web page is public anyway.

ALTER TABLE customer_identifiers DROP CONSTRAINT customer_identifiers_kind_check;
ALTER TABLE customer_identifiers ADD CONSTRAINT customer_identifiers_kind_check
    CHECK (kind IN ('email', 'external_id', 'phone', 'customer_id', 'anonymous_id'));

ALTER TABLE events ADD COLUMN context jsonb;

ALTER TABLE teams ADD COLUMN allowed_origins text[];

CREATE TABLE customer_groups (
    team_id          bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    -- The client's id of the group (Segment's groupId).
    group_id         text NOT NULL,
    traits           jsonb NOT NULL DEFAULT '{}',
    -- Version of each trait (event time, then message id): the newest write wins.
    trait_times      jsonb NOT NULL DEFAULT '{}',
    first_seen_at    timestamptz NOT NULL,
    last_updated_at  timestamptz NOT NULL,
    PRIMARY KEY (team_id, group_id)
);

CREATE TABLE customer_group_members (
    team_id      bigint NOT NULL,
    group_id     text NOT NULL,
    customer_id  bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- Event time of the first call that put the customer in the group.
    joined_at    timestamptz NOT NULL,
    PRIMARY KEY (team_id, group_id, customer_id),
    FOREIGN KEY (team_id, group_id) REFERENCES customer_groups (team_id, group_id)
        ON DELETE CASCADE
);
CREATE INDEX customer_group_members_customer_idx ON customer_group_members (customer_id);
