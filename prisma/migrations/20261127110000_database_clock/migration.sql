-- One clock, and no-op updates stay silent.
--
-- Timestamps come from the database only. The column defaults are already
-- CURRENT_TIMESTAMP; the schema now says dbgenerated("CURRENT_TIMESTAMP") so
-- Prisma stops sending its own now() and @updatedAt values (taken from the
-- application's clock, which may disagree with the one catch-up compares
-- against). updated_at is kept here instead, by triggers.

-- Tasks: an UPDATE that changes no column neither moves updated_at nor
-- notifies (completing a completed task is not a change). A trigger's WHEN
-- cannot read OLD on INSERT, so updates get a notify trigger of their own.
DROP TRIGGER "tasks_touch_updated_at" ON "tasks";
CREATE TRIGGER "tasks_touch_updated_at" BEFORE UPDATE ON "tasks"
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION "todo_touch_updated_at"();

DROP TRIGGER "tasks_notify" ON "tasks";
CREATE TRIGGER "tasks_notify" AFTER INSERT OR DELETE ON "tasks"
    FOR EACH ROW EXECUTE FUNCTION "todo_notify_task"();
CREATE TRIGGER "tasks_notify_update" AFTER UPDATE ON "tasks"
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION "todo_notify_task"();

-- Conversations: updated_at (the order of the conversation list) moves when
-- anything but the turn lease changes. A new message bumps last_seq, so it
-- counts; taking or releasing the lease is bookkeeping and does not. Compared
-- as jsonb so that a column added later counts unless it is excluded here.
CREATE TRIGGER "conversations_touch_updated_at" BEFORE UPDATE ON "conversations"
    FOR EACH ROW WHEN (
        (to_jsonb(OLD.*) - 'turn_lease_id' - 'turn_lease_expires_at')
        IS DISTINCT FROM
        (to_jsonb(NEW.*) - 'turn_lease_id' - 'turn_lease_expires_at')
    )
    EXECUTE FUNCTION "todo_touch_updated_at"();
