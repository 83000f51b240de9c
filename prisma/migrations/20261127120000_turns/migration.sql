-- Live chat turns: answers are written while they stream, turns are rows of
-- their own (status, stop code, usage, cancel request), and the realtime
-- triggers tell streaming progress apart from settled messages.

-- CreateEnum
CREATE TYPE "message_status" AS ENUM ('STREAMING', 'COMPLETE', 'CANCELLED', 'FAILED');

-- CreateEnum
CREATE TYPE "turn_status" AS ENUM ('RUNNING', 'COMPLETED', 'CANCELLED', 'FAILED');

-- AlterTable
ALTER TABLE "messages" ADD COLUMN     "status" "message_status" NOT NULL DEFAULT 'COMPLETE';

-- CreateTable
CREATE TABLE "turns" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "user_id" TEXT NOT NULL,
    "conversation_id" UUID NOT NULL,
    "user_message_id" UUID NOT NULL,
    "status" "turn_status" NOT NULL DEFAULT 'RUNNING',
    "stop_code" TEXT,
    "lease_id" UUID,
    "cancel_requested_at" TIMESTAMPTZ(3),
    "input_tokens" INTEGER,
    "output_tokens" INTEGER,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "turns_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "turns_user_message_id_key" ON "turns"("user_message_id");

-- CreateIndex
CREATE INDEX "turns_conversation_id_status_idx" ON "turns"("conversation_id", "status");

-- CreateIndex
CREATE INDEX "turns_status_idx" ON "turns"("status");

-- CreateIndex
CREATE INDEX "messages_conversation_id_tool_call_id_idx" ON "messages"("conversation_id", "tool_call_id");

-- AddForeignKey
ALTER TABLE "turns" ADD CONSTRAINT "turns_conversation_id_fkey" FOREIGN KEY ("conversation_id") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "turns" ADD CONSTRAINT "turns_user_message_id_fkey" FOREIGN KEY ("user_message_id") REFERENCES "messages"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Every user message stored before this migration opened a turn: give each a
-- row. It COMPLETED when its last message is an answer (an assistant message
-- without tool calls), keeping the stop code a bound left there; otherwise it
-- did not finish, and is FAILED so that a retry with its clientMessageId
-- resumes it, as before.
INSERT INTO "turns" ("user_id", "conversation_id", "user_message_id", "status", "stop_code", "started_at", "finished_at")
SELECT u."user_id",
       u."conversation_id",
       u."id",
       CASE WHEN answered THEN 'COMPLETED'::"turn_status" ELSE 'FAILED'::"turn_status" END,
       CASE WHEN answered THEN last."stop_code" ELSE 'INTERRUPTED' END,
       u."created_at",
       COALESCE(last."created_at", u."created_at")
FROM "messages" u
LEFT JOIN LATERAL (
    SELECT m."role", m."tool_calls", m."stop_code", m."created_at", m."seq"
    FROM "messages" m
    WHERE m."conversation_id" = u."conversation_id"
      AND m."seq" > u."seq"
      AND m."seq" < COALESCE(
          (SELECT min(n."seq") FROM "messages" n
           WHERE n."conversation_id" = u."conversation_id" AND n."role" = 'user' AND n."seq" > u."seq"),
          2147483647)
    ORDER BY m."seq" DESC
    LIMIT 1
) last ON true
CROSS JOIN LATERAL (
    SELECT last."role" = 'assistant'
           AND (last."tool_calls" IS NULL OR jsonb_typeof(last."tool_calls") <> 'array' OR jsonb_array_length(last."tool_calls") = 0)
           AS answered
) a
WHERE u."role" = 'user';

-- Realtime. A settled message (inserted settled, or ending its stream) is
-- announced as before, {k: 'message'}, which messageAdded follows. A streaming
-- message's insert and each flush of its content is {k: 'stream'} with its
-- length so far (o, in characters), which only messageStream follows. One
-- NOTIFY per statement, ids and offsets only.
CREATE OR REPLACE FUNCTION "todo_notify_message"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.status = 'STREAMING' THEN
        PERFORM pg_notify(
            todo_realtime_channel(NEW.user_id),
            json_build_object('k', 'stream', 'i', NEW.id, 'c', NEW.conversation_id, 's', NEW.seq, 'o', char_length(NEW.content))::text
        );
    ELSE
        PERFORM pg_notify(
            todo_realtime_channel(NEW.user_id),
            json_build_object('k', 'message', 'i', NEW.id, 'c', NEW.conversation_id, 's', NEW.seq, 'st', NEW.status)::text
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER "messages_notify_update" AFTER UPDATE ON "messages"
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.content IS DISTINCT FROM NEW.content)
    EXECUTE FUNCTION "todo_notify_message"();

-- A turn that ends, or is asked to stop: the instance running it listens for
-- x (cancel requested); whoever waits for its end listens for st.
CREATE FUNCTION "todo_notify_turn"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify(
        todo_realtime_channel(NEW.user_id),
        json_build_object('k', 'turn', 'i', NEW.id, 'c', NEW.conversation_id, 'st', NEW.status,
                          'x', NEW.cancel_requested_at IS NOT NULL)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER "turns_notify" AFTER UPDATE ON "turns"
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.cancel_requested_at IS DISTINCT FROM NEW.cancel_requested_at)
    EXECUTE FUNCTION "todo_notify_turn"();
