-- Approval before destructive or bulk tool calls (issue 24).
--
-- A step's calls that need the user's approval are stored as pending rows in
-- tool_approvals, bound to the call they were shown for (its id and a hash of
-- its arguments), and the turn pauses: status REQUIRES_ACTION, its lease given
-- back. A decision, on any instance, updates these rows; the last one resumes
-- the turn. Nothing of a waiting turn lives in memory.

-- AlterEnum. The new value is not used in this migration: Postgres refuses a
-- value added in the same transaction.
ALTER TYPE "turn_status" ADD VALUE 'REQUIRES_ACTION' AFTER 'RUNNING';

-- CreateEnum
CREATE TYPE "tool_approval_status" AS ENUM ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED');

-- AlterTable
ALTER TABLE "turns" ADD COLUMN     "time_used_ms" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "last_decision_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "tool_approvals" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "user_id" TEXT NOT NULL,
    "turn_id" UUID NOT NULL,
    "conversation_id" UUID NOT NULL,
    "tool_call_id" TEXT NOT NULL,
    "tool_name" TEXT NOT NULL,
    "arguments_hash" CHAR(64) NOT NULL,
    "status" "tool_approval_status" NOT NULL DEFAULT 'PENDING',
    "reason" VARCHAR(1000),
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "decided_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tool_approvals_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "tool_approvals_turn_id_tool_call_id_key" ON "tool_approvals"("turn_id", "tool_call_id");

-- CreateIndex
CREATE INDEX "tool_approvals_conversation_id_tool_call_id_idx" ON "tool_approvals"("conversation_id", "tool_call_id");

-- CreateIndex
CREATE INDEX "tool_approvals_status_expires_at_idx" ON "tool_approvals"("status", "expires_at");

-- AddForeignKey
ALTER TABLE "tool_approvals" ADD CONSTRAINT "tool_approvals_turn_id_fkey" FOREIGN KEY ("turn_id") REFERENCES "turns"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Realtime: turnUpdated follows every status change of a turn, its start
-- included, and every decision on one of its calls (last_decision_at), so a
-- client sees a pause, and a decision made elsewhere, live. The payload is
-- the same {k: 'turn'} as before.
CREATE TRIGGER "turns_notify_insert" AFTER INSERT ON "turns"
    FOR EACH ROW EXECUTE FUNCTION "todo_notify_turn"();

DROP TRIGGER "turns_notify" ON "turns";
CREATE TRIGGER "turns_notify" AFTER UPDATE ON "turns"
    FOR EACH ROW WHEN (
        OLD.status IS DISTINCT FROM NEW.status
        OR OLD.cancel_requested_at IS DISTINCT FROM NEW.cancel_requested_at
        OR OLD.last_decision_at IS DISTINCT FROM NEW.last_decision_at
    )
    EXECUTE FUNCTION "todo_notify_turn"();
