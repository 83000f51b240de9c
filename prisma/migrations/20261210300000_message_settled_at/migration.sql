-- When each message took its final form, in database time: the notification
-- lag of messageAdded (realtime_notification_lag_seconds, kind messageAdded)
-- is measured from it, as taskChanged's is from a task's updated_at. A message
-- stored settled is settled at its insert (the default); an answer stored
-- STREAMING is settled by the UPDATE that gives it its final status, often
-- seconds after its created_at, so the trigger below stamps that moment.
-- Rows from before this migration keep NULL (their created_at stands in):
-- the column is added without a value so the table is not rewritten.
ALTER TABLE "messages" ADD COLUMN "settled_at" TIMESTAMPTZ(3);
ALTER TABLE "messages" ALTER COLUMN "settled_at" SET DEFAULT CURRENT_TIMESTAMP;

CREATE FUNCTION "todo_message_settled_at"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.settled_at := now();
    RETURN NEW;
END
$$;

-- Only the settle runs it (STREAMING to COMPLETE, CANCELLED or FAILED), whoever
-- writes it: the turn's end, a cancel, the sweep of an interrupted turn.
CREATE TRIGGER "messages_settled_at" BEFORE UPDATE ON "messages"
    FOR EACH ROW WHEN (OLD.status = 'STREAMING' AND NEW.status <> 'STREAMING')
    EXECUTE FUNCTION "todo_message_settled_at"();
