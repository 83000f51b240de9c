import { defineConfig } from "prisma/config";

// Prisma 7 reads the connection from here, not from schema.prisma. `generate`
// needs no database; `migrate deploy` (where the engine can be fetched) uses
// the unpooled URL, as migrations must not go through a transaction pooler.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DIRECT_URL ?? process.env.DATABASE_URL ?? "" },
});
