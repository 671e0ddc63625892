-- Events are the hot table: every row paid two foreign-key checks (a per-row lookup
-- and a share lock on the customer and on the event type). The consumers keep the
-- references true themselves: every customer a batch touches is locked FOR UPDATE,
-- merges move events before deleting the merged customer, and a delete removes the
-- customer's events explicitly. events.customer_id still means customers.id.
ALTER TABLE events DROP CONSTRAINT events_customer_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_event_type_id_fkey;
