import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SEND, startChatRig } from "../helpers/chat.js";
import { textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, type TestServer } from "../helpers/server.js";

describe("sendMessage", () => {
  let fake: FakeCohere;
  let server: TestServer;

  beforeAll(async () => {
    ({ fake, server } = await startChatRig());
  });
  afterAll(async () => {
    await server.close();
    await fake.close();
  });

  it("should add a task through the add_task tool and persist every step in seq order", async () => {
    const user = await newUser(server);
    fake.enqueue(toolCallReply([{ id: "call_add", name: "add_task", args: { title: "Buy milk" } }]), textReply("Added Buy milk."));

    const response = await user.gql(SEND, { input: { content: "add buy milk" } });

    expect(response.errors).toBeUndefined();
    const payload = response.data?.sendMessage;
    expect(payload.conversation.title).toBe("add buy milk");
    expect(payload.messages.map((m: { role: string; seq: number }) => [m.role, m.seq])).toEqual([
      ["USER", 1],
      ["ASSISTANT", 2],
      ["TOOL", 3],
      ["ASSISTANT", 4],
    ]);
    expect(payload.reply.content).toBe("Added Buy milk.");
    expect(payload.toolCalls).toHaveLength(1);
    expect(payload.toolCalls[0]).toMatchObject({ id: "call_add", name: "add_task", arguments: { title: "Buy milk" }, error: null });
    expect(payload.toolCalls[0].result).toMatchObject({ title: "Buy milk", completed: false });

    const tasks = await user.gql(`{ tasks { edges { node { id title } } } }`);
    expect(tasks.data?.tasks.edges).toEqual([{ node: { id: payload.toolCalls[0].result.id, title: "Buy milk" } }]);

    const second = fake.requests.at(-1)!.body;
    expect(second.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "tool"]);
    expect(second.messages[2]!.tool_calls?.[0]?.function).toEqual({ name: "add_task", arguments: '{"title":"Buy milk"}' });
    expect(second.messages[3]!.tool_call_id).toBe("call_add");
  });
});
