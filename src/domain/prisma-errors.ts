import { Prisma } from "../generated/prisma/client.js";

/** Prisma's "An operation failed because it depends on one or more records that were required but not found". */
export function isRecordNotFound(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025";
}

/** A unique constraint was violated (P2002). */
export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002";
}
