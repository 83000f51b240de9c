-- Per-user token buckets (sendMessage's rate limit), held in Postgres so every
-- API instance draws from the same bucket. Microsecond timestamps: the refill
-- is elapsed time × rate.
-- CreateTable
CREATE TABLE "rate_limit_buckets" (
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "tokens" DOUBLE PRECISION NOT NULL,
    "updated_at" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "rate_limit_buckets_pkey" PRIMARY KEY ("user_id","name")
);
