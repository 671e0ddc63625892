-- Event times are kept within the years 1 to 9999 UTC, the range every reader
-- (Python's datetime among them) can represent. PostgreSQL itself holds 4713 BC to
-- 294276 AD, and before this migration a write with an event time of, say,
-- 0001-01-01T00:00:00+01:00 (year 0 in UTC) was stored and then crashed every
-- reader of that row. The gateway refuses such times at the door; these checks make
-- them impossible to store, so a message that still carries one is dead-lettered.
--
-- For each event-time column: first repair what is stored (an out-of-range time is
-- clamped to the nearest bound), then add the check.
DO $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT * FROM (VALUES ('customers', 'first_seen_at'), ('customers', 'last_updated_at'),
                              ('events', 'occurred_at'), ('events', 'received_at')) AS c (tbl, name)
    LOOP
        EXECUTE format(
            'UPDATE %1$I SET %2$I = LEAST(GREATEST(%2$I, %3$L), %4$L)'
            ' WHERE %2$I < %3$L OR %2$I > %4$L',
            col.tbl, col.name, '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00');
        EXECUTE format(
            'ALTER TABLE %1$I ADD CONSTRAINT %3$I CHECK (%2$I BETWEEN %4$L AND %5$L)',
            col.tbl, col.name, col.tbl || '_' || col.name || '_range',
            '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00');
    END LOOP;
END
$$;
