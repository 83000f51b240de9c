import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import type { DeferredNatsTransport } from "../../src/realtime/create-transport.js";
import { runScript, stopAll, type Program } from "../helpers/process.js";
import { newUser } from "../helpers/server.js";
import { TEST_JWT_SECRET } from "../helpers/tokens.js";
import type { QueuedSubscription } from "../helpers/ws-client.js";
import { natsServerAvailable } from "../helpers/nats.js";
import { natsRig, until, type NatsRig } from "./nats-support.js";
import { live, TASK_CHANGED, type LiveServer, type TaskChangeView } from "./support.js";

/** Tasks written in all, and after how many of them the leader dies. */
const WRITES = 150;
const KILL_AFTER = 50;
/** Between writes of the stream, so that it is still running when the leader dies, and after. */
const WRITE_GAP_MS = 10;
/** Issue 27: another instance takes over within 5 s of the leader dying. */
const TAKEOVER_BOUND_MS = 5000;

/**
 * The relay's leader is a real process (src/main.ts on the nats transport):
 * SIGKILLed in the middle of a stream of commits, it releases nothing itself;
 * Postgres frees its advisory lock when its session dies, and the other
 * instance's candidate takes the lock and drains the outbox, so the subscriber
 * (on that other instance) gets every task exactly once.
 */
describe.runIf(natsServerAvailable())("the nats relay's leader killed mid-stream", () => {
  const started: Program[] = [];
  let rig: NatsRig;
  let leader: Program;
  let survivor: LiveServer;

  beforeAll(async () => {
    rig = await natsRig();
    leader = runScript(
      "src/main.ts",
      {
        env: {
          PORT: "0",
          LOG_LEVEL: "info",
          WEB_UI: "false",
          DATABASE_URL: rig.databaseUrl,
          AUTH_JWT_SECRET: TEST_JWT_SECRET,
          REALTIME_TRANSPORT: "nats",
          NATS_URL: rig.transport.servers.join(","),
          NATS_SUBJECT_PREFIX: rig.transport.subjectPrefix,
        },
      },
      started,
    );
    await leader.waitFor(/outbox relay: this instance leads/, 60_000);
    // Started once the child leads: its candidate waits for the lock.
    survivor = await rig.instance();
    await until(() => survivor.app.transport.connected, "the survivor is on NATS");
  });
  afterAll(async () => {
    await stopAll(started);
    await rig?.dispose();
  });

  it("should have another instance take the lock within 5 s and deliver every task once", async () => {
    expect(relayOf(survivor).leading).toBe(false);
    const user = await newUser(survivor);
    const sub = await live(survivor, survivor.connect(user.token), TASK_CHANGED);
    const written: string[] = [];
    let deliveredBeforeKill = 0;
    let takeover: Promise<number> | undefined;
    for (let i = 0; i < WRITES; i += 1) {
      const { rows } = await rig.admin.query<{ id: string }>(`INSERT INTO tasks (user_id, title) VALUES ($1, $2) RETURNING id`, [
        user.id,
        `task ${i}`,
      ]);
      written.push(toGlobalId("Task", rows[0]!.id));
      if (i === KILL_AFTER - 1) {
        // Mid-stream: the leader has been publishing this stream already.
        await until(() => sub.pending().length > 0, "the leader has published some of the stream");
        deliveredBeforeKill = sub.pending().length;
        leader.child.kill("SIGKILL");
        const killedAt = performance.now();
        // Watched while the stream goes on.
        takeover = until(() => relayOf(survivor).leading, "the survivor leads", TAKEOVER_BOUND_MS * 2).then(() => performance.now() - killedAt);
      }
      await new Promise((resolve) => setTimeout(resolve, WRITE_GAP_MS));
    }
    const takeoverMs = await takeover!;

    const received: TaskChangeView[] = [];
    while (received.length < WRITES) received.push(await nextChange(sub));
    expect(await leader.exited).toMatchObject({ signal: "SIGKILL" });
    expect(received.every((change) => change.kind === "CREATED")).toBe(true);
    expect(received.map((change) => change.taskId).sort()).toEqual([...written].sort());
    // Nothing more on its way: a last write arrives next, with no duplicate before it.
    const { rows } = await rig.admin.query<{ id: string }>(`INSERT INTO tasks (user_id, title) VALUES ($1, 'last') RETURNING id`, [user.id]);
    expect((await nextChange(sub)).taskId).toBe(toGlobalId("Task", rows[0]!.id));
    expect(takeoverMs).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
    // Both did part of the work: the dead leader before, the survivor after.
    expect(deliveredBeforeKill).toBeGreaterThan(0);
    expect(relayOf(survivor).publishedCount).toBeGreaterThan(0);
    console.info(`relay takeover ${Math.round(takeoverMs)} ms after SIGKILL; ${deliveredBeforeKill} of ${WRITES} delivered before it`);
    await until(async () => (await rig.outboxSize()) === 0, "the outbox is drained");
    sub.dispose();
  });
});

async function nextChange(sub: QueuedSubscription): Promise<TaskChangeView> {
  const result = await sub.next(15_000);
  if (result.errors) throw new Error(`taskChanged errored: ${JSON.stringify(result.errors)}`);
  return result.data?.taskChanged as TaskChangeView;
}

function relayOf(server: LiveServer): { leading: boolean; publishedCount: number } {
  return (server.app.transport as DeferredNatsTransport).relay;
}
