-- Realtime transports (issue 27). A wake-up leaves the writing transaction
-- one of two ways, never both: pg_notify (REALTIME_TRANSPORT=postgres, the
-- default) or a row of realtime_outbox (nats), which one relay per database
-- publishes to NATS JetStream and deletes (src/realtime/outbox-relay.ts).
-- With nats, writes take no part in NOTIFY's commit-time lock and payloads
-- are not bound by its 8,000 bytes (they stay ids only all the same).

-- Which one: a single row, set by each instance as it connects
-- (src/realtime/transport-mode.ts). A row, not a database-level setting, so
-- every session sees a change at once, pooled ones included. No row (or any
-- value but 'nats') means postgres.
CREATE TABLE "realtime_settings" (
    "id" SMALLINT NOT NULL DEFAULT 1,
    "transport" TEXT NOT NULL DEFAULT 'postgres',
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "realtime_settings_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "realtime_settings_one_row" CHECK ("id" = 1),
    CONSTRAINT "realtime_settings_transport" CHECK ("transport" IN ('postgres', 'nats'))
);

INSERT INTO "realtime_settings" ("id", "transport") VALUES (1, 'postgres');

-- Wake-ups waiting for the relay, in the order their rows were written (the
-- id is the JetStream message id, so a republished row is dropped as a
-- duplicate). channel is the user's (todo_realtime_channel), payload the same
-- JSON a NOTIFY would carry (src/realtime/protocol.ts). xact_id is the writing
-- transaction's id: a subscriber drops the wake-up of a commit that its
-- subscription's snapshot already saw, as LISTEN never hears a NOTIFY sent
-- before it (src/realtime/xact-snapshot.ts).
CREATE TABLE "realtime_outbox" (
    "id" BIGSERIAL NOT NULL,
    "channel" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "xact_id" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "realtime_outbox_pkey" PRIMARY KEY ("id")
);

-- The one way a trigger sends a wake-up. The triggers below call it instead
-- of pg_notify; a trigger added later must too (tests/realtime/nats-outbox.test.ts
-- fails while any other function calls pg_notify).
CREATE FUNCTION "todo_realtime_send"(p_channel TEXT, p_payload TEXT) RETURNS VOID
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF (SELECT "transport" FROM "realtime_settings" WHERE "id" = 1) = 'nats' THEN
        INSERT INTO "realtime_outbox" ("channel", "payload", "xact_id")
        VALUES (p_channel, p_payload, pg_current_xact_id()::text::bigint);
    ELSE
        PERFORM pg_notify(p_channel, p_payload);
    END IF;
END
$$;

-- The realtime triggers of 20261127120000_turns and
-- 20261125120000_task_move_tombstone, with pg_notify replaced by
-- todo_realtime_send and nothing else changed.
CREATE OR REPLACE FUNCTION "todo_notify_message"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.status = 'STREAMING' THEN
        PERFORM todo_realtime_send(
            todo_realtime_channel(NEW.user_id),
            json_build_object('k', 'stream', 'i', NEW.id, 'c', NEW.conversation_id, 's', NEW.seq, 'o', char_length(NEW.content))::text
        );
    ELSE
        PERFORM todo_realtime_send(
            todo_realtime_channel(NEW.user_id),
            json_build_object('k', 'message', 'i', NEW.id, 'c', NEW.conversation_id, 's', NEW.seq, 'st', NEW.status)::text
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION "todo_notify_turn"() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM todo_realtime_send(
        todo_realtime_channel(NEW.user_id),
        json_build_object('k', 'turn', 'i', NEW.id, 'c', NEW.conversation_id, 'st', NEW.status,
                          'x', NEW.cancel_requested_at IS NOT NULL)::text
    );
    RETURN NULL;
END
$$;

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
