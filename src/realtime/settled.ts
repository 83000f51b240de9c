import type { Message } from "../generated/prisma/client.js";

/**
 * Settled: the message will not change any more, so messageAdded may deliver
 * it. Only an assistant answer being streamed (STREAMING) is not; it settles
 * as COMPLETE, CANCELLED or FAILED, and messageStream carries it meanwhile.
 */
export function isSettled(message: Pick<Message, "status">): boolean {
  return message.status !== "STREAMING";
}
