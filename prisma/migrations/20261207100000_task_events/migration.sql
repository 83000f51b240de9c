-- Provenance: every write to tasks, from any entry point (the API, the
-- assistant, MCP, an undo, raw SQL, a migration), records an event in the
-- same transaction: the row before and after (the whole row, as jsonb, so
-- columns added later are recorded without touching this), and its cause.
--
-- The cause comes from transaction-local settings, never from a column a
-- client can write. src/domain/provenance.ts sets them, in the same statement
-- as the write (a one-row FROM item running set_config(..., true)):
--   todo.actor        USER | ASSISTANT | MCP | UNDO; unset or empty: SYSTEM
--   todo.turn         the turn whose tool call made the write (ASSISTANT, or an UNDO the assistant asked for)
--   todo.tool_call    that tool call's id
--   todo.undone_turn  UNDO: the turn being undone
--
-- Events have no foreign key to tasks (a deleted task's events stay, so its
-- deletion can be undone) nor to turns (deleting a conversation keeps the
-- record of what its turns changed). They go when the user's data goes: every
-- row carries user_id, and the history index leads with it.

-- CreateEnum
CREATE TYPE "task_event_kind" AS ENUM ('CREATED', 'UPDATED', 'DELETED');

-- CreateEnum
CREATE TYPE "task_event_actor" AS ENUM ('USER', 'ASSISTANT', 'MCP', 'UNDO', 'SYSTEM');

-- AlterTable: the event that produced this version of the row. Set by the
-- database (the default on insert, tasks_new_version on update), so reading
-- a task tells which event made it what it is, in the same snapshot.
-- Existing rows keep NULL: they were written before events existed.
ALTER TABLE "tasks" ADD COLUMN "last_event_id" UUID;
ALTER TABLE "tasks" ALTER COLUMN "last_event_id" SET DEFAULT gen_random_uuid();

-- AlterTable: the deletion's event, for taskChanged's cause of a DELETED.
ALTER TABLE "deleted_tasks" ADD COLUMN "last_event_id" UUID;

-- AlterTable
ALTER TABLE "turns" ADD COLUMN "undone_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "task_events" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "seq" BIGSERIAL NOT NULL,
    "user_id" TEXT NOT NULL,
    "task_id" UUID NOT NULL,
    "kind" "task_event_kind" NOT NULL,
    "actor" "task_event_actor" NOT NULL,
    "turn_id" UUID,
    "tool_call_id" TEXT,
    "undone_turn_id" UUID,
    "before" JSONB,
    "after" JSONB,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex: a task's history, newest first; undo's conflict check; a user's erasure.
CREATE INDEX "task_events_user_id_task_id_seq_idx" ON "task_events"("user_id", "task_id", "seq");

-- CreateIndex: what a turn changed (Turn.taskEvents, undo).
CREATE INDEX "task_events_turn_id_seq_idx" ON "task_events"("turn_id", "seq");

-- A new version of a changed row: updated_at moves (as todo_touch_updated_at
-- did for tasks) and the row points at the event about to be recorded. Only
-- for updates that change something, as before.
CREATE FUNCTION "todo_task_new_version"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    NEW.last_event_id := gen_random_uuid();
    RETURN NEW;
END
$$;

DROP TRIGGER "tasks_touch_updated_at" ON "tasks";
CREATE TRIGGER "tasks_new_version" BEFORE UPDATE ON "tasks"
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION "todo_task_new_version"();

