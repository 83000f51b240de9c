import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import { messagesIn, sendMessage, startChatRig, type ChatRig } from "../helpers/chat.js";
import { textReply, toolCallReply } from "../helpers/fake-cohere.js";
import { newUser } from "../helpers/server.js";

/**
 * The assistant in the user's time zone: the system message tells the model
 * the user's local date, time, offset and zone (a fixed clock here), and the
 * tools read and write local times with offsets.
 */

// Saturday 28 March 2026, 23:30 UTC: already Sunday 00:30 in Berlin (CET, UTC+1), the night its clocks spring forward.
const NOW = new Date("2026-03-28T23:30:00Z");

describe("the assistant in the user's time zone", () => {
  let rig: ChatRig;

  beforeAll(async () => {
    rig = await startChatRig({ assistant: { clock: () => NOW, approvalPolicy: "none" } });
  });
  afterAll(async () => {
    await rig?.server.close();
    await rig?.fake.close();
  });

  it("should tell the model the user's local date and time with its offset and zone, and read 'tomorrow at 5pm' as local", async () => {
    const user = await newUser(rig.server, "tz-chat");
    expect((await user.gql(`mutation { updateViewer(input: { timezone: "Europe/Berlin" }) { timezone } }`)).errors).toBeUndefined();
    rig.fake.enqueue(
      toolCallReply([
        { id: "call_add", name: "add_task", args: { title: "Dentist", due: "2026-03-30T17:00", priority: "high", labels: ["health"] } },
        { id: "call_bad", name: "add_task", args: { title: "Broken", due: "next tuesday" } },
        { id: "call_rule", name: "add_task", args: { title: "Water the plants", due: "2026-03-30T08:00", recurrence: "FREQ=WEEKLY;BYDAY=MO,TH" } },
      ]),
      textReply("Done."),
    );
    const sent = await sendMessage(user, { content: "Dentist tomorrow at 5pm; water the plants every Monday and Thursday" });
    expect(sent.errors).toBeUndefined();

    const system = rig.fake.requests.at(-2)?.body.messages[0];
    expect(system?.role).toBe("system");
    expect(String(system?.content)).toContain(
      "The user's time zone is Europe/Berlin. It is now Sunday 2026-03-29, 00:30 there (2026-03-29T00:30:00+01:00).",
    );

    const rows = await rig.server.db.task.findMany({ where: { userId: user.id }, orderBy: { title: "asc" } });
    expect(rows.map((row) => [row.title, row.dueAt?.toISOString(), row.recurrence])).toEqual([
      // Monday 17:00 in Berlin is 15:00 UTC: summer time (UTC+2) began on Sunday.
      ["Dentist", "2026-03-30T15:00:00.000Z", null],
      ["Water the plants", "2026-03-30T06:00:00.000Z", "FREQ=WEEKLY;BYDAY=MO,TH"],
    ]);
    const conversationId = sent.data!.sendMessage.conversation.id;
    const results = new Map(
      (await messagesIn(rig.server.db, conversationId)).filter((m) => m.role === "tool").map((m) => [m.toolCallId, JSON.parse(m.content)]),
    );
    expect(results.get("call_add")).toMatchObject({ due: "2026-03-30T17:00:00+02:00", priority: "high", labels: ["health"] });
    expect(results.get("call_bad")).toEqual({ error: expect.stringContaining("due:") });

    // Completing it through the tool moves it on to Thursday, same local hour.
    const plants = rows.find((row) => row.title === "Water the plants")!;
    rig.fake.enqueue(
      toolCallReply([{ id: "call_done", name: "complete_task", args: { task_id: toGlobalId("Task", plants.id) } }]),
      textReply("Watered."),
    );
    expect((await sendMessage(user, { conversationId, content: "I watered them" })).errors).toBeUndefined();
    const after = await rig.server.db.task.findUniqueOrThrow({ where: { id: plants.id } });
    expect(after).toMatchObject({ completed: false });
    expect(after.dueAt?.toISOString()).toBe("2026-04-02T06:00:00.000Z");
    expect(after.completedAt).not.toBeNull();
  });

  it("should read a due time without an offset in the user's zone, and refuse a filter bound without one, naming it", async () => {
    const user = await newUser(rig.server, "tz-local");
    expect((await user.gql(`mutation { updateViewer(input: { timezone: "Europe/Berlin" }) { timezone } }`)).errors).toBeUndefined();
    rig.fake.enqueue(
      toolCallReply([{ id: "call_local", name: "add_task", args: { title: "Standup", due: "2026-12-08T17:00:00" } }]),
      toolCallReply([{ id: "call_bound", name: "search_tasks", args: { due_before: "2026-12-09T00:00:00" } }]),
      textReply("Done."),
    );
    const sent = await sendMessage(user, { content: "Standup on the 8th at five" });
    expect(sent.errors).toBeUndefined();

    // 17:00 in Berlin in December (CET, UTC+1) is 16:00 UTC, not the server's 17:00.
    const row = await rig.server.db.task.findFirstOrThrow({ where: { userId: user.id } });
    expect(row.dueAt?.toISOString()).toBe("2026-12-08T16:00:00.000Z");
    const results = new Map(
      (await messagesIn(rig.server.db, sent.data!.sendMessage.conversation.id))
        .filter((m) => m.role === "tool")
        .map((m) => [m.toolCallId, JSON.parse(m.content)]),
    );
    expect(results.get("call_local")).toMatchObject({ title: "Standup", due: "2026-12-08T17:00:00+01:00" });
    expect(results.get("call_bound")).toEqual({ error: expect.stringContaining("due_before: needs an offset, e.g. Z or +01:00") });
  });
});
