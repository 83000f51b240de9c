-- Task fields (due date, priority, labels, completion time, recurrence) and
-- the user's settings (the time zone).
--
-- task_priority is declared in ascending order, so ORDER BY priority sorts
-- NONE < LOW < MEDIUM < HIGH < URGENT with no CASE and an ordinary index.
-- labels is NOT NULL (an empty array, never NULL), which Prisma cannot
-- declare on a list: tests/helpers/schema-shape.ts knows it.
--
-- Provenance needs nothing here: task_events records the whole row as jsonb
-- and todo_restore_tasks writes back every column the recorded row has, so
-- the new columns are recorded and undone like the old ones (an event
-- recorded before this migration has none of them: undoing it leaves them).

-- CreateEnum
CREATE TYPE "task_priority" AS ENUM ('NONE', 'LOW', 'MEDIUM', 'HIGH', 'URGENT');

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "due_at" TIMESTAMPTZ(3),
ADD COLUMN "due_all_day" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN "priority" "task_priority" NOT NULL DEFAULT 'NONE',
ADD COLUMN "labels" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
ADD COLUMN "completed_at" TIMESTAMPTZ(3),
ADD COLUMN "recurrence" TEXT;

-- AlterTable: tombstones carry the task as it was, new fields included.
ALTER TABLE "deleted_tasks" ADD COLUMN "due_at" TIMESTAMPTZ(3),
ADD COLUMN "due_all_day" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN "priority" "task_priority" NOT NULL DEFAULT 'NONE',
ADD COLUMN "labels" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
ADD COLUMN "completed_at" TIMESTAMPTZ(3),
ADD COLUMN "recurrence" TEXT;

-- Backfill: a task already done was completed at its last change at the
-- latest. With the row triggers off: this is not a change of the task (no
-- new version, no event that would make undo of an earlier turn refuse as a
-- conflict, no wake-up to every subscriber).
ALTER TABLE "tasks" DISABLE TRIGGER USER;
UPDATE "tasks" SET "completed_at" = "updated_at" WHERE "completed";
ALTER TABLE "tasks" ENABLE TRIGGER USER;

-- CreateTable
CREATE TABLE "user_settings" (
    "user_id" TEXT NOT NULL,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "user_settings_pkey" PRIMARY KEY ("user_id")
);

-- The tombstone copies the new columns too.
CREATE OR REPLACE FUNCTION "todo_notify_task"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        INSERT INTO "deleted_tasks" ("id", "user_id", "title", "description", "completed", "created_at", "updated_at", "deleted_at", "last_event_id",
                                     "due_at", "due_all_day", "priority", "labels", "completed_at", "recurrence")
        VALUES (OLD.id, OLD.user_id, OLD.title, OLD.description, OLD.completed, OLD.created_at, OLD.updated_at, now(),
                CASE WHEN TG_OP = 'DELETE' THEN (
                    SELECT e.id FROM "task_events" e
                    WHERE e.user_id = OLD.user_id AND e.task_id = OLD.id
                    ORDER BY e.seq DESC LIMIT 1)
                END,
                OLD.due_at, OLD.due_all_day, OLD.priority, OLD.labels, OLD.completed_at, OLD.recurrence)
        ON CONFLICT ("id") DO UPDATE SET
            "user_id" = EXCLUDED."user_id",
            "title" = EXCLUDED."title",
            "description" = EXCLUDED."description",
            "completed" = EXCLUDED."completed",
            "created_at" = EXCLUDED."created_at",
            "updated_at" = EXCLUDED."updated_at",
            "deleted_at" = EXCLUDED."deleted_at",
            "last_event_id" = EXCLUDED."last_event_id",
            "due_at" = EXCLUDED."due_at",
            "due_all_day" = EXCLUDED."due_all_day",
            "priority" = EXCLUDED."priority",
            "labels" = EXCLUDED."labels",
            "completed_at" = EXCLUDED."completed_at",
            "recurrence" = EXCLUDED."recurrence";
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
