import pg from "pg";
import { Prisma } from "../generated/prisma/client.js";

/** A unique constraint was violated: P2002, or in a raw query (P2010), Postgres' 23505, or node-postgres' own 23505 (direct-statement.ts). */
export function isUniqueViolation(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return error.code === "23505";
  if (!(error instanceof Prisma.PrismaClientKnownRequestError)) return false;
  if (error.code === "P2002") return true;
  const cause = (error.meta?.driverAdapterError as { cause?: { originalCode?: unknown } } | undefined)?.cause;
  return error.code === "P2010" && cause?.originalCode === "23505";
}
