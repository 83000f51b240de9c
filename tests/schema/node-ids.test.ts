import { randomUUID } from "node:crypto";
import { buildSchema, GraphQLObjectType, type GraphQLResolveInfo } from "graphql";
import { describe, expect, it } from "vitest";
import { NODE_TYPENAMES, parseGlobalId } from "../../src/lib/ids.js";
import { schema } from "../../src/schema/index.js";
import { syncNodeIds } from "../../src/schema/sync-node-ids.js";

describe("Node ids", () => {
  const nodeTypes = Object.values(schema.getTypeMap()).filter(
    (type): type is GraphQLObjectType => type instanceof GraphQLObjectType && type.getInterfaces().some((face) => face.name === "Node"),
  );

  it("should know every type that implements Node", () => {
    expect(nodeTypes.map((type) => type.name).sort()).toEqual([...NODE_TYPENAMES].sort());
  });

  it("should resolve each Node's id at once (no promise) to the global id of its type and row", () => {
    for (const type of nodeTypes) {
      const id = randomUUID();
      const resolved = type.getFields().id!.resolve!({ id }, {}, {}, {} as GraphQLResolveInfo);
      expect(typeof resolved, type.name).toBe("string");
      expect(parseGlobalId(resolved as string, "id", NODE_TYPENAMES)).toEqual({ typename: type.name, id });
    }
  });

  it("should refuse a Node type whose id it has not been told about", () => {
    const other = buildSchema(`interface Node { id: ID! } type Widget implements Node { id: ID! } type Query { widget: Widget }`);
    expect(() => syncNodeIds(other)).toThrow(
      "Widget implements Node: check that its id is its row's id, then add it to NODE_TYPENAMES (src/lib/ids.ts)",
    );
  });
});
