import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ConversationChangeEvent } from "../../src/realtime/hub.js";
import { StreamEnd } from "../../src/realtime/subscriber.js";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { startFakeCohere, textReply, wordChunks, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser } from "../helpers/server.js";
import { MESSAGE_STREAM } from "../chat/support.js";
import {
  adminClient,
  appendVia,
  CONVERSATION_CHANGED,
  live,
  newConversation,
  nextConversationChange,
  startLiveServer,
  type ConversationChangeView,
  within,
  type LiveServer,
} from "./support.js";

/**
 * conversationChanged: the conversation list, live. A real server, real
 * graphql-ws clients, writes through the API, the chat loop and raw SQL.
 */

const CREATE = /* GraphQL */ `
  mutation Create($title: String) {
    createConversation(input: { title: $title }) {
      id
      title
      updatedAt
    }
  }
`;
const RENAME = /* GraphQL */ `
  mutation Rename($input: UpdateConversationInput!) {
    updateConversation(input: $input) {
      id
      title
      updatedAt
    }
  }
`;
const DELETE = /* GraphQL */ `
  mutation Delete($id: ID!) {
    deleteConversation(id: $id)
  }
`;

type ConversationView = NonNullable<ConversationChangeView["conversation"]>;

describe("conversationChanged", () => {
  let server: LiveServer;
  let fake: FakeCohere;
  let admin: pg.Client;

  beforeAll(async () => {
    fake = await startFakeCohere();
    server = await startLiveServer({ assistant: cohereAssistant(fake, { streamFlushMs: 5 }) });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    await server.close();
    await fake.close();
    await admin.end();
  });

  it("should push a conversation created, renamed, given a new message and deleted through the API, each once", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), CONVERSATION_CHANGED);

    const created = (await user.gql<{ createConversation: ConversationView }>(CREATE, { title: "Plans" })).data!.createConversation;
    expect(await nextConversationChange(sub)).toEqual({ kind: "CREATED", conversationId: created.id, conversation: created });

    const renamed = (await user.gql<{ updateConversation: ConversationView }>(RENAME, { input: { id: created.id, title: "Holiday plans" } })).data!
      .updateConversation;
    expect(await nextConversationChange(sub)).toEqual({ kind: "UPDATED", conversationId: created.id, conversation: renamed });
    expect(Date.parse(renamed.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt));

    // An unchanged title changes nothing and pushes nothing: the next event is the new message's.
    const same = await user.gql<{ updateConversation: ConversationView }>(RENAME, { input: { id: created.id, title: " Holiday plans " } });
    expect(same.data!.updateConversation).toEqual(renamed);
    await appendVia(server.db, user.id, parseRaw(created.id), ["book the train"]);
    const activity = await nextConversationChange(sub);
    expect(activity).toMatchObject({ kind: "UPDATED", conversationId: created.id, conversation: { title: "Holiday plans" } });
    expect(Date.parse(activity.conversation!.updatedAt)).toBeGreaterThan(Date.parse(renamed.updatedAt));

    const deleted = await user.gql<{ deleteConversation: string }>(DELETE, { id: created.id });
    expect(deleted.data!.deleteConversation).toBe(created.id);
    expect(await nextConversationChange(sub)).toEqual({ kind: "DELETED", conversationId: created.id, conversation: null });
    expect(sub.pending()).toEqual([]);
    sub.dispose();
  });

  it("should push conversations inserted, renamed and deleted by raw SQL", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), CONVERSATION_CHANGED);
    const { rows } = await admin.query<{ id: string }>("INSERT INTO conversations (user_id, title) VALUES ($1, 'from psql') RETURNING id", [user.id]);
    const id = toGlobalId("Conversation", rows[0]!.id);
    expect(await nextConversationChange(sub)).toMatchObject({ kind: "CREATED", conversationId: id, conversation: { id, title: "from psql" } });
    await admin.query("UPDATE conversations SET title = 'renamed in psql' WHERE id = $1", [rows[0]!.id]);
    expect(await nextConversationChange(sub)).toMatchObject({ kind: "UPDATED", conversationId: id, conversation: { title: "renamed in psql" } });
    await admin.query("DELETE FROM conversations WHERE id = $1", [rows[0]!.id]);
    expect(await nextConversationChange(sub)).toEqual({ kind: "DELETED", conversationId: id, conversation: null });
    sub.dispose();
  });

  it("should never push another user's conversations, and tell each side of a conversation moved between users by raw SQL", async () => {
    const alice = await newUser(server, "alice");
    const mallory = await newUser(server, "mallory");
    const theirs = await live(server, server.connect(mallory.token), CONVERSATION_CHANGED);
    const mine = await live(server, server.connect(alice.token), CONVERSATION_CHANGED);

    // Each of Alice's changes reaches Alice (one at a time: changes read together collapse into their latest state).
    const secret = (await alice.gql<{ createConversation: ConversationView }>(CREATE, { title: "alice's secret" })).data!.createConversation;
    expect((await nextConversationChange(mine)).kind).toBe("CREATED");
    await alice.gql(RENAME, { input: { id: secret.id, title: "still secret" } });
    expect((await nextConversationChange(mine)).kind).toBe("UPDATED");
    await appendVia(server.db, alice.id, parseRaw(secret.id), ["private words"]);
    expect((await nextConversationChange(mine)).kind).toBe("UPDATED");

    // Mallory's own change is the first and only thing Mallory hears.
    const own = (await mallory.gql<{ createConversation: ConversationView }>(CREATE, { title: "mallory's" })).data!.createConversation;
    expect(await nextConversationChange(theirs)).toMatchObject({ kind: "CREATED", conversationId: own.id });

    await admin.query("UPDATE conversations SET user_id = $2 WHERE id = $1", [parseRaw(secret.id), mallory.id]);
    expect(await nextConversationChange(mine)).toEqual({ kind: "DELETED", conversationId: secret.id, conversation: null });
    expect(await nextConversationChange(theirs)).toMatchObject({
      kind: "UPDATED",
      conversationId: secret.id,
      conversation: { title: "still secret" },
    });
    expect(mine.pending()).toEqual([]);
    expect(theirs.pending()).toEqual([]);
    mine.dispose();
    theirs.dispose();
  });

  it("should wake the list once per settled message of a turn, not once per streamed flush of its answer", async () => {
    const user = await newUser(server);
    const conversation = (await user.gql<{ createConversation: ConversationView }>(CREATE, { title: "Streamed" })).data!.createConversation;
    const client = server.connect(user.token);
    const list = await live(server, client, CONVERSATION_CHANGED);
    const stream = client.subscribe(MESSAGE_STREAM, { conversationId: conversation.id });
    const answer = Array.from({ length: 24 }, (_, index) => `word${index}`).join(" ");
    fake.enqueue(textReply(answer, { chunks: wordChunks(answer), eventDelayMs: 15 }));
    const sent = await user.gql(`mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { reply { content } } }`, {
      input: { conversationId: conversation.id, content: "stream me a long answer" },
    });
    expect(sent.errors).toBeUndefined();
    expect(sent.data!.sendMessage.reply.content).toBe(answer);

    // A rename after the turn marks the end of what the turn pushed.
    await user.gql(RENAME, { input: { id: conversation.id, title: "after the turn" } });
    const duringTurn: ConversationChangeView[] = [];
    for (;;) {
      const event = await nextConversationChange(list);
      if (event.conversation?.title === "after the turn") break;
      duringTurn.push(event);
    }
    // The user message and the settled answer: two versions of the row at most (one if read together).
    expect(duringTurn.length).toBeGreaterThanOrEqual(1);
    expect(duringTurn.length).toBeLessThanOrEqual(2);
    expect(duringTurn.every((event) => event.kind === "UPDATED")).toBe(true);
    // While the answer was written in many flushes.
    expect(stream.pending().length).toBeGreaterThanOrEqual(5);
    list.dispose();
    stream.dispose();
  });
});

