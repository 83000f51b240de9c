import { ErrorCode as RpcErrorCode } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

/**
 * tools/call as the server takes it: the method, with params checked here
 * rather than by the SDK's schema. The SDK answers params that do not fit its
 * schema (`"arguments": null`, a string) with zod's multi-line issue dump,
 * and before its own check as -32603 "internal error"; a caller's mistake is
 * -32602 "invalid params" with one line saying what to fix.
 */
export const ToolCallRequest = z.object({ method: z.literal("tools/call"), params: z.unknown() });

export interface ToolCallParams {
  name: string;
  arguments: Record<string, unknown>;
}

/**
 * -32602 with exactly this message: the SDK sends any thrown error's `code`
 * and `message` (McpError would put "MCP error -32602: " before it).
 */
export class InvalidParams extends Error {
  override name = "InvalidParams";
  readonly code = RpcErrorCode.InvalidParams;
}

function invalidParams(reason: string): InvalidParams {
  return new InvalidParams(`Invalid tools/call params: ${reason}`);
}

function kindOf(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The tool's name and arguments (omitted: none), or -32602 naming the field at fault. */
export function toolCallParams(params: unknown): ToolCallParams {
  if (!isObject(params)) throw invalidParams(`params must be an object (got ${kindOf(params)})`);
  const { name, arguments: args } = params;
  if (typeof name !== "string") throw invalidParams(`name must be a string (got ${kindOf(name)})`);
  if (args === undefined) return { name, arguments: {} };
  if (!isObject(args)) throw invalidParams(`arguments must be an object (got ${kindOf(args)})`);
  return { name, arguments: args };
}
