import {
  getArgumentValues,
  getNamedType,
  getNullableType,
  isCompositeType,
  isListType,
  isObjectType,
  isInterfaceType,
  Kind,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";

/**
 * The cost of an operation: every object a response may hold counts 1, and a
 * page multiplies what is inside it by its size. `conversations(first: 50) {
 * … messages(last: 20) { … } }` costs about 50 × 20 objects, which is what
 * the database and the response really pay. Fixed per-field weights (as in
 * GraphQL Armor's cost limit) cannot see that, so nested pages of 100 each
 * would pass them. Scalars are free: their row is already paid for.
 */
export const DEFAULT_PAGE_SIZE = 20;

/** Plain lists (a turn's messages, a message's tool calls) are short, but not free. */
export const LIST_FACTOR = 10;

export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  let operation: OperationDefinitionNode | undefined;
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    if (operationName ? definition.name?.value === operationName : operation === undefined) operation = definition;
  }
  if (!operation) return 0;
  const root = schema.getRootType(operation.operation);
  if (!root) return 0;
  const walk = () => new CostWalker(schema, fragments, variables ?? {}).selectionSet(operation.selectionSet, root);
  // Without variables an operation's cost is its document's: kept per document (the parse cache and
  // the trusted documents hand the same one out again), it is not walked on every request.
  if (operation.variableDefinitions?.length) return walk();
  const known = constantCosts(schema, document);
  let cost = known.get(operation);
  if (cost === undefined) known.set(operation, (cost = walk()));
  return cost;
}

const CONSTANT_COSTS = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Map<OperationDefinitionNode, number>>>();

function constantCosts(schema: GraphQLSchema, document: DocumentNode): Map<OperationDefinitionNode, number> {
  let byDocument = CONSTANT_COSTS.get(schema);
  if (byDocument === undefined) CONSTANT_COSTS.set(schema, (byDocument = new WeakMap()));
  let costs = byDocument.get(document);
  if (costs === undefined) byDocument.set(document, (costs = new Map()));
  return costs;
}

class CostWalker {
  constructor(
    private readonly schema: GraphQLSchema,
    private readonly fragments: Map<string, FragmentDefinitionNode>,
    private readonly variables: Record<string, unknown>,
  ) {}

  selectionSet(set: SelectionSetNode, parent: GraphQLCompositeType): number {
    let total = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) total += this.field(selection, parent);
      else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? this.compositeType(selection.typeCondition.name.value) : parent;
        if (type) total += this.selectionSet(selection.selectionSet, type);
      } else {
        // Validation has already refused cycles and unknown fragments.
        const fragment = this.fragments.get(selection.name.value);
        const type = fragment && this.compositeType(fragment.typeCondition.name.value);
        if (fragment && type) total += this.selectionSet(fragment.selectionSet, type);
      }
    }
    return total;
  }

  private field(node: FieldNode, parent: GraphQLCompositeType): number {
    if (!node.selectionSet || node.name.value.startsWith("__")) return 0;
    if (!isObjectType(parent) && !isInterfaceType(parent)) return 0;
    const definition = parent.getFields()[node.name.value];
    if (!definition) return 0;
    const type = getNamedType(definition.type);
    if (!isCompositeType(type)) return 0;
    return 1 + this.multiplier(node, parent, definition) * this.selectionSet(node.selectionSet, type);
  }

  private multiplier(node: FieldNode, parent: GraphQLCompositeType, definition: GraphQLField<unknown, unknown>): number {
    if (getNamedType(definition.type).name.endsWith("Connection")) return this.pageSize(node, definition);
    // A connection's edges are the page its field already counted.
    if (parent.name.endsWith("Connection")) return 1;
    return isListType(getNullableType(definition.type)) ? LIST_FACTOR : 1;
  }

  private pageSize(node: FieldNode, definition: GraphQLField<unknown, unknown>): number {
    let args: Record<string, unknown> = {};
    try {
      args = getArgumentValues(definition, node, this.variables);
    } catch {
      // Bad arguments are reported by execution; count the default page.
    }
    const size = args.first ?? args.last;
    return typeof size === "number" && size >= 0 ? size : DEFAULT_PAGE_SIZE;
  }

  private compositeType(name: string): GraphQLCompositeType | undefined {
    const type = this.schema.getType(name);
    return type && isCompositeType(type) ? type : undefined;
  }
}
