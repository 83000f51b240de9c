import { GraphQLError } from "graphql";
import type { Db } from "../db/client.js";
import type { Logger } from "../lib/logger.js";

/** /ready's check: the database answers within `timeoutMs`. */
export async function databaseReady(db: Db, logger: Logger, timeoutMs: number): Promise<boolean> {
  try {
    await withTimeout(db.$queryRaw`SELECT 1`, timeoutMs);
    return true;
  } catch (error) {
    // Yoga would answer with the error's message, which names the database host,
    // port and Prisma internals: a bare 503 for the client, the reason for the log.
    logger.warn({ err: error }, "readiness check failed");
    return false;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new GraphQLError(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
