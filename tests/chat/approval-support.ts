import { expect, vi } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import type { FakeCohere, RecordedRequest } from "../helpers/fake-cohere.js";
import type { GraphQLResponse, TestServer, TestUser } from "../helpers/server.js";
import type { QueuedSubscription, TestWsClient } from "../helpers/ws-client.js";

/** Documents and helpers of the approval tests (issue 24). */

/** The first value `read` gives that is `done`, read every 20 ms (vi.waitFor); on timeout the failure names `what` and the last value. */
export function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await read();
      expect(done(value), `${what} (last: ${JSON.stringify(value)?.slice(0, 300)})`).toBe(true);
      return value;
    },
    { timeout: timeoutMs, interval: 20 },
  );
}

const TURN_FIELDS = /* GraphQL */ `
  id status stopCode startedAt finishedAt
  toolCalls { id name arguments result error approval { status expiresAt reason decidedAt argumentsHash } tasks { id title } }
  messages { id role content status toolCallId }
`;

export const SEND_APPROVAL = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation { id }
      reply { id content }
      turn { ${TURN_FIELDS} }
    }
  }
`;

export const DECIDE = /* GraphQL */ `
  mutation Decide($turnId: ID!, $decisions: [ToolCallDecision!]!) {
    decideToolCalls(turnId: $turnId, decisions: $decisions) { ${TURN_FIELDS} }
  }
`;

export const CANCEL = /* GraphQL */ `
  mutation Cancel($id: ID!) { cancelTurn(id: $id) { ${TURN_FIELDS} } }
`;

export const TURN_NODE = /* GraphQL */ `
  query Turn($id: ID!) { node(id: $id) { ... on Turn { ${TURN_FIELDS} } } }
`;

export const ACTIVE = /* GraphQL */ `
  query Active($id: ID!) {
    conversation(id: $id) {
      activeTurn {
        id
        status
      }
    }
  }
`;

export const TURN_UPDATED = /* GraphQL */ `
  subscription Turns($c: ID!) {
    turnUpdated(conversationId: $c) {
      id
      status
      stopCode
      toolCalls {
        id
        approval {
          status
        }
      }
    }
  }
`;

export interface ApprovalView {
  status: "PENDING" | "APPROVED" | "REJECTED" | "EXPIRED";
  expiresAt: string;
  reason: string | null;
  decidedAt: string | null;
  argumentsHash: string;
}

export interface CallView {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
  result: Record<string, any> | null;
  error: string | null;
  approval: ApprovalView | null;
  tasks: { id: string; title: string }[];
}

export interface ApprovalTurn {
  id: string;
  status: "RUNNING" | "REQUIRES_ACTION" | "COMPLETED" | "CANCELLED" | "FAILED";
  stopCode: string | null;
  startedAt: string;
  finishedAt: string | null;
  toolCalls: CallView[];
  messages: { id: string; role: string; content: string; status: string; toolCallId: string | null }[];
}

export interface SendView {
  conversation: { id: string };
  reply: { id: string; content: string } | null;
  turn: ApprovalTurn;
}

export interface Decision {
  toolCallId: string;
  approve: boolean;
  reason?: string;
  argumentsHash?: string;
}

export function send(server: TestServer, user: TestUser, input: Record<string, unknown>): Promise<GraphQLResponse<{ sendMessage: SendView }>> {
  return server.request<{ sendMessage: SendView }>(SEND_APPROVAL, { input }, user.token);
}

/** sendMessage that must succeed. */
export async function sent(server: TestServer, user: TestUser, input: Record<string, unknown>): Promise<SendView> {
  const response = await send(server, user, input);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data!.sendMessage;
}

export function decide(server: TestServer, user: TestUser, turnId: string, decisions: Decision[]) {
  return server.request<{ decideToolCalls: ApprovalTurn }>(DECIDE, { turnId, decisions }, user.token);
}

/** decideToolCalls that must succeed. */
export async function decided(server: TestServer, user: TestUser, turnId: string, decisions: Decision[]): Promise<ApprovalTurn> {
  const response = await decide(server, user, turnId, decisions);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data!.decideToolCalls;
}

export async function turnOf(server: TestServer, user: TestUser, turnId: string): Promise<ApprovalTurn> {
  const response = await server.request<{ node: ApprovalTurn }>(TURN_NODE, { id: turnId }, user.token);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data!.node;
}

/** The turn once it has left `status` (RUNNING by default). */
export function turnAfter(server: TestServer, user: TestUser, turnId: string, status: ApprovalTurn["status"] = "RUNNING"): Promise<ApprovalTurn> {
  return waitFor(
    () => turnOf(server, user, turnId),
    (turn) => turn.status !== status,
    `turn ${turnId} to leave ${status}`,
  );
}

export async function addTask(server: TestServer, user: TestUser, title: string): Promise<string> {
  const response = await server.request<{ addTask: { id: string } }>(
    `mutation A($t: String!) { addTask(input: { title: $t }) { id } }`,
    { t: title },
    user.token,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.addTask.id;
}

export async function taskTitles(server: TestServer, user: TestUser): Promise<string[]> {
  const rows = await server.db.task.findMany({ where: { userId: user.id }, orderBy: { title: "asc" } });
  return rows.map((row) => row.title);
}

export async function newConversationOf(server: TestServer, user: TestUser): Promise<string> {
  const response = await server.request<{ createConversation: { id: string } }>(`mutation { createConversation { id } }`, {}, user.token);
  return response.data!.createConversation.id;
}

/** turnUpdated on `conversationId`, once the server listens for it. */
export async function followTurns(server: TestServer, client: TestWsClient, conversationId: string): Promise<QueuedSubscription> {
  const before = server.app.turns.establishedCount;
  const sub = client.subscribe(TURN_UPDATED, { c: conversationId });
  await waitFor(
    async () => server.app.turns.establishedCount,
    (count) => count > before || sub.pending().some((r) => r.errors),
    "turnUpdated to listen",
  );
  const failed = sub.pending().find((result) => result.errors);
  if (failed) throw new Error(`turnUpdated failed: ${JSON.stringify(failed.errors)}`);
  return sub;
}

/** The statuses turnUpdated delivers for `turnId` until one of them is `last`. */
export async function statusesUntil(sub: QueuedSubscription, turnId: string, last: string): Promise<string[]> {
  const seen: string[] = [];
  while (seen.at(-1) !== last) {
    const result = await sub.next(15_000);
    if (result.errors) throw new Error(`turnUpdated errored: ${JSON.stringify(result.errors)}`);
    const turn = result.data?.turnUpdated as { id: string; status: string };
    if (turn.id === turnId) seen.push(turn.status);
  }
  return seen;
}

/** The tool results the model was sent in `request`, by call id, as the JSON documents they carry. */
export function toolResultsSent(request: RecordedRequest): Map<string, Record<string, unknown>> {
  return new Map(
    request.body.messages
      .filter((m) => m.role === "tool")
      .map((m) => {
        const content = m.content as { type: string; document: { data: Record<string, unknown> } }[];
        return [m.tool_call_id ?? "", content[0]?.document.data ?? {}];
      }),
  );
}

/** Requests the fake model got since `from`. */
export function requestsSince(fake: FakeCohere, from: number): RecordedRequest[] {
  return fake.requests.slice(from);
}

export function errorCode(response: GraphQLResponse): string | undefined {
  return response.errors?.[0]?.extensions?.code as string | undefined;
}

export function turnGlobalId(uuid: string): string {
  return toGlobalId("Turn", uuid);
}
