import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUser, startTestServer, type TestServer } from "./helpers/server.js";

describe("smoke", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("should add and list a task", async () => {
    const user = await newUser(server);
    const added = await user.gql(`mutation { addTask(input: { title: "Buy milk" }) { id title completed } }`);
    expect(added.errors).toBeUndefined();
    const listed = await user.gql(`{ tasks { edges { node { id title } } } }`);
    expect(listed.data?.tasks.edges).toEqual([{ node: { id: added.data?.addTask.id, title: "Buy milk" } }]);
  });
});
