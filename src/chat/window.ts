import type { Cohere } from "cohere-ai";
import type { DbClient } from "../db/client.js";
import { messagesBefore } from "../domain/conversation-log.js";
import type { Message } from "../generated/prisma/client.js";
import { buildHistory, isShownToModel, storedToolCalls, systemPreamble, type ModelTime } from "./history.js";

/**
 * The context window: what one model call is shown. The system preamble, the
 * current turn whole, then as many of the newest earlier messages as fit in
 * COHERE_MAX_INPUT_TOKENS, read from the database newest first and only as far
 * back as needed. Messages go in by units that must stay together: a step's
 * tool calls with their results. The window starts at a user message; when
 * it leaves older ones out, the preamble says so.
 */

export interface WindowOptions {
  maxInputTokens: number;
  /** When, and in which zone the user is: the preamble says so. */
  time: ModelTime;
  /** The tools sent with the request: they count against the budget too. */
  tools: readonly Cohere.ToolV2[];
  /** The messages before the turn, newest first, by pages: a turn passes the pages it already read (chat/turn-log.ts). */
  history?: AsyncIterable<Message[]> | undefined;
}

export interface ContextWindow {
  messages: Cohere.ChatMessageV2[];
  /** Earlier messages exist that the window leaves out. */
  olderOmitted: boolean;
}

/**
 * A deliberately pessimistic estimate, without a tokenizer: about four
 * characters a token for ASCII, and a token for every other character (CJK,
 * emoji), plus a little for each message's framing.
 */
export function estimateTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (const char of text) {
    if (char.charCodeAt(0) < 128) ascii += 1;
    else other += 1;
  }
  return Math.ceil(ascii / 4) + other;
}

const MESSAGE_OVERHEAD_TOKENS = 8;

function messageTokens(message: Message): number {
  if (!isShownToModel(message)) return 0;
  const calls = storedToolCalls(message);
  const text = message.content + (message.toolPlan ?? "") + (calls.length > 0 ? JSON.stringify(calls) : "");
  return estimateTokens(text) + MESSAGE_OVERHEAD_TOKENS;
}

function unitTokens(unit: readonly Message[]): number {
  return unit.reduce((sum, message) => sum + messageTokens(message), 0);
}

/** `turn`: the current turn's messages, user message first; always sent whole. */
export async function buildWindow(db: DbClient, turn: readonly Message[], options: WindowOptions): Promise<ContextWindow> {
  const first = turn[0];
  if (!first) throw new Error("a turn has at least its user message");
  // The note costs the same whether or not it is said: count it, so adding it never overflows.
  const fixed = estimateTokens(systemPreamble(options.time, true)) + estimateTokens(JSON.stringify(options.tools)) + unitTokens(turn);
  let budget = options.maxInputTokens - fixed;

  const units: Message[][] = [];
  let olderOmitted = false;
  /** Tool results seen (newest first) whose step is further back. */
  let results: Message[] = [];
  reading: for await (const page of options.history ?? messagesBefore(db, first.conversationId, first.seq)) {
    for (const message of page) {
      if (message.role === "tool") {
        results.unshift(message);
        continue;
      }
      // A step and its results are one unit; results without their step (never written so) are left out.
      const unit = storedToolCalls(message).length > 0 ? [message, ...results] : [message];
      results = [];
      const cost = unitTokens(unit);
      if (cost > budget) {
        olderOmitted = true;
        break reading;
      }
      budget -= cost;
      units.unshift(unit);
    }
  }
  // Start at a user message: an answer or a step without its question misleads.
  while (units.length > 0 && units[0]![0]!.role !== "user") {
    units.shift();
    olderOmitted = true;
  }
  return { messages: buildHistory([...units.flat(), ...turn], options.time, olderOmitted), olderOmitted };
}
