import { expect, vi } from "vitest";
import type { AssistantDeps } from "../../src/chat/turn-run.js";
import type { Db } from "../../src/db/client.js";
import type { Turn } from "../../src/generated/prisma/client.js";
import { parseId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import type { FakeCohere } from "../helpers/fake-cohere.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import type { QueuedSubscription, TestWsClient } from "../helpers/ws-client.js";

/** Shared documents and helpers of the live-turn tests (streaming, background turns, cancel). */

export const MESSAGE_STREAM = /* GraphQL */ `
  subscription Stream($conversationId: ID!) {
    messageStream(conversationId: $conversationId) {
      offset
      delta
      message {
        id
        seq
        role
        status
        content
      }
    }
  }
`;

export const SEND_LIVE = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation {
        id
      }
      userMessage {
        id
        seq
        content
        status
      }
      reply {
        id
        seq
        content
        status
      }
      messages {
        id
        seq
        role
        status
        content
      }
      turn {
        id
        status
        stopCode
        usage {
          inputTokens
          outputTokens
        }
        startedAt
        finishedAt
      }
    }
  }
`;

export const CANCEL_TURN = /* GraphQL */ `
  mutation Cancel($id: ID!) {
    cancelTurn(id: $id) {
      id
      status
      stopCode
      finishedAt
      messages {
        id
        role
        status
        content
      }
    }
  }
`;

export const ACTIVE_TURN = /* GraphQL */ `
  query Active($id: ID!) {
    conversation(id: $id) {
      activeTurn {
        id
        status
      }
    }
  }
`;

export interface StreamEventView {
  offset: number;
  delta: string;
  message: { id: string; seq: number; role: string; status: "STREAMING" | "COMPLETE" | "CANCELLED" | "FAILED"; content: string };
}

export interface TurnView {
  id: string;
  status: "RUNNING" | "COMPLETED" | "CANCELLED" | "FAILED";
  stopCode: string | null;
  usage: { inputTokens: number; outputTokens: number } | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface LivePayload {
  conversation: { id: string };
  userMessage: { id: string; seq: number; content: string; status: string };
  reply: { id: string; seq: number; content: string; status: string } | null;
  messages: { id: string; seq: number; role: string; status: string; content: string }[];
  turn: TurnView;
}

/** A promise the test settles: a gate the fake model waits at. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** Two API instances on one database (each with its own client and LISTEN), talking to one fake model. */
export async function twoInstances(fake: FakeCohere, overrides: Partial<AssistantDeps> = {}): Promise<[TestServer, TestServer]> {
  const a = await startTestServer({ assistant: cohereAssistant(fake, overrides) });
  try {
    const b = await startTestServer({ assistant: cohereAssistant(fake, overrides) });
    return [a, b];
  } catch (error) {
    await a.close();
    throw error;
  }
}

/** Subscribes to messageStream and resolves once the server listens and has read where the stream stands. */
export async function liveStream(server: TestServer, client: TestWsClient, conversationId: string): Promise<QueuedSubscription> {
  const before = server.app.streams.establishedCount;
  const sub = client.subscribe(MESSAGE_STREAM, { conversationId });
  await vi.waitFor(
    () => {
      const failed = sub.pending().filter((result) => result.errors);
      expect(failed, "messageStream error results").toEqual([]);
      expect(server.app.streams.establishedCount, "established streams").toBeGreaterThan(before);
    },
    { timeout: 10_000, interval: 10 },
  );
  return sub;
}

/** The next messageStream event; fails on an error result. */
export async function nextStreamEvent(sub: QueuedSubscription, timeoutMs = 10_000): Promise<StreamEventView> {
  const result = await sub.next(timeoutMs);
  if (result.errors) throw new Error(`messageStream errored: ${JSON.stringify(result.errors)}`);
  return result.data?.messageStream as StreamEventView;
}

/** Events of one message until its last (a settled status). */
export async function eventsUntilSettled(sub: QueuedSubscription, timeoutMs = 10_000): Promise<StreamEventView[]> {
  const events: StreamEventView[] = [];
  for (;;) {
    const event = await nextStreamEvent(sub, timeoutMs);
    events.push(event);
    if (event.message.status !== "STREAMING") return events;
  }
}

/** Asserts offsets run end to end from `start` and returns the text the events carry. */
export function joined(events: readonly StreamEventView[], start = 0): string {
  let expected = start;
  let text = "";
  for (const event of events) {
    if (event.offset !== expected) throw new Error(`offset ${event.offset} where ${expected} was expected (gap or overlap)`);
    expected += [...event.delta].length;
    text += event.delta;
  }
  return text;
}

/** The turn rows of a conversation, by its global id. */
export function turnsIn(db: Db, conversationGlobalId: string): Promise<Turn[]> {
  return db.turn.findMany({ where: { conversationId: parseId(conversationGlobalId, "id", "Conversation") }, orderBy: { startedAt: "asc" } });
}