-- The event. seq (from the sequence, taken here, after the row lock) orders
-- a task's events as they committed. Generated columns a later migration
-- adds should be left out of before/after as last_event_id is.
CREATE FUNCTION "todo_record_task_event"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_actor "task_event_actor" := COALESCE(NULLIF(current_setting('todo.actor', true), ''), 'SYSTEM')::"task_event_actor";
    v_turn UUID := NULLIF(current_setting('todo.turn', true), '')::uuid;
    v_tool_call TEXT := NULLIF(current_setting('todo.tool_call', true), '');
    v_undone UUID := NULLIF(current_setting('todo.undone_turn', true), '')::uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO "task_events" ("user_id", "task_id", "kind", "actor", "turn_id", "tool_call_id", "undone_turn_id", "before")
        VALUES (OLD.user_id, OLD.id, 'DELETED', v_actor, v_turn, v_tool_call, v_undone, to_jsonb(OLD) - 'last_event_id');
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO "task_events" ("id", "user_id", "task_id", "kind", "actor", "turn_id", "tool_call_id", "undone_turn_id", "after")
        VALUES (COALESCE(NEW.last_event_id, gen_random_uuid()), NEW.user_id, NEW.id, 'CREATED', v_actor, v_turn, v_tool_call, v_undone,
                to_jsonb(NEW) - 'last_event_id');
    ELSE
        INSERT INTO "task_events" ("id", "user_id", "task_id", "kind", "actor", "turn_id", "tool_call_id", "undone_turn_id", "before", "after")
        VALUES (COALESCE(NEW.last_event_id, gen_random_uuid()), NEW.user_id, NEW.id, 'UPDATED', v_actor, v_turn, v_tool_call, v_undone,
                to_jsonb(OLD) - 'last_event_id', to_jsonb(NEW) - 'last_event_id');
    END IF;
    RETURN NULL;
END
$$;

-- AFTER row triggers fire in name order: tasks_events* before tasks_notify*,
-- so a deletion's event exists when its tombstone is written. An update that
-- changes nothing records nothing (the same WHEN as tasks_notify_update).
CREATE TRIGGER "tasks_events" AFTER INSERT OR DELETE ON "tasks"
    FOR EACH ROW EXECUTE FUNCTION "todo_record_task_event"();
CREATE TRIGGER "tasks_events_update" AFTER UPDATE ON "tasks"
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION "todo_record_task_event"();

-- Tombstones carry the deletion's event (a move to another user, raw SQL
-- only, has none of the old owner's).
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

-- Undo: puts each task back as `row` (a before/after of task_events), or
-- deletes it when `row` is null, in order. Generic over the columns: those
-- the recorded row has, except the ones the database keeps (id and user_id
-- are the key; updated_at and last_event_id move with the write; generated
-- columns are computed). A task that is gone comes back with its id, and
-- its tombstone goes. The writes are ordinary writes: the triggers record
-- them, with the cause the caller set. Returns how many tasks it wrote.
CREATE FUNCTION "todo_restore_tasks"(p_user_id TEXT, p_targets JSONB) RETURNS INTEGER
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_target RECORD;
    v_columns TEXT;
    v_count INTEGER;
    v_written INTEGER := 0;
BEGIN
    FOR v_target IN
        SELECT (t.value ->> 'task_id')::uuid AS task_id, t.value -> 'row' AS row
        FROM jsonb_array_elements(p_targets) WITH ORDINALITY AS t(value, n) ORDER BY t.n
    LOOP
        IF v_target.row IS NULL OR jsonb_typeof(v_target.row) = 'null' THEN
            DELETE FROM "tasks" WHERE "id" = v_target.task_id AND "user_id" = p_user_id;
            GET DIAGNOSTICS v_count = ROW_COUNT;
        ELSE
            SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_columns
            FROM pg_attribute a
            WHERE a.attrelid = '"tasks"'::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              AND a.attname NOT IN ('id', 'user_id', 'updated_at', 'last_event_id')
              AND v_target.row ? a.attname;
            EXECUTE format('UPDATE "tasks" SET (%1$s) = (SELECT %1$s FROM jsonb_populate_record(NULL::"tasks", $1)) WHERE "id" = $2 AND "user_id" = $3', v_columns)
                USING v_target.row, v_target.task_id, p_user_id;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            IF v_count = 0 THEN
                EXECUTE format('INSERT INTO "tasks" ("id", "user_id", %1$s) SELECT $2, $3, %1$s FROM jsonb_populate_record(NULL::"tasks", $1)', v_columns)
                    USING v_target.row, v_target.task_id, p_user_id;
                GET DIAGNOSTICS v_count = ROW_COUNT;
                DELETE FROM "deleted_tasks" WHERE "id" = v_target.task_id AND "user_id" = p_user_id;
            END IF;
        END IF;
        v_written := v_written + v_count;
    END LOOP;
    RETURN v_written;
END
$$;
