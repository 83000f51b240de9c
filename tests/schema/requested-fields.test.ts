import { Kind, parse, type FieldNode, type FragmentDefinitionNode, type GraphQLResolveInfo, type OperationDefinitionNode } from "graphql";
import { describe, expect, it } from "vitest";
import { isTaskField } from "../../src/domain/tasks.js";
import { requestedFieldsOf } from "../../src/schema/requested-fields.js";
import { schema } from "../../src/schema/index.js";

/**
 * What a task page's document reads from its nodes (src/schema/requested-fields.ts), from real
 * parsed documents against the real schema: the list then selects those columns alone, so a
 * field missed here would answer null or fail; a field the walk cannot map must mean every column.
 */

/** The resolve info of the document's first root field, as graphql-js hands it over (the parts the walk reads). */
function infoOf(document: string): GraphQLResolveInfo {
  const parsed = parse(document);
  const operation = parsed.definitions.find((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION)!;
  const fragments = Object.fromEntries(
    parsed.definitions
      .filter((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION)
      .map((fragment) => [fragment.name.value, fragment]),
  );
  const fieldNodes = operation.selectionSet.selections.filter((selection): selection is FieldNode => selection.kind === Kind.FIELD);
  return { schema, fragments, fieldNodes } as unknown as GraphQLResolveInfo;
}

const fieldsOf = (document: string) => {
  const fields = requestedFieldsOf("Task", ["edges", "node"], isTaskField)(infoOf(document));
  return fields === undefined ? undefined : [...fields].sort();
};

describe("the fields a task page's document reads", () => {
  it("should find the exposed fields under edges.node, the id as the row's id, and nothing for __typename", () => {
    expect(fieldsOf("{ tasks(first: 20) { edges { node { id title completed createdAt __typename } } } }")).toEqual([
      "completed",
      "createdAt",
      "id",
      "title",
    ]);
  });

  it("should leave out what is not a node's (pageInfo, cursors, the connection's __typename)", () => {
    expect(fieldsOf("{ tasks { __typename pageInfo { hasNextPage endCursor } edges { cursor node { title } } } }")).toEqual(["title"]);
  });

  it("should follow aliases, named fragments at every level and inline fragments on the node", () => {
    const document = `
      query { tasks { ...Page edges { node { name: title ... on Task { due: dueAt } ... on Node { id } } } } }
      fragment Page on TaskConnection { edges { ...Row } }
      fragment Row on TaskEdge { node { ...Fields } }
      fragment Fields on Task { labels priority }`;
    expect(fieldsOf(document)).toEqual(["dueAt", "id", "labels", "priority", "title"]);
  });

  it("should count a field under @skip or @include as read (more columns, never fewer)", () => {
    expect(
      fieldsOf("query ($x: Boolean!) { tasks { edges { node { title description @skip(if: $x) ... @include(if: $x) { recurrence } } } } }"),
    ).toEqual(["description", "recurrence", "title"]);
  });

  it("should ask for every column when a node's field is computed or a relation", () => {
    expect(fieldsOf("{ tasks { edges { node { title nextOccurrences } } } }")).toBeUndefined();
    expect(fieldsOf("{ tasks { edges { node { title history { edges { node { kind } } } } } } }")).toBeUndefined();
    expect(fieldsOf("query { tasks { edges { ...Row } } } fragment Row on TaskEdge { node { nextOccurrences(first: 2) } }")).toBeUndefined();
  });

  it("should union two occurrences of the field that are merged into one, each time it is asked", () => {
    const select = requestedFieldsOf("Task", ["edges", "node"], isTaskField);
    const both = infoOf("{ tasks { edges { node { title } } } tasks { edges { node { dueAt } } } }");
    expect([...select(both)!].sort()).toEqual(["dueAt", "title"]);
    // The first node alone (its twin skipped in this execution) is its own answer, not the merged one.
    const first = { ...both, fieldNodes: both.fieldNodes.slice(0, 1) } as GraphQLResolveInfo;
    expect([...select(first)!]).toEqual(["title"]);
    expect([...select(both)!].sort()).toEqual(["dueAt", "title"]);
  });

  it("should hand out the same set for the same field node (the list's columns are kept per set)", () => {
    const select = requestedFieldsOf("Task", ["edges", "node"], isTaskField);
    const info = infoOf("{ tasks { edges { node { title } } } }");
    expect(select(info)).toBe(select(info));
  });

  it("should read every column of a type it does not know", () => {
    const info = infoOf("{ tasks { edges { node { title } } } }");
    expect(requestedFieldsOf("NoSuchType", ["edges", "node"], isTaskField)(info)).toBeUndefined();
  });
});
