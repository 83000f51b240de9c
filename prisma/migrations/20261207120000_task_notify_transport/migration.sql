-- Two migrations of the same wave each redefined todo_notify_task:
-- 20261201100000_realtime_outbox (its wake-up through todo_realtime_send, so
-- that the nats transport reads it from the outbox) and
-- 20261207100000_task_events (its tombstone carrying the deletion's event,
-- with pg_notify as before). This is both: the tombstone of task_events, the
-- wake-up of the outbox. tests/realtime/nats-outbox.test.ts fails while any
-- trigger function calls pg_notify directly.
CREATE OR REPLACE FUNCTION "todo_notify_task"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        INSERT INTO "deleted_tasks" ("id", "user_id", "title", "description", "completed", "created_at", "updated_at", "deleted_at", "last_event_id")
        VALUES (OLD.id, OLD.user_id, OLD.title, OLD.description, OLD.completed, OLD.created_at, OLD.updated_at, now(),
                CASE WHEN TG_OP = 'DELETE' THEN (
                    SELECT e.id FROM "task_events" e
                    WHERE e.user_id = OLD.user_id AND e.task_id = OLD.id
                    ORDER BY e.seq DESC LIMIT 1)
                END)
        ON CONFLICT ("id") DO UPDATE SET
            "user_id" = EXCLUDED."user_id",
            "title" = EXCLUDED."title",
            "description" = EXCLUDED."description",
            "completed" = EXCLUDED."completed",
            "created_at" = EXCLUDED."created_at",
            "updated_at" = EXCLUDED."updated_at",
            "deleted_at" = EXCLUDED."deleted_at",
            "last_event_id" = EXCLUDED."last_event_id";
        DELETE FROM "deleted_tasks" WHERE "user_id" = OLD.user_id AND "deleted_at" < now() - interval '7 days';
        PERFORM todo_realtime_send(
            todo_realtime_channel(OLD.user_id),
            json_build_object('k', 'task', 'op', 'DELETE', 'i', OLD.id)::text
        );
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM todo_realtime_send(
        todo_realtime_channel(NEW.user_id),
        json_build_object('k', 'task', 'op', TG_OP, 'i', NEW.id)::text
    );
    RETURN NULL;
END
$$;
