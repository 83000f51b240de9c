-- CreateTable
CREATE TABLE "deleted_tasks" (
    "id" UUID NOT NULL,
    "user_id" TEXT NOT NULL,
    "title" VARCHAR(200) NOT NULL,
    "description" VARCHAR(1000),
    "completed" BOOLEAN NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    "deleted_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "deleted_tasks_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "deleted_tasks_user_id_deleted_at_idx" ON "deleted_tasks"("user_id", "deleted_at");

-- CreateIndex
CREATE INDEX "tasks_user_id_updated_at_idx" ON "tasks"("user_id", "updated_at");

-- Realtime: committed changes are announced with pg_notify, ids only (NOTIFY
-- payloads are capped at 8000 bytes), on one channel per user so a process
-- LISTENs only for the users it serves. Written by hand: Prisma's schema
-- language has no triggers.

-- The channel of a user: identifiers are capped at 63 bytes and user ids are
-- arbitrary strings, so the id is hashed (md5 here names, it does not protect).
CREATE FUNCTION "todo_realtime_channel"(user_id TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT 'todo_u_' || md5(user_id) $$;

CREATE FUNCTION "todo_notify_message"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify(
        todo_realtime_channel(NEW.user_id),
        json_build_object('k', 'message', 'i', NEW.id, 'c', NEW.conversation_id, 's', NEW.seq)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER "messages_notify" AFTER INSERT ON "messages"
    FOR EACH ROW EXECUTE FUNCTION "todo_notify_message"();

-- updated_at also moves for changes made outside Prisma (raw SQL), so that
-- catch-up by updated_at sees them.
CREATE FUNCTION "todo_touch_updated_at"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER "tasks_touch_updated_at" BEFORE UPDATE ON "tasks"
    FOR EACH ROW EXECUTE FUNCTION "todo_touch_updated_at"();

CREATE FUNCTION "todo_notify_task"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO "deleted_tasks" ("id", "user_id", "title", "description", "completed", "created_at", "updated_at", "deleted_at")
        VALUES (OLD.id, OLD.user_id, OLD.title, OLD.description, OLD.completed, OLD.created_at, OLD.updated_at, now())
        ON CONFLICT ("id") DO NOTHING;
        DELETE FROM "deleted_tasks" WHERE "user_id" = OLD.user_id AND "deleted_at" < now() - interval '7 days';
        PERFORM pg_notify(
            todo_realtime_channel(OLD.user_id),
            json_build_object('k', 'task', 'op', 'DELETE', 'i', OLD.id)::text
        );
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        -- Moved to another user: the old owner sees it go.
        PERFORM pg_notify(
            todo_realtime_channel(OLD.user_id),
            json_build_object('k', 'task', 'op', 'DELETE', 'i', OLD.id)::text
        );
    END IF;
    PERFORM pg_notify(
        todo_realtime_channel(NEW.user_id),
        json_build_object('k', 'task', 'op', TG_OP, 'i', NEW.id)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER "tasks_notify" AFTER INSERT OR UPDATE OR DELETE ON "tasks"
    FOR EACH ROW EXECUTE FUNCTION "todo_notify_task"();
