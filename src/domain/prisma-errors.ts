import { Prisma } from "../generated/prisma/client.js";

/** A unique constraint was violated (P2002). */
export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002";
}
