import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import type { ChatRig } from "../helpers/chat.js";
import { textReply, toolCallReply } from "../helpers/fake-cohere.js";
import type { GraphQLResponse, TestUser } from "../helpers/server.js";

/** Shared documents and helpers of the provenance and undo tests. */

const EVENT_FIELDS = "id at kind actor taskId toolCallId turn { id } undoingTurn { id } before after";

export const ADD = `mutation Add($input: AddTaskInput!) { addTask(input: $input) { id title description completed createdAt } }`;
export const UPDATE = `mutation Update($input: UpdateTaskInput!) { updateTask(input: $input) { id title description completed } }`;
export const COMPLETE = `mutation Complete($id: ID!) { completeTask(id: $id) { id completed } }`;
export const DELETE = `mutation Delete($id: ID!) { deleteTask(id: $id) { id history(first: 20) { edges { node { ${EVENT_FIELDS} } } } } }`;
export const TASK = `query Task($id: ID!) { task(id: $id) { id title description completed createdAt } }`;
export const HISTORY = /* GraphQL */ `
  query History($id: ID!, $first: Int, $after: String) {
    task(id: $id) {
      history(first: $first, after: $after) { edges { cursor node { ${EVENT_FIELDS} } } pageInfo { hasNextPage endCursor } }
    }
  }
`;
export const TURN_EVENTS = `query Turn($id: ID!) { node(id: $id) { ... on Turn { id status undoneAt taskEvents { ${EVENT_FIELDS} } } } }`;
export const UNDO = /* GraphQL */ `
  mutation Undo($id: ID!) {
    undoTurn(id: $id) { turn { id undoneAt } reverted { ${EVENT_FIELDS} } tasks { id title description completed createdAt } }
  }
`;
export const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation {
        id
      }
      turn {
        id
        status
      }
      toolCalls {
        id
        name
        result
        error
      }
    }
  }
`;
export const TASK_CHANGED = `subscription { taskChanged { kind taskId task { id title } cause { ${EVENT_FIELDS} } } }`;

export interface EventView {
  id: string;
  at: string;
  kind: "CREATED" | "UPDATED" | "DELETED";
  actor: "USER" | "ASSISTANT" | "MCP" | "UNDO" | "SYSTEM";
  taskId: string;
  toolCallId: string | null;
  turn: { id: string } | null;
  undoingTurn: { id: string } | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

export interface TaskView {
  id: string;
  title: string;
  description: string | null;
  completed: boolean;
  createdAt: string;
}

export interface UndoView {
  turn: { id: string; undoneAt: string | null };
  reverted: EventView[];
  tasks: TaskView[];
}

export interface ToolCallView {
  id: string;
  name: string;
  result: Record<string, any> | null;
  error: string | null;
}

export interface TurnOutcome {
  conversationId: string;
  turnId: string;
  toolCalls: ToolCallView[];
}

/** The data of a request that must succeed. */
export async function ok<T = Record<string, any>>(user: TestUser, query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await user.gql<T>(query, variables);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  if (response.data === undefined || response.data === null) throw new Error("no data");
  return response.data;
}

/** The one error of a request that must fail. */
export function errorOf(response: GraphQLResponse): { message: string; code: string; extensions: Record<string, any> } {
  expect(response.errors, JSON.stringify(response.data)).toHaveLength(1);
  const [error] = response.errors!;
  return { message: error!.message, code: String(error!.extensions?.code), extensions: error!.extensions ?? {} };
}

export async function addTask(user: TestUser, title: string, description?: string): Promise<TaskView> {
  return (await ok<{ addTask: TaskView }>(user, ADD, { input: { title, description } })).addTask;
}

export async function historyOf(user: TestUser, taskId: string, first = 50): Promise<EventView[]> {
  const data = await ok<{ task: { history: { edges: { node: EventView }[] } } }>(user, HISTORY, { id: taskId, first });
  return data.task.history.edges.map((edge) => edge.node);
}

export async function turnEvents(user: TestUser, turnId: string): Promise<{ undoneAt: string | null; taskEvents: EventView[] }> {
  return (await ok<{ node: { undoneAt: string | null; taskEvents: EventView[] } }>(user, TURN_EVENTS, { id: turnId })).node;
}

export type PlannedCall = { id?: string; name: string; args: Record<string, unknown> };

/**
 * One chat turn whose model calls `calls` in one step, then answers: the real
 * SDK against the fake Cohere. Returns the turn and what its calls answered.
 */
export async function assistantTurn(rig: ChatRig, user: TestUser, calls: PlannedCall[], conversationId?: string): Promise<TurnOutcome> {
  const withIds = calls.map((call) => ({ ...call, id: call.id ?? `call_${call.name}_${randomUUID()}` }));
  rig.fake.enqueue(toolCallReply(withIds, "Doing it."), textReply("Done."));
  const response = await user.gql<{ sendMessage: { conversation: { id: string }; turn: { id: string; status: string }; toolCalls: ToolCallView[] } }>(
    SEND,
    { input: { content: `please ${calls.map((call) => call.name).join(" and ")}`, ...(conversationId ? { conversationId } : {}) } },
  );
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  const payload = response.data!.sendMessage;
  expect(payload.turn.status).toBe("COMPLETED");
  return { conversationId: payload.conversation.id, turnId: payload.turn.id, toolCalls: payload.toolCalls };
}

/** The result of a call that must have succeeded. */
export function resultOf(turn: TurnOutcome, name: string): Record<string, any> {
  const call = turn.toolCalls.find((c) => c.name === name);
  expect(call?.error ?? null, `${name}: ${call?.error}`).toBeNull();
  return call!.result!;
}
