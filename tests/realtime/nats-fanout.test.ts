import { randomUUID } from "node:crypto";
import { connect, headers } from "@nats-io/transport-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import { createLogger } from "../../src/lib/logger.js";
import { NatsTransport } from "../../src/realtime/nats-transport.js";
import { natsNames } from "../../src/realtime/nats-subjects.js";
import { userChannel, type Notification } from "../../src/realtime/protocol.js";
import { newUser } from "../helpers/server.js";
import { natsServerAvailable } from "../helpers/nats.js";
import { natsRig, until, type NatsRig } from "./nats-support.js";
import {
  ADD_TASK,
  appendVia,
  live,
  MESSAGE_ADDED,
  newConversation,
  nextMessage,
  nextTaskChange,
  TASK_CHANGED,
  UPDATE_TASK,
  type LiveServer,
  type TaskView,
} from "./support.js";

/**
 * Two app instances on the nats transport (issue 27), a database and a
 * nats-server of the test's own: what is committed through one instance, or
 * by raw SQL, reaches subscribers of the other through the outbox, the relay
 * and NATS, and never through pg_notify.
 */
describe.runIf(natsServerAvailable())("the nats transport between two instances", () => {
  let rig: NatsRig;
  let a: LiveServer;
  let b: LiveServer;

  beforeAll(async () => {
    rig = await natsRig();
    a = await rig.instance();
    b = await rig.instance();
    await until(() => a.app.transport.connected && b.app.transport.connected, "both instances are on NATS");
  });
  afterAll(async () => {
    await rig?.dispose();
  });

  it("should deliver to a subscriber on one instance a write made through the other", async () => {
    const user = await newUser(a);
    const conversation = await newConversation(a.db, user.id);
    const client = a.connect(user.token);
    const tasks = await live(a, client, TASK_CHANGED);
    const messages = await live(a, client, MESSAGE_ADDED, { conversationId: conversation.globalId });

    const onB = (query: string, variables: Record<string, unknown>) => b.request<Record<string, any>>(query, variables, user.token);
    const task = (await onB(ADD_TASK, { title: "Made on B" })).data!.addTask as TaskView;
    expect(await nextTaskChange(tasks)).toEqual({ kind: "CREATED", taskId: task.id, task });
    const renamed = (await onB(UPDATE_TASK, { input: { id: task.id, title: "Renamed on B" } })).data!.updateTask as TaskView;
    expect(await nextTaskChange(tasks)).toEqual({ kind: "UPDATED", taskId: task.id, task: renamed });
    await appendVia(b.db, user.id, conversation.id, ["written by B"]);
    expect(await nextMessage(messages)).toMatchObject({ seq: 1, content: "written by B" });
    tasks.dispose();
    messages.dispose();
  });

  it("should deliver to a subscriber a write made through raw SQL, with no NOTIFY sent", async () => {
    const user = await newUser(b);
    const tasks = await live(b, b.connect(user.token), TASK_CHANGED);
    // A LISTEN on the user's channel: with nats, the triggers must not notify as well.
    const ear = new pg.Client({ connectionString: rig.databaseUrl });
    await ear.connect();
    const heard: string[] = [];
    ear.on("notification", (note) => heard.push(note.payload ?? ""));
    await ear.query(`LISTEN "${userChannel(user.id)}"`);
    try {
      const { rows } = await rig.admin.query<{ id: string }>(`INSERT INTO tasks (user_id, title) VALUES ($1, 'Inserted by SQL') RETURNING id`, [
        user.id,
      ]);
      const change = await nextTaskChange(tasks);
      expect(change).toMatchObject({ kind: "CREATED", taskId: toGlobalId("Task", rows[0]!.id), task: { title: "Inserted by SQL" } });
      // A round trip on the LISTEN connection after the commit: a NOTIFY would have arrived before its answer.
      await ear.query("SELECT 1");
      expect(heard).toEqual([]);
      await until(async () => (await rig.outboxSize()) === 0, "the relay has drained the outbox");
    } finally {
      await ear.end();
      tasks.dispose();
    }
  });

  it("should have exactly one relay leading at a time", async () => {
    await until(() => [a, b].some((server) => relayOf(server).leading), "a relay leads");
    expect([a, b].filter((server) => relayOf(server).leading)).toHaveLength(1);
  });

  it("should route every realtime trigger through todo_realtime_send, so no trigger notifies and writes the outbox", async () => {
    const { rows } = await rig.admin.query<{ name: string }>(
      `SELECT p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prosrc ILIKE '%pg_notify%'`,
    );
    expect(rows.map((row) => row.name)).toEqual(["todo_realtime_send"]);
  });

  it("should answer /ready with 200 while NATS is connected", async () => {
    expect((await fetch(`${a.baseUrl}/ready`)).status).toBe(200);
  });
});

/**
 * The transport alone on the rig's NATS: a wake-up that reaches it twice (a
 * relay that died between publish and delete, and its successor publishing
 * the row again) is handed to subscribers once.
 */
describe.runIf(natsServerAvailable())("the nats transport's duplicate filter", () => {
  let rig: NatsRig;
  let transport: NatsTransport;

  beforeAll(async () => {
    rig = await natsRig();
    transport = new NatsTransport({ settings: rig.transport, connectionString: rig.databaseUrl, logger: createLogger("silent") });
    await transport.start();
  });
  afterAll(async () => {
    await transport?.close();
    await rig?.dispose();
  });

  it("should hand a wake-up published twice under one message id to its handlers once", async () => {
    const channel = userChannel(`dup-${randomUUID()}`);
    const heard: Notification[] = [];
    await transport.listen(channel, (note) => heard.push(note));
    const nc = await connect({ servers: rig.transport.servers });
    try {
      const subject = natsNames(rig.transport.subjectPrefix).subjectOf(channel);
      const payload = (taskId: string) => JSON.stringify({ k: "task", op: "INSERT", i: taskId });
      const first = randomUUID();
      const second = randomUUID();
      for (const [id, taskId] of [
        ["901", first],
        ["901", first],
        ["902", second],
      ] as const) {
        const h = headers();
        h.set("Nats-Msg-Id", id);
        nc.publish(subject, payload(taskId), { headers: h });
      }
      await nc.flush();
      await until(() => heard.length >= 2, "both distinct wake-ups arrive");
      // A last wake-up behind the others: once it is heard, nothing else is on its way.
      const h = headers();
      h.set("Nats-Msg-Id", "903");
      nc.publish(subject, payload(randomUUID()), { headers: h });
      await until(() => heard.length >= 3, "the last wake-up arrives");
      expect(heard.map((note) => (note.kind === "task" ? note.taskId : ""))).toEqual([first, second, expect.any(String)]);
    } finally {
      await nc.close();
    }
  });
});

function relayOf(server: LiveServer): { leading: boolean } {
  return (server.app.transport as NatsTransport).relay;
}
