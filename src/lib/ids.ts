/** Opaque global IDs: the one public id format of GraphQL, the chat tools and MCP. */
import { decodeBase64, decodeCursorChunk } from "@pothos/core";
import { decodeGlobalID, encodeGlobalID } from "@pothos/plugin-relay";
import { badInput } from "./errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Every type that implements Node: what node(id) loads, and whose ids src/schema/sync-node-ids.ts encodes. */
export const NODE_TYPENAMES = ["Task", "Conversation", "Message", "Turn", "TaskEvent"] as const;

export type NodeTypename = (typeof NODE_TYPENAMES)[number];

export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID.test(value);
}

export function toGlobalId(typename: NodeTypename, id: string): string {
  return encodeGlobalID(typename, id);
}

/** Decodes an opaque global ID; `field` names the argument in the BAD_USER_INPUT error. */
export function parseGlobalId(value: string, field: string, expected: readonly NodeTypename[]): { typename: NodeTypename; id: string } {
  let decoded: { typename: string; id: string };
  try {
    decoded = decodeGlobalID(value);
  } catch {
    throw badInput(field, "is not a valid ID");
  }
  const typename = expected.find((name) => name === decoded.typename);
  if (typename === undefined) {
    const wanted = expected.length === 1 ? `a ${expected[0]} ID` : `an ID of ${expected.join(", ")}`;
    throw badInput(field, `must be ${wanted}`);
  }
  if (!isUuid(decoded.id)) throw badInput(field, "is not a valid ID");
  return { typename, id: decoded.id };
}

/** The id a Task, Conversation, Message, Turn or TaskEvent global ID stands for. */
export function parseId(value: string, field: string, typename: NodeTypename): string {
  return parseGlobalId(value, field, [typename]).id;
}

/** True when `cursor` is one our connections hand out (Pothos' `GPC:` prefix around a row's uuid). */
export function isValidCursor(cursor: string): boolean {
  try {
    const decoded = decodeBase64(cursor);
    return decoded.startsWith("GPC:") && isUuid(decodeCursorChunk(decoded.slice(4)));
  } catch {
    return false;
  }
}
