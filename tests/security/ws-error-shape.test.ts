import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { developmentHttp, newUser, productionHttp, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";

type FormattedError = { message: string; locations?: unknown; path?: (string | number)[]; extensions?: Record<string, unknown> };

function aliases(count: number): string {
  return `{ ${Array.from({ length: count }, (_, i) => `a${i}: tasks(first: 1) { edges { node { id } } }`).join(" ")} }`;
}

/** Documents refused before execution, and one refused while executing (a variable of the wrong type). */
const BAD_DOCUMENTS: { name: string; query: string; variables?: Record<string, unknown>; operationName?: string }[] = [
  { name: "a parse error", query: "{ tasks(first: 1) {" },
  { name: "a validation error (unknown field)", query: "{ tasks(first: 1) { edges { node { nope } } } }" },
  { name: "a validation error (unknown argument)", query: "{ tasks(frist: 1) { edges { node { id } } } }" },
  { name: "the alias limit", query: aliases(16) },
  { name: "the token limit", query: aliases(300) },
  { name: "an unknown operation name", query: "query A { tasks(first: 1) { edges { node { id } } } }", operationName: "B" },
  { name: "two operations and no operation name", query: "query A { __typename } query B { __typename }" },
  { name: "a variable of the wrong type", query: "query ($n: Int) { tasks(first: $n) { edges { node { id } } } }", variables: { n: "ten" } },
];

/**
 * Finding 11 of issue 20: what graphql-ws answered itself (parse and
 * validation errors) carried GRAPHQL_PARSE_FAILED and `extensions.http`,
 * where HTTP answers BAD_USER_INPUT without transport details. The same
 * document must get the same errors over both transports.
 */
describe.each([
  ["development", developmentHttp()],
  ["production", productionHttp()],
])("errors before execution over graphql-ws, in %s", (_mode, http) => {
  let server: TestServer;
  let user: TestUser;
  let client: TestWsClient;

  beforeAll(async () => {
    server = await startTestServer({ http });
    user = await newUser(server, "ws-errors");
    client = wsClient(server.wsUrl, user.token);
  });
  afterAll(async () => {
    await client?.dispose();
    await server?.close();
  });

  it.each(BAD_DOCUMENTS)(
    "should answer $name with the same errors as HTTP, BAD_USER_INPUT and no transport details",
    async ({ name: _name, ...document }) => {
      const response = await fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` },
        body: JSON.stringify(document),
      });
      const overHttp = ((await response.json()) as { errors: FormattedError[] }).errors;
      const overWs = await wsErrors(client, document);

      expect(overHttp.length).toBeGreaterThan(0);
      for (const error of overHttp) expect(error.extensions?.code).toBe("BAD_USER_INPUT");
      expect(overWs).toEqual(overHttp);
      for (const error of overWs) expect(error.extensions).not.toHaveProperty("http");
    },
  );
});

/** The errors graphql-ws answers: an `error` message, or the errors of a `next` result. */
async function wsErrors(
  client: TestWsClient,
  document: { query: string; variables?: Record<string, unknown>; operationName?: string },
): Promise<FormattedError[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no answer over graphql-ws within 10 s")), 10_000);
    client.client.subscribe(
      { query: document.query, variables: document.variables, operationName: document.operationName },
      {
        next: (result) => {
          clearTimeout(timer);
          resolve((result.errors ?? []) as FormattedError[]);
        },
        error: (error) => {
          clearTimeout(timer);
          resolve(error as FormattedError[]);
        },
        complete: () => {},
      },
    );
  });
}
