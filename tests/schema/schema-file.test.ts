import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { printSchemaSorted } from "../../src/schema/print.js";

describe("schema.graphql", () => {
  it("should match the schema the Pothos builder prints (run `npm run schema:print` after a schema change)", async () => {
    const committed = await readFile(new URL("../../schema.graphql", import.meta.url), "utf8");
    expect(committed).toBe(printSchemaSorted());
  });

  it("should keep the public contract's names", () => {
    const printed = printSchemaSorted();
    for (const line of [
      "tasks(after: String, before: String, filter: TaskFilter, first: Int, last: Int, orderBy: TaskOrder, status: TaskStatusFilter = ALL): TaskConnection!",
      "conversations(after: String, before: String, first: Int, last: Int): ConversationConnection!",
      "messages(after: String, before: String, first: Int, last: Int): MessageConnection!",
      "node(id: ID!): Node",
      "addTask(input: AddTaskInput!): Task!",
      "updateTask(input: UpdateTaskInput!): Task!",
      "completeTask(id: ID!): Task!",
      "deleteTask(id: ID!): Task!",
      "createConversation(input: CreateConversationInput): Conversation!",
      "deleteConversation(id: ID!): ID!",
      "sendMessage(input: SendMessageInput!): SendMessagePayload!",
    ]) {
      expect(printed).toContain(line);
    }
  });
});