function parseRaw(globalId: string): string {
  return parseId(globalId, "id", "Conversation");
}

describe("a conversationChanged subscriber that stops reading", () => {
  it("should be ended with SUBSCRIPTION_OVERFLOW past its bound, like every other subscription", async () => {
    const server = await startLiveServer({ realtime: { bufferLimit: 5 } });
    try {
      const user = await newUser(server);
      const realtime = server.app.realtime;
      const before = realtime.establishedCount;
      const changes = realtime.conversationChanges(user.id);
      // A stream opens when it is first pulled, as graphql-ws and SSE do at once.
      const first = changes.next();
      await vi.waitFor(() => expect(realtime.establishedCount, "established subscriptions").toBe(before + 1), { timeout: 10_000, interval: 10 });
      for (let index = 0; index < 12; index += 1) await newConversation(server.db, user.id, `unread ${index}`);
      expect(((await first).value as ConversationChangeEvent).kind).toBe("CREATED");
      let end: StreamEnd | undefined;
      for (let reads = 0; reads < 12 && end === undefined; reads += 1) {
        const { value, done } = await within(changes.next(), 10_000, "the next event or the end");
        if (done) break;
        if (value instanceof StreamEnd) end = value;
      }
      expect(end?.error).toMatchObject({
        code: "SUBSCRIPTION_OVERFLOW",
        message: expect.stringContaining("conversationChanged fell more than 5 events behind"),
      });
      expect((await changes.next()).done).toBe(true);
      await vi.waitFor(() => expect(realtime.admission.heldBy(user.id)).toBe(0), { timeout: 10_000, interval: 10 });
    } finally {
      await server.close();
    }
  });
});
