-- stored_at is when the row was written (not the transaction's start), so that
-- stored_at - received_at is the ingest-to-queryable latency even for rows that
-- are COPYed without naming the column.
ALTER TABLE events ALTER COLUMN stored_at SET DEFAULT clock_timestamp();
