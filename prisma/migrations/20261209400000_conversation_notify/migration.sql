-- conversationChanged (issue 25): the conversation list follows every
-- conversation's creation, rename, deletion and new activity, from any writer
-- (the API, a chat turn, another instance, raw SQL), as taskChanged follows tasks.

-- The id of each deleted conversation, written by the trigger below, so a
-- subscriber that missed the wake-up (its transport reconnecting) still learns
-- of the deletion at catch-up. Only the id: a deleted conversation's messages
-- and turns are gone with it, so there is no last state worth sending. Kept 7
-- days, as deleted_tasks.
CREATE TABLE "deleted_conversations" (
    "id" UUID NOT NULL,
    "user_id" TEXT NOT NULL,
    "deleted_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "deleted_conversations_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "deleted_conversations_user_id_deleted_at_idx" ON "deleted_conversations"("user_id", "deleted_at");

-- The wake-up (ids only, src/realtime/protocol.ts, kind 'conversation'),
-- through todo_realtime_send like every other trigger. A conversation moved to
-- another user (raw SQL only) is a DELETE on the old owner's channel, with a
-- tombstone, then an UPDATE on the new one's, as for tasks.
CREATE FUNCTION "todo_notify_conversation"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        INSERT INTO "deleted_conversations" ("id", "user_id", "deleted_at")
        VALUES (OLD.id, OLD.user_id, now())
        ON CONFLICT ("id") DO UPDATE SET
            "user_id" = EXCLUDED."user_id",
            "deleted_at" = EXCLUDED."deleted_at";
        DELETE FROM "deleted_conversations" WHERE "user_id" = OLD.user_id AND "deleted_at" < now() - interval '7 days';
        PERFORM todo_realtime_send(
            todo_realtime_channel(OLD.user_id),
            json_build_object('k', 'conversation', 'op', 'DELETE', 'i', OLD.id)::text
        );
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM todo_realtime_send(
        todo_realtime_channel(NEW.user_id),
        json_build_object('k', 'conversation', 'op', TG_OP, 'i', NEW.id)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER "conversations_notify" AFTER INSERT OR DELETE ON "conversations"
    FOR EACH ROW EXECUTE FUNCTION "todo_notify_conversation"();

-- Updates wake subscribers exactly when updated_at moves
-- (conversations_touch_updated_at, 20261127110000_database_clock): a rename,
-- a settled message (it bumps last_seq), anything but the turn lease. Taking
-- or releasing the lease is bookkeeping, and an answer's streaming flushes
-- write the message row only (last_seq moves when it settles), so a streamed
-- answer wakes the list once, not once per flush.
CREATE TRIGGER "conversations_notify_update" AFTER UPDATE ON "conversations"
    FOR EACH ROW WHEN (
        (to_jsonb(OLD.*) - 'turn_lease_id' - 'turn_lease_expires_at')
        IS DISTINCT FROM
        (to_jsonb(NEW.*) - 'turn_lease_id' - 'turn_lease_expires_at')
    )
    EXECUTE FUNCTION "todo_notify_conversation"();
