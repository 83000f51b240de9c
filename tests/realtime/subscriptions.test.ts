import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUser, startTestServer, waitForSubscriptions, type TestServer } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";

describe("subscriptions over graphql-ws", () => {
  let server: TestServer;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server.close();
  });

  it("should push a task created over HTTP to a taskChanged subscriber", async () => {
    const user = await newUser(server);
    const client = wsClient(server.wsUrl, user.token);
    clients.push(client);
    const before = server.app.realtime.establishedCount;
    const sub = client.subscribe(`subscription { taskChanged { kind taskId task { id title completed } } }`);
    await waitForSubscriptions(server, before);
    const added = await user.gql(`mutation { addTask(input: { title: "Pushed" }) { id } }`);
    const event = await sub.next();
    expect(event.errors).toBeUndefined();
    expect(event.data?.taskChanged).toEqual({
      kind: "CREATED",
      taskId: added.data?.addTask.id,
      task: { id: added.data?.addTask.id, title: "Pushed", completed: false },
    });
    sub.dispose();
  });
});
