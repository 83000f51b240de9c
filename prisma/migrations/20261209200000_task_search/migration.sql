-- Search and filters over tasks (issue 25, item 3).
--
-- search_vector: a stored generated tsvector over title and description, in
-- two configurations at once. 'english' stems ("running" finds "run", "dentists"
-- finds "dentist"); 'simple' keeps every word as written (lower-cased), so a
-- prefix of the word being typed ("dent" → dentist) matches the word itself,
-- not its stem, and words of other languages and stop words still match
-- exactly. src/domain/task-search.ts builds the query against both.
--
-- pg_trgm (trusted since PG13, in the service's PG15 and in the embedded
-- PG18 alike) gives fuzzy matching of titles for typos ("dentsit").
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- AlterTable (a table rewrite: the value is computed for every row). Triggers
-- do not fire for it. In BEFORE UPDATE triggers NEW still carries the old
-- value of a generated column (PG15 and PG18), so tasks_new_version's WHEN
-- (OLD.* IS DISTINCT FROM NEW.*) still sees an update that changes nothing
-- as no change. (Postgres refuses to create a BEFORE trigger whose WHEN names
-- NEW.* on a table with generated columns: recreating that trigger needs
-- another form.)
ALTER TABLE "tasks" ADD COLUMN "search_vector" tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig, "title" || ' ' || coalesce("description", ''))
    || to_tsvector('simple'::regconfig, "title" || ' ' || coalesce("description", ''))
) STORED;

-- CreateIndex: the full-text search (a GIN index cannot lead with user_id;
-- the planner combines it with the user's rows, or filters its few matches).
CREATE INDEX "tasks_search_vector_idx" ON "tasks" USING GIN ("search_vector");

-- CreateIndex: the fuzzy title match (word_similarity, the <% operator).
CREATE INDEX "tasks_title_idx" ON "tasks" USING GIN ("title" gin_trgm_ops);

-- CreateIndex: overdue (pending, due before now) and the pending list by due date.
CREATE INDEX "tasks_user_id_completed_due_at_idx" ON "tasks"("user_id", "completed", "due_at");

-- The recorded rows leave the generated column out, as they leave out
-- last_event_id (undo writes back no generated column anyway).
CREATE OR REPLACE FUNCTION "todo_record_task_event"() RETURNS TRIGGER
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
        VALUES (OLD.user_id, OLD.id, 'DELETED', v_actor, v_turn, v_tool_call, v_undone, to_jsonb(OLD) - 'last_event_id' - 'search_vector');
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO "task_events" ("id", "user_id", "task_id", "kind", "actor", "turn_id", "tool_call_id", "undone_turn_id", "after")
        VALUES (COALESCE(NEW.last_event_id, gen_random_uuid()), NEW.user_id, NEW.id, 'CREATED', v_actor, v_turn, v_tool_call, v_undone,
                to_jsonb(NEW) - 'last_event_id' - 'search_vector');
    ELSE
        INSERT INTO "task_events" ("id", "user_id", "task_id", "kind", "actor", "turn_id", "tool_call_id", "undone_turn_id", "before", "after")
        VALUES (COALESCE(NEW.last_event_id, gen_random_uuid()), NEW.user_id, NEW.id, 'UPDATED', v_actor, v_turn, v_tool_call, v_undone,
                to_jsonb(OLD) - 'last_event_id' - 'search_vector', to_jsonb(NEW) - 'last_event_id' - 'search_vector');
    END IF;
    RETURN NULL;
END
$$;
