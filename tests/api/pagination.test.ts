import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendMessages, type NewMessage } from "../../src/domain/messages.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

interface PageInfo {
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}

interface Page<N> {
  edges: { cursor: string; node: N }[];
  pageInfo: PageInfo;
}

const PAGE_INFO = `pageInfo { hasNextPage hasPreviousPage startCursor endCursor }`;

function rawId(globalId: string): string {
  const decoded = Buffer.from(globalId, "base64").toString("utf8");
  return decoded.slice(decoded.indexOf(":") + 1);
}

/** startCursor/endCursor are the first and last edges' cursors (null on an empty page). */
function expectCursorsMatchEdges<N>(page: Page<N>): void {
  expect(page.pageInfo.startCursor).toBe(page.edges[0]?.cursor ?? null);
  expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
}

describe("pagination", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  async function ok<T>(user: TestUser, query: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await user.gql<T>(query, variables);
    expect(response.errors).toBeUndefined();
    if (response.data === undefined || response.data === null) throw new Error("no data");
    return response.data;
  }

  describe("tasks", () => {
    const TASKS = `query($first: Int, $last: Int, $after: String, $before: String, $status: TaskStatusFilter) {
      tasks(first: $first, last: $last, after: $after, before: $before, status: $status) {
        edges { cursor node { id title completed } }
        ${PAGE_INFO}
      }
    }`;
    type TaskNode = { id: string; title: string; completed: boolean };

    async function page(user: TestUser, variables: Record<string, unknown>): Promise<Page<TaskNode>> {
      const data = await ok<{ tasks: Page<TaskNode> }>(user, TASKS, variables);
      expectCursorsMatchEdges(data.tasks);
      return data.tasks;
    }

    const titles = (p: Page<TaskNode>) => p.edges.map((edge) => edge.node.title);

    /** Creates T1…Tn in order, a few ms apart so "newest first" is well defined. */
    async function createTasks(user: TestUser, count: number): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 1; i <= count; i += 1) {
        const data = await ok<{ addTask: { id: string } }>(user, `mutation($title: String!) { addTask(input: { title: $title }) { id } }`, {
          title: `T${i}`,
        });
        ids.push(data.addTask.id);
        await sleep(5);
      }
      return ids;
    }

    it("should page forward with first and after through all tasks, newest first, without duplicates", async () => {
      const user = await newUser(server);
      await createTasks(user, 7);

      const first = await page(user, { first: 3 });
      expect(titles(first)).toEqual(["T7", "T6", "T5"]);
      expect(first.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });

      const second = await page(user, { first: 3, after: first.pageInfo.endCursor });
      expect(titles(second)).toEqual(["T4", "T3", "T2"]);
      expect(second.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });

      const third = await page(user, { first: 3, after: second.pageInfo.endCursor });
      expect(titles(third)).toEqual(["T1"]);
      expect(third.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });

      // The same walk as a loop that stops on hasNextPage, as a client would write it.
      const seen: string[] = [];
      let after: string | null = null;
      let pages = 0;
      for (;;) {
        const current: Page<TaskNode> = await page(user, { first: 3, after });
        seen.push(...current.edges.map((edge) => edge.node.id));
        pages += 1;
        if (!current.pageInfo.hasNextPage) break;
        after = current.pageInfo.endCursor;
        expect(pages).toBeLessThan(10);
      }
      expect(pages).toBe(3);
      expect(new Set(seen).size).toBe(7);
      const all = await page(user, { first: 100 });
      expect(seen).toEqual(all.edges.map((edge) => edge.node.id));
      expect(titles(all)).toEqual(["T7", "T6", "T5", "T4", "T3", "T2", "T1"]);
      expect(all.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
    });

    it("should report no next page when first equals the number of tasks left", async () => {
      const user = await newUser(server);
      await createTasks(user, 7);
      const exact = await page(user, { first: 7 });
      expect(exact.edges).toHaveLength(7);
      expect(exact.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
      const rest = await page(user, { first: 4, after: exact.edges[2]?.cursor });
      expect(titles(rest)).toEqual(["T4", "T3", "T2", "T1"]);
      expect(rest.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      const empty = await page(user, { first: 3, after: exact.pageInfo.endCursor });
      expect(empty.edges).toEqual([]);
      expect(empty.pageInfo.hasNextPage).toBe(false);
    });

    it("should page backward with last and before, keeping newest first within each page", async () => {
      const user = await newUser(server);
      await createTasks(user, 7);

      const last = await page(user, { last: 3 });
      expect(titles(last)).toEqual(["T3", "T2", "T1"]);
      expect(last.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });

      const middle = await page(user, { last: 3, before: last.pageInfo.startCursor });
      expect(titles(middle)).toEqual(["T6", "T5", "T4"]);
      expect(middle.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });

      const start = await page(user, { last: 3, before: middle.pageInfo.startCursor });
      expect(titles(start)).toEqual(["T7"]);
      expect(start.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });

      const seen = [...start.edges, ...middle.edges, ...last.edges].map((edge) => edge.node.id);
      expect(new Set(seen).size).toBe(7);
    });

    it("should turn back with before from a page reached forward", async () => {
      const user = await newUser(server);
      await createTasks(user, 7);
      const first = await page(user, { first: 3 });
      const second = await page(user, { first: 3, after: first.pageInfo.endCursor });
      const back = await page(user, { last: 3, before: second.pageInfo.startCursor });
      expect(back.edges).toEqual(first.edges);
      expect(back.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    });

    it("should paginate within a status filter", async () => {
      const user = await newUser(server);
      const ids = await createTasks(user, 7);
      for (const index of [1, 3, 5]) {
        await ok(user, `mutation($id: ID!) { completeTask(id: $id) { id } }`, { id: ids[index] });
      }

      const pending1 = await page(user, { status: "PENDING", first: 2 });
      expect(titles(pending1)).toEqual(["T7", "T5"]);
      expect(pending1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
      const pending2 = await page(user, { status: "PENDING", first: 2, after: pending1.pageInfo.endCursor });
      expect(titles(pending2)).toEqual(["T3", "T1"]);
      expect(pending2.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      expect([...pending1.edges, ...pending2.edges].every((edge) => !edge.node.completed)).toBe(true);

      const completed1 = await page(user, { status: "COMPLETED", first: 2 });
      expect(titles(completed1)).toEqual(["T6", "T4"]);
      expect(completed1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
      const completed2 = await page(user, { status: "COMPLETED", first: 2, after: completed1.pageInfo.endCursor });
      expect(titles(completed2)).toEqual(["T2"]);
      expect(completed2.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      expect([...completed1.edges, ...completed2.edges].every((edge) => edge.node.completed)).toBe(true);

      const completedLast = await page(user, { status: "COMPLETED", last: 2 });
      expect(titles(completedLast)).toEqual(["T4", "T2"]);
      expect(completedLast.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      const completedBefore = await page(user, { status: "COMPLETED", last: 2, before: completedLast.pageInfo.startCursor });
      expect(titles(completedBefore)).toEqual(["T6"]);
      expect(completedBefore.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });

      const all = await page(user, { status: "ALL", first: 4 });
      expect(titles(all)).toEqual(["T7", "T6", "T5", "T4"]);
      expect(all.pageInfo.hasNextPage).toBe(true);
    });
  });

  describe("conversations", () => {
    const CONVERSATIONS = `query($first: Int, $after: String, $last: Int, $before: String) {
      conversations(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id title updatedAt } }
        ${PAGE_INFO}
      }
    }`;
    type ConversationNode = { id: string; title: string; updatedAt: string };

    async function page(user: TestUser, variables: Record<string, unknown>): Promise<Page<ConversationNode>> {
      const data = await ok<{ conversations: Page<ConversationNode> }>(user, CONVERSATIONS, variables);
      expectCursorsMatchEdges(data.conversations);
      return data.conversations;
    }

    const titles = (p: Page<ConversationNode>) => p.edges.map((edge) => edge.node.title);

    it("should list the most recently updated first, and move a conversation to the front when a message is appended", async () => {
      const user = await newUser(server);
      const ids: string[] = [];
      for (const title of ["C1", "C2", "C3"]) {
        const data = await ok<{ createConversation: { id: string } }>(
          user,
          `mutation($title: String) { createConversation(input: { title: $title }) { id } }`,
          { title },
        );
        ids.push(data.createConversation.id);
        await sleep(5);
      }
      const initial = await page(user, { first: 10 });
      expect(titles(initial)).toEqual(["C3", "C2", "C1"]);
      expect(initial.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });

      const c1 = rawId(ids[0] ?? "");
      const before = await server.db.conversation.findUniqueOrThrow({ where: { id: c1 } });
      await sleep(5);
      await server.db.$transaction(async (tx) => appendMessages(tx, user.id, c1, [{ role: "user", content: "hello" }]));
      const after = await server.db.conversation.findUniqueOrThrow({ where: { id: c1 } });
      expect(after.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
      expect(after.lastSeq).toBe(before.lastSeq + 1);

      const reordered = await page(user, { first: 10 });
      expect(titles(reordered)).toEqual(["C1", "C3", "C2"]);
      expect(reordered.edges[0]?.node.updatedAt).toBe(after.updatedAt.toISOString());

      // Paging over the new order.
      const p1 = await page(user, { first: 2 });
      expect(titles(p1)).toEqual(["C1", "C3"]);
      expect(p1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
      const p2 = await page(user, { first: 2, after: p1.pageInfo.endCursor });
      expect(titles(p2)).toEqual(["C2"]);
      expect(p2.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      const back = await page(user, { last: 2, before: p2.pageInfo.startCursor });
      expect(titles(back)).toEqual(["C1", "C3"]);
      expect(back.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });

      // Another append moves the next one to the front.
      await sleep(5);
      await server.db.$transaction(async (tx) => appendMessages(tx, user.id, rawId(ids[1] ?? ""), [{ role: "user", content: "again" }]));
      expect(titles(await page(user, { first: 10 }))).toEqual(["C2", "C1", "C3"]);
    });
  });

  describe("conversation messages", () => {
    const MESSAGES = `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
      conversation(id: $id) {
        messages(first: $first, after: $after, last: $last, before: $before) {
          edges { cursor node { id seq content role } }
          ${PAGE_INFO}
        }
      }
    }`;
    type MessageNode = { id: string; seq: number; content: string; role: string };
    let user: TestUser;
    let conversationId: string;

    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const seqs = (p: Page<MessageNode>) => p.edges.map((edge) => edge.node.seq);

    async function page(variables: Record<string, unknown>): Promise<Page<MessageNode>> {
      const data = await ok<{ conversation: { messages: Page<MessageNode> } }>(user, MESSAGES, { id: conversationId, ...variables });
      expectCursorsMatchEdges(data.conversation.messages);
      for (const edge of data.conversation.messages.edges) expect(edge.node.content).toBe(`message ${edge.node.seq}`);
      return data.conversation.messages;
    }

    beforeAll(async () => {
      user = await newUser(server);
      const data = await ok<{ createConversation: { id: string } }>(user, `mutation { createConversation { id } }`);
      conversationId = data.createConversation.id;
      const messages: NewMessage[] = range(1, 25).map((seq) => ({
        role: seq % 2 === 1 ? "user" : "assistant",
        content: `message ${seq}`,
      }));
      // Two appends, so seqs continue across transactions.
      await server.db.$transaction(async (tx) => appendMessages(tx, user.id, rawId(conversationId), messages.slice(0, 12)));
      await server.db.$transaction(async (tx) => appendMessages(tx, user.id, rawId(conversationId), messages.slice(12)));
    });

    it("should return all 25 messages in seq order", async () => {
      const all = await page({ first: 100 });
      expect(seqs(all)).toEqual(range(1, 25));
      expect(all.edges.map((edge) => edge.node.role).slice(0, 2)).toEqual(["USER", "ASSISTANT"]);
      expect(all.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
      // Without arguments: the first page (of the default size), still from seq 1 in order.
      const unpaged = await ok<{ conversation: { messages: Page<MessageNode> } }>(
        user,
        `query($id: ID!) { conversation(id: $id) { messages { edges { node { seq } } ${PAGE_INFO} } } }`,
        { id: conversationId },
      );
      const unpagedSeqs = unpaged.conversation.messages.edges.map((edge) => edge.node.seq);
      expect(unpagedSeqs.length).toBeGreaterThan(0);
      expect(unpagedSeqs).toEqual(range(1, unpagedSeqs.length));
      expect(unpaged.conversation.messages.pageInfo.hasNextPage).toBe(unpagedSeqs.length < 25);
    });

    it("should page forward with first and after", async () => {
      const p1 = await page({ first: 10 });
      expect(seqs(p1)).toEqual(range(1, 10));
      expect(p1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
      const p2 = await page({ first: 10, after: p1.pageInfo.endCursor });
      expect(seqs(p2)).toEqual(range(11, 20));
      expect(p2.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
      const p3 = await page({ first: 10, after: p2.pageInfo.endCursor });
      expect(seqs(p3)).toEqual(range(21, 25));
      expect(p3.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    });

    it("should give the newest five with last: 5", async () => {
      const newest = await page({ last: 5 });
      expect(seqs(newest)).toEqual(range(21, 25));
      expect(newest.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    });

    it("should page backward with last and before down to seq 1", async () => {
      const collected: number[][] = [];
      let before: string | null = null;
      for (let step = 0; step < 10; step += 1) {
        const current: Page<MessageNode> = await page({ last: 5, before });
        collected.unshift(seqs(current));
        const isOldest = seqs(current)[0] === 1;
        expect(current.pageInfo).toMatchObject({ hasNextPage: before !== null, hasPreviousPage: !isOldest });
        if (!current.pageInfo.hasPreviousPage) break;
        before = current.pageInfo.startCursor;
      }
      expect(collected).toEqual([range(1, 5), range(6, 10), range(11, 15), range(16, 20), range(21, 25)]);
    });

    it("should continue forward from a cursor found by paging backward", async () => {
      const newest = await page({ last: 5 });
      const older = await page({ last: 3, before: newest.pageInfo.startCursor });
      expect(seqs(older)).toEqual([18, 19, 20]);
      expect(older.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
      const forward = await page({ first: 2, after: older.pageInfo.endCursor });
      expect(seqs(forward)).toEqual([21, 22]);
    });
  });
});
