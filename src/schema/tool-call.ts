import { parseArguments } from "../chat/tools.js";
import { storedToolCalls, toolDocument } from "../chat/history.js";
import type { Message } from "../generated/prisma/client.js";
import { builder } from "./builder.js";

export interface ToolCallShape {
  id: string;
  name: string;
  arguments: unknown;
  result: unknown;
  error: string | null;
}

export const ToolCallRef = builder.objectRef<ToolCallShape>("ToolCall").implement({
  description: "A tool the assistant called, with what it was given and what came back.",
  fields: (t) => ({
    id: t.exposeString("id"),
    name: t.exposeString("name"),
    arguments: t.field({
      type: "JSON",
      description: "The arguments the model sent; a string when they were not valid JSON.",
      resolve: (call) => call.arguments,
    }),
    result: t.field({ type: "JSON", nullable: true, resolve: (call) => call.result ?? null }),
    error: t.exposeString("error", { nullable: true }),
  }),
});

/** Pairs an assistant message's calls with their tool messages (undefined: no result stored). */
export function toolCallsOf(message: Pick<Message, "toolCalls">, results: readonly (Message | null | undefined)[]): ToolCallShape[] {
  return storedToolCalls(message).map((call, index) => {
    const parsed = parseArguments(call.function.arguments);
    const resultMessage = results[index];
    const document = resultMessage ? toolDocument(resultMessage) : undefined;
    const error = document && typeof document.error === "string" ? document.error : null;
    return {
      id: call.id,
      name: call.function.name,
      arguments: parsed.ok ? parsed.value : call.function.arguments,
      result: error === null ? (document ?? null) : null,
      error,
    };
  });
}
