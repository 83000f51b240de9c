import { GraphQLObjectType, Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from "graphql";

/**
 * Which model fields a document reads from the objects at `path` under the
 * resolving field (a connection's ["edges", "node"]), so the read can select
 * their columns alone. Worked out once per field node of a document (Yoga's
 * parse cache and the trusted documents hand out the same nodes again).
 *
 * A field Pothos exposes (t.expose…) names its model field; a Node's `id` is
 * the row's id; `__typename` needs nothing. Any other field (computed, a
 * relation, one added later) may read anything, so the answer is undefined:
 * every column. Directives are not evaluated: a field under @skip or @include
 * counts as read, which can only read more, never less.
 */
export function requestedFieldsOf<F extends string>(
  typeName: string,
  path: readonly string[],
  isField: (name: string) => name is F,
): (info: GraphQLResolveInfo) => ReadonlySet<F> | undefined {
  const known = new WeakMap<FieldNode, { fields: ReadonlySet<F> | undefined }>();
  return (info) => {
    // Two nodes merged into one field (`tasks { a } tasks { b }`) vary with @skip: worked out each time.
    const [only, ...more] = info.fieldNodes;
    if (only === undefined || more.length > 0) return collect(info, typeName, path, isField);
    let entry = known.get(only);
    if (entry === undefined) known.set(only, (entry = { fields: collect(info, typeName, path, isField) }));
    return entry.fields;
  };
}

/** Every column: the walk met a field it cannot map. */
const EVERYTHING = Symbol("everything");

function collect<F extends string>(info: GraphQLResolveInfo, typeName: string, path: readonly string[], isField: (name: string) => name is F) {
  const type = info.schema.getType(typeName);
  if (!(type instanceof GraphQLObjectType)) return undefined;
  const found = new Set<F>();
  const modelField = (name: string): F | typeof EVERYTHING | undefined => {
    if (name === "__typename") return undefined;
    const exposed = name === "id" ? "id" : type.getFields()[name]?.extensions?.pothosExposedField;
    return typeof exposed === "string" && isField(exposed) ? exposed : EVERYTHING;
  };
  const walk = (set: SelectionSetNode | undefined, depth: number): boolean => {
    if (set === undefined) return true;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FRAGMENT_SPREAD) {
        if (!walk(info.fragments[selection.name.value]?.selectionSet, depth)) return false;
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        if (!walk(selection.selectionSet, depth)) return false;
      } else if (depth < path.length) {
        if (selection.name.value === path[depth] && !walk(selection.selectionSet, depth + 1)) return false;
      } else {
        const field = modelField(selection.name.value);
        if (field === EVERYTHING) return false;
        if (field !== undefined) found.add(field);
      }
    }
    return true;
  };
  return info.fieldNodes.every((node) => walk(node.selectionSet, 0)) ? found : undefined;
}
