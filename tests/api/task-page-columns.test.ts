import { getNamedType, GraphQLObjectType, isLeafType } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listTaskPage } from "../../src/domain/task-list.js";
import { checkTaskFilter } from "../../src/domain/task-query.js";
import { taskOrder, type TaskOrderField } from "../../src/domain/task-order.js";
import { Prisma } from "../../src/generated/prisma/client.js";
import { schema } from "../../src/schema/index.js";
import { sha256Hex } from "../../src/server/trusted-documents.js";
import { testDb } from "../helpers/db.js";
import { newUser, startTestServer, type GraphQLResponse, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * A task page reads only the columns its document asks for (src/schema/requested-fields.ts,
 * domain/task-list.ts). Whatever a document selects, a page must answer what task(id), which
 * reads the whole row, answers: every field of Task, one at a time, on graphql-js and on the
 * compiled executor (trusted documents); and cursors, made of the order's key, must page alike.
 */

const taskType = schema.getType("Task") as GraphQLObjectType;

/** The selection of each Task field that is not a leaf: a new one must be added here to be checked. */
const SUBSELECTIONS: Record<string, string> = { history: "{ edges { node { kind actor after } } }" };

function selectionOf(field: string): string {
  const type = getNamedType(taskType.getFields()[field]!.type);
  if (isLeafType(type)) return field;
  const sub = SUBSELECTIONS[field];
  if (sub === undefined) throw new Error(`Task.${field} is not a leaf: add its selection to SUBSELECTIONS`);
  return `${field} ${sub}`;
}

const FIELDS = Object.keys(taskType.getFields());
const pageOf = (field: string) => `query Page_${field} { tasks(first: 20) { edges { node { id ${selectionOf(field)} } } } }`;
const oneOf = (field: string) => `query One_${field}($id: ID!) { task(id: $id) { id ${selectionOf(field)} } }`;
const WALK = `query Walk($first: Int, $after: String, $field: TaskOrderField!) {
  tasks(first: $first, after: $after, orderBy: { field: $field }) { edges { cursor node { title } } pageInfo { hasNextPage endCursor } }
}`;
// nextOccurrences is computed: the whole row is read, as before this change.
const WALK_ALL_COLUMNS = WALK.replace("node { title }", "node { title nextOccurrences(first: 1) }");
interface WalkPage {
  tasks: { edges: { cursor: string; node: { title: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}
const ORDERS: TaskOrderField[] = ["CREATED_AT", "UPDATED_AT", "DUE_AT", "PRIORITY"];
const TRUSTED = Object.fromEntries(
  [...FIELDS.flatMap((field) => [pageOf(field), oneOf(field)]), WALK, WALK_ALL_COLUMNS].map((text) => [sha256Hex(text), text]),
);

async function seed(user: TestUser): Promise<string[]> {
  const add = async (input: Record<string, unknown>) => {
    const response = await user.gql<{ addTask: { id: string } }>("mutation ($input: AddTaskInput!) { addTask(input: $input) { id } }", { input });
    expect(response.errors).toBeUndefined();
    return response.data!.addTask.id;
  };
  const recurring = await add({
    title: "Water the plants",
    description: "The ones on the balcony",
    dueAt: "2026-12-10T08:00:00Z",
    priority: "HIGH",
    labels: ["home", "Garden"],
    recurrence: "FREQ=DAILY",
  });
  const allDay = await add({ title: "Pay rent", dueAt: "2026-12-31T12:00:00Z", dueAllDay: true, priority: "URGENT" });
  const done = await add({ title: "Buy milk", priority: "LOW" });
  const plain = await add({ title: "Call Ada" });
  // Completing the recurring task moves it on (completedAt set, still pending); the other is done.
  for (const id of [recurring, done]) expect((await user.gql("mutation ($id: ID!) { completeTask(id: $id) { id } }", { id })).errors).toBeUndefined();
  return [recurring, allDay, done, plain];
}

describe.each([
  ["graphql-js", false],
  ["the compiled executor", true],
])("a task page's columns on %s", (_name, trusted) => {
  let server: TestServer;
  let user: TestUser;
  let ids: string[];

  beforeAll(async () => {
    server = await startTestServer({ operations: { allowArbitrary: true, manifests: trusted ? [TRUSTED] : [] } });
    user = await newUser(server, "page-columns");
    ids = await seed(user);
  });
  afterAll(async () => {
    await server?.close();
  });

  it.each(FIELDS)("should answer Task.%s on a page as task(id) does", async (field) => {
    const page = await user.gql<{ tasks: { edges: { node: { id: string } }[] } }>(pageOf(field));
    expect(page.errors).toBeUndefined();
    const nodes = page.data!.tasks.edges.map((edge) => edge.node);
    expect(nodes.map((node) => node.id).sort()).toEqual([...ids].sort());
    for (const node of nodes) {
      const one = await user.gql<{ task: Record<string, unknown> }>(oneOf(field), { id: node.id });
      expect(one.errors).toBeUndefined();
      expect(node).toEqual(one.data!.task);
    }
  });

  it.each(ORDERS)("should page by %s with a node's title alone exactly as with the whole row (titles and cursors)", async (field) => {
    const walk = async (document: string) => {
      const seen: { cursor: string; title: string }[] = [];
      let after: string | null = null;
      for (let page = 0; page < 10; page += 1) {
        const response: GraphQLResponse<WalkPage> = await user.gql<WalkPage>(document, { first: 2, after, field });
        expect(response.errors).toBeUndefined();
        seen.push(...response.data!.tasks.edges.map((edge) => ({ cursor: edge.cursor, title: edge.node.title })));
        if (!response.data!.tasks.pageInfo.hasNextPage) break;
        after = response.data!.tasks.pageInfo.endCursor;
      }
      return seen;
    };
    const titleAlone = await walk(WALK);
    expect(titleAlone).toHaveLength(ids.length);
    expect(titleAlone).toEqual(await walk(WALK_ALL_COLUMNS));
  });
});

describe("listTaskPage with the fields its caller reads", () => {
  const db = testDb();
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    server = await startTestServer();
    user = await newUser(server, "page-fields");
    await seed(user);
  });
  afterAll(async () => {
    await server?.close();
    await db.$disconnect();
  });

  it.each([
    ["CREATED_AT", ["createdAt", "id", "title"]],
    ["UPDATED_AT", ["id", "title", "updatedAt"]],
    ["DUE_AT", ["dueAt", "id", "title"]],
    ["PRIORITY", ["id", "priority", "title"]],
  ] as const)("should read those fields, the id and the %s key alone", async (field, keys) => {
    const page = await listTaskPage(db, user.id, checkTaskFilter({}, "filter"), taskOrder(field), { first: 10 }, new Set(["title"] as const));
    expect(page.edges).toHaveLength(4);
    for (const edge of page.edges) expect(Object.keys(edge.node).sort()).toEqual(keys);
    // The cursors, made of what was read, are the whole rows' cursors.
    const whole = await listTaskPage(db, user.id, checkTaskFilter({}, "filter"), taskOrder(field), { first: 10 });
    expect(page.edges.map((edge) => edge.cursor)).toEqual(whole.edges.map((edge) => edge.cursor));
  });

  it("should read every column when its caller names no fields", async () => {
    const page = await listTaskPage(db, user.id, checkTaskFilter({}, "filter"), taskOrder("CREATED_AT"), { first: 1 });
    expect(Object.keys(page.edges[0]!.node).sort()).toEqual(Object.values(Prisma.TaskScalarFieldEnum).sort());
  });
});
