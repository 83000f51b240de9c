import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { databaseUrl } from "../helpers/db.js";
import { setTimeout as sleep } from "node:timers/promises";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { cohereAssistant, startChatRig } from "../helpers/chat.js";
import { capturingLogger, newUser, startTestServer, type TestServer } from "../helpers/server.js";
import { deferred, SEND_LIVE, type LivePayload } from "./support.js";

describe("the conversation's lease and a turn's clock", () => {
  const closers: (() => Promise<unknown>)[] = [];

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  async function rig(overrides: Parameters<typeof startChatRig>[0] = {}): Promise<{ fake: FakeCohere; server: TestServer }> {
    const { fake, server } = await startChatRig(overrides);
    closers.push(
      () => fake.close(),
      () => server.close(),
    );
    return { fake, server };
  }

  it("should start a turn's clock once it holds the lease, not while it waits for the turn before it", async () => {
    const fake = await startFakeCohere();
    closers.push(() => fake.close());
    // `a` runs a long turn; `b`, whose turns may take 3 s, sends to the same conversation meanwhile.
    const a = await startTestServer({ assistant: cohereAssistant(fake, { turnTimeoutMs: 60_000 }) });
    closers.push(() => a.close());
    const b = await startTestServer({ assistant: cohereAssistant(fake, { turnTimeoutMs: 3000 }) });
    closers.push(() => b.close());
    const user = await newUser(a);
    const created = await user.gql<{ createConversation: { id: string } }>(`mutation { createConversation { id } }`);
    const conversationId = created.data!.createConversation.id;
    const held = deferred();
    fake.enqueue(textReply("The long one.", { gate: { afterDeltas: 1, until: held.promise } }), textReply("The quick one."));
    const first = user.gql<{ sendMessage: LivePayload }>(SEND_LIVE, { input: { conversationId, content: "long" } });
    await vi.waitFor(async () => expect(await a.db.message.count({ where: { userId: user.id, role: "assistant" } }), "assistant messages").toBe(1), {
      timeout: 15_000,
      interval: 20,
    });

    const second = b.request<{ sendMessage: LivePayload }>(SEND_LIVE, { input: { conversationId, content: "quick" } }, user.token);
    // The second send waits for the lease longer than its own turn may take.
    await sleep(4500);
    held.resolve();

    for (const response of [await first, await second]) {
      expect(response.errors).toBeUndefined();
      expect(response.data!.sendMessage.turn).toMatchObject({ status: "COMPLETED", stopCode: null });
    }
    expect((await second).data!.sendMessage.reply?.content).toBe("The quick one.");
  });

  describe("when giving the lease back fails", () => {
    let admin: pg.Client;
    const title = `release-refused-${randomUUID()}`;

    beforeAll(async () => {
      admin = new pg.Client({ connectionString: databaseUrl() });
      await admin.connect();
      // A real failure of the release statement, for this one conversation only.
      await admin.query(`
        CREATE OR REPLACE FUNCTION test_refuse_lease_release() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.title = '${title}' AND OLD.turn_lease_id IS NOT NULL AND NEW.turn_lease_id IS NULL THEN
            RAISE EXCEPTION 'lease release refused for the test';
          END IF;
          RETURN NEW;
        END $$`);
      await admin.query(`
        CREATE TRIGGER test_refuse_lease_release BEFORE UPDATE ON conversations
        FOR EACH ROW EXECUTE FUNCTION test_refuse_lease_release()`);
    });
    afterAll(async () => {
      await admin.query(`DROP TRIGGER IF EXISTS test_refuse_lease_release ON conversations`);
      await admin.query(`DROP FUNCTION IF EXISTS test_refuse_lease_release()`);
      await admin.end();
    });

    it("should still answer a successful turn, and log the failure (the lease expires by itself)", async () => {
      const { logger, lines } = capturingLogger();
      const { fake, server } = await rig({ logger });
      const user = await newUser(server);
      const created = await user.gql<{ createConversation: { id: string } }>(
        `mutation C($t: String) { createConversation(input: { title: $t }) { id } }`,
        {
          t: title,
        },
      );
      fake.enqueue(textReply("Answered all the same."));

      const response = await user.gql<{ sendMessage: LivePayload }>(SEND_LIVE, {
        input: { conversationId: created.data!.createConversation.id, content: "hello" },
      });

      expect(response.errors).toBeUndefined();
      expect(response.data!.sendMessage.turn.status).toBe("COMPLETED");
      expect(response.data!.sendMessage.reply?.content).toBe("Answered all the same.");
      expect(lines.join("\n")).toContain("releasing the conversation's lease failed");
    });
  });
});
