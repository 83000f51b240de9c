import { GraphQLObjectType, type GraphQLFieldResolver, type GraphQLSchema } from "graphql";
import { NODE_TYPENAMES, toGlobalId, type NodeTypename } from "../lib/ids.js";

/**
 * Pothos' relay plugin resolves every Node's `id` through an async function (it awaits the
 * model's id before encoding it), so a page of 20 tasks made 20 promises, their microtasks and
 * their AsyncLocalStorage hooks only to encode a uuid already in hand. Every Node here is a
 * prismaNode with `id: { field: "id" }`: its global id is its type name and `parent.id`, encoded
 * at once. A parent without a string id (none today) still goes through Pothos' resolver. A Node
 * type that is not in NODE_TYPENAMES stops the build until its id has been checked.
 */
export function syncNodeIds(schema: GraphQLSchema): GraphQLSchema {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!(type instanceof GraphQLObjectType) || !type.getInterfaces().some((face) => face.name === "Node")) continue;
    if (!NODE_TYPENAMES.includes(type.name as NodeTypename)) {
      throw new Error(`${type.name} implements Node: check that its id is its row's id, then add it to NODE_TYPENAMES (src/lib/ids.ts)`);
    }
    const field = type.getFields().id;
    if (field === undefined) continue;
    const pothos = field.resolve;
    const typename = type.name as NodeTypename;
    const resolve: GraphQLFieldResolver<{ id?: unknown }, unknown> = (parent, args, context, info) =>
      typeof parent.id === "string" ? toGlobalId(typename, parent.id) : pothos?.(parent, args, context, info);
    field.resolve = resolve;
  }
  return schema;
}
