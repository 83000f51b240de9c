import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { startChatRig, type ChatRig } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, type TestUser } from "../helpers/server.js";
import {
  addTask,
  assistantTurn,
  COMPLETE,
  DELETE,
  errorOf,
  historyOf,
  HISTORY,
  ok,
  resultOf,
  turnEvents,
  UPDATE,
  type EventView,
} from "./support.js";

/**
 * Every write to a task leaves an event written by Postgres in the same
 * transaction, with its cause: each actor through its real entry point.
 */
describe("task events: every change, with its cause", () => {
  let rig: ChatRig;
  let sql: pg.Client;
  const mcpClients: Client[] = [];

  beforeAll(async () => {
    // Approval (CHAT_APPROVAL, issue 24) would hold delete_task and undo_turn: these tests are about what the writes record.
    rig = await startChatRig({ assistant: { approvalPolicy: "none" } });
    sql = new pg.Client({ connectionString: databaseUrl() });
    await sql.connect();
  });

  afterAll(async () => {
    await Promise.all(mcpClients.map((client) => client.close()));
    await sql?.end();
    await rig?.server.close();
    await rig?.fake.close();
  });

  async function mcpFor(user: TestUser): Promise<Client> {
    const client = new Client({ name: "provenance-test", version: "1.0.0" });
    mcpClients.push(client);
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${rig.server.baseUrl}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${user.token}` } },
      }),
    );
    return client;
  }

  function eventRows(taskId: string) {
    return rig.server.db.taskEvent.findMany({ where: { taskId: parseId(taskId, "id", "Task") }, orderBy: { seq: "asc" } });
  }

  it("should record USER for each GraphQL write with the whole row before and after, and nothing for a write that changes nothing", async () => {
    const user = await newUser(rig.server, "prov-user");
    const task = await addTask(user, "Buy milk", "2 litres");
    await ok(user, UPDATE, { input: { id: task.id, title: "Buy oat milk" } });
    await ok(user, COMPLETE, { id: task.id });
    // Neither changes anything: no event.
    await ok(user, COMPLETE, { id: task.id });
    await ok(user, UPDATE, { input: { id: task.id, title: "Buy oat milk", description: "2 litres" } });
    const deleted = await ok<{ deleteTask: { history: { edges: { node: EventView }[] } } }>(user, DELETE, { id: task.id });

    // The deleted task's history stays, newest first.
    const history = deleted.deleteTask.history.edges.map((edge) => edge.node);
    expect(history.map((event) => [event.kind, event.actor])).toEqual([
      ["DELETED", "USER"],
      ["UPDATED", "USER"],
      ["UPDATED", "USER"],
      ["CREATED", "USER"],
    ]);
    for (const event of history) expect(event).toMatchObject({ taskId: task.id, turn: null, undoingTurn: null, toolCallId: null });
    const [gone, completed, renamed, created] = history;
    expect(created!.before).toBeNull();
    expect(created!.after).toEqual({
      id: task.id,
      title: "Buy milk",
      description: "2 litres",
      completed: false,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
      dueAt: null,
      dueAllDay: false,
      priority: "NONE",
      labels: [],
      completedAt: null,
      recurrence: null,
    });
    expect(renamed!.before).toMatchObject({ title: "Buy milk" });
    expect(renamed!.after).toMatchObject({ title: "Buy oat milk", completed: false });
    expect(completed!.before).toMatchObject({ completed: false });
    expect(completed!.after).toMatchObject({ title: "Buy oat milk", completed: true, completedAt: expect.any(String) });
    expect(gone!.before).toMatchObject({ id: task.id, title: "Buy oat milk", description: "2 litres", completed: true });
    expect(gone!.after).toBeNull();
    // The owner is the viewer: never in the recorded row as shown.
    expect(JSON.stringify(history)).not.toContain(user.id);
    expect(await eventRows(task.id)).toHaveLength(4);
  });

  it("should record ASSISTANT with the turn and the tool call for each tool call of a turn", async () => {
    const user = await newUser(rig.server, "prov-assistant");
    const mine = await addTask(user, "Water plants");
    const turn = await assistantTurn(rig, user, [
      { id: "call_add_1", name: "add_task", args: { title: "Call mom" } },
      { id: "call_complete_1", name: "complete_task", args: { task_id: mine.id } },
    ]);
    const added = resultOf(turn, "add_task");

    const [createdByTool] = await historyOf(user, added.id);
    expect(createdByTool).toMatchObject({
      kind: "CREATED",
      actor: "ASSISTANT",
      turn: { id: turn.turnId },
      toolCallId: "call_add_1",
      undoingTurn: null,
    });
    const [completedByTool, createdByUser] = await historyOf(user, mine.id);
    expect(completedByTool).toMatchObject({ kind: "UPDATED", actor: "ASSISTANT", turn: { id: turn.turnId }, toolCallId: "call_complete_1" });
    expect(createdByUser).toMatchObject({ kind: "CREATED", actor: "USER", turn: null });

    const events = await turnEvents(user, turn.turnId);
    expect(events.undoneAt).toBeNull();
    expect(events.taskEvents.map((event) => [event.toolCallId, event.taskId])).toEqual([
      ["call_add_1", added.id],
      ["call_complete_1", mine.id],
    ]);
  });

  it("should record MCP for each MCP tool call", async () => {
    const user = await newUser(rig.server, "prov-mcp");
    const client = await mcpFor(user);
    const call = async (name: string, args: Record<string, unknown>) => {
      const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
      expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
      return result.structuredContent as Record<string, any>;
    };
    const added = await call("add_task", { title: "Renew passport" });
    await call("update_task", { task_id: added.id, description: "before June" });
    await call("delete_task", { task_id: added.id });

    const rows = await eventRows(added.id);
    expect(rows.map((row) => [row.kind, row.actor, row.turnId, row.toolCallId])).toEqual([
      ["CREATED", "MCP", null, null],
      ["UPDATED", "MCP", null, null],
      ["DELETED", "MCP", null, null],
    ]);
  });

  it("should record SYSTEM for raw SQL, even on a connection whose earlier transaction set a cause", async () => {
    const user = await newUser(rig.server, "prov-system");
    const task = await addTask(user, "Pay rent");
    // A cause set in an earlier transaction of this session ends with it.
    await sql.query("BEGIN");
    await sql.query("SELECT set_config('todo.actor', 'USER', true)");
    await sql.query("COMMIT");
    await sql.query("UPDATE tasks SET title = 'Pay rent (psql)' WHERE id = $1", [parseId(task.id, "id", "Task")]);
    // An update that changes nothing, from psql too: no event.
    await sql.query("UPDATE tasks SET title = title WHERE id = $1", [parseId(task.id, "id", "Task")]);

    const [system, created] = await historyOf(user, task.id);
    expect(created).toMatchObject({ kind: "CREATED", actor: "USER" });
    expect(system).toMatchObject({ kind: "UPDATED", actor: "SYSTEM", turn: null, toolCallId: null });
    expect(system!.before).toMatchObject({ title: "Pay rent" });
    expect(system!.after).toMatchObject({ title: "Pay rent (psql)" });
    expect(await eventRows(task.id)).toHaveLength(2);
  });

  it("should page a task's history newest first, and treat another task's event as an unknown cursor", async () => {
    const user = await newUser(rig.server, "prov-pages");
    const task = await addTask(user, "v0");
    for (let version = 1; version <= 4; version += 1) await ok(user, UPDATE, { input: { id: task.id, title: `v${version}` } });
    const titles: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 5; page += 1) {
      const data = await ok<{
        task: { history: { edges: { cursor: string; node: EventView }[]; pageInfo: { hasNextPage: boolean; endCursor: string } } };
      }>(user, HISTORY, { id: task.id, first: 2, after });
      titles.push(...data.task.history.edges.map((edge) => String(edge.node.after?.title)));
      if (!data.task.history.pageInfo.hasNextPage) break;
      after = data.task.history.pageInfo.endCursor;
    }
    expect(titles).toEqual(["v4", "v3", "v2", "v1", "v0"]);

    const other = await addTask(user, "another task");
    const [otherEvent] = await historyOf(user, other.id);
    const cursor = Buffer.from(`GPC:S:${parseId(otherEvent!.id, "id", "TaskEvent")}`, "utf8").toString("base64");
    const foreign = await ok<{ task: { history: { edges: unknown[] } } }>(user, HISTORY, { id: task.id, first: 10, after: cursor });
    expect(foreign.task.history.edges).toEqual([]);
  });

  it("should answer node(id) with an event of the viewer's, and NOT_FOUND with another user's", async () => {
    const [owner, stranger] = [await newUser(rig.server, "prov-node"), await newUser(rig.server, "prov-stranger")];
    const task = await addTask(owner, "Book flights");
    const [event] = await historyOf(owner, task.id);
    const NODE = `query Node($id: ID!) { node(id: $id) { id __typename ... on TaskEvent { kind actor after } } }`;
    const mine = await ok<{ node: { id: string; __typename: string; kind: string } }>(owner, NODE, { id: event!.id });
    expect(mine.node).toMatchObject({ id: event!.id, __typename: "TaskEvent", kind: "CREATED" });
    expect(errorOf(await stranger.gql(NODE, { id: event!.id }))).toMatchObject({ code: "NOT_FOUND", message: "TaskEvent not found" });
    expect(errorOf(await stranger.gql(HISTORY, { id: task.id, first: 5 })).code).toBe("NOT_FOUND");
    expect(event!.id).toBe(toGlobalId("TaskEvent", parseId(event!.id, "id", "TaskEvent")));
  });
});
