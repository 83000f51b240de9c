-- A task moved to another user (only raw SQL can do that) now leaves a
-- tombstone for its old owner too, so the old owner's taskChanged subscribers
-- see it go (live and in catch-up), as for a delete. A later tombstone of the
-- same task replaces an earlier one.
CREATE OR REPLACE FUNCTION "todo_notify_task"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        INSERT INTO "deleted_tasks" ("id", "user_id", "title", "description", "completed", "created_at", "updated_at", "deleted_at")
        VALUES (OLD.id, OLD.user_id, OLD.title, OLD.description, OLD.completed, OLD.created_at, OLD.updated_at, now())
        ON CONFLICT ("id") DO UPDATE SET
            "user_id" = EXCLUDED."user_id",
            "title" = EXCLUDED."title",
            "description" = EXCLUDED."description",
            "completed" = EXCLUDED."completed",
            "created_at" = EXCLUDED."created_at",
            "updated_at" = EXCLUDED."updated_at",
            "deleted_at" = EXCLUDED."deleted_at";
        DELETE FROM "deleted_tasks" WHERE "user_id" = OLD.user_id AND "deleted_at" < now() - interval '7 days';
        PERFORM pg_notify(
            todo_realtime_channel(OLD.user_id),
            json_build_object('k', 'task', 'op', 'DELETE', 'i', OLD.id)::text
        );
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM pg_notify(
        todo_realtime_channel(NEW.user_id),
        json_build_object('k', 'task', 'op', TG_OP, 'i', NEW.id)::text
    );
    RETURN NULL;
END
$$;
