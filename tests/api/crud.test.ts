import { afterAll, beforeAll, describe } from "vitest";
import { describeCrud } from "../helpers/crud-scenarios.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

describe("CRUD over the pg driver", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  describeCrud("tasks and conversations", () => server);
});
