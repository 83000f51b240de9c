-- AlterTable
ALTER TABLE "conversations" ADD COLUMN     "turn_lease_expires_at" TIMESTAMPTZ(3),
ADD COLUMN     "turn_lease_id" UUID;

-- AlterTable
ALTER TABLE "messages" ADD COLUMN     "stop_code" TEXT;
