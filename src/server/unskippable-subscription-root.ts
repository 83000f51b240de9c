import {
  GraphQLError,
  Kind,
  type DirectiveNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type SelectionNode,
  type SelectionSetNode,
} from "graphql";
import type { Plugin } from "graphql-yoga";
import { ErrorCode } from "../lib/errors.js";

const CONDITIONAL = new Set(["skip", "include"]);

/**
 * The spec's rule (draft, "Single Root Field"): a subscription's top-level
 * selections carry no @skip or @include. graphql-js 16 does not check it. A
 * subscription whose one root field is skipped has nothing to subscribe to:
 * createSourceEventStream throws a TypeError, which SSE answered as
 * INTERNAL_SERVER_ERROR and graphql-ws as a 4500 close of the whole socket.
 * And graphql-js' own SingleFieldSubscriptionsRule evaluates `@skip(if: $var)`
 * there without the variables, so validation itself throws.
 *
 * So this check runs before validation, and a document that fails it gets
 * these errors as its validation result (BAD_USER_INPUT), on every transport:
 * HTTP, SSE and graphql-ws all validate through Yoga's envelop.
 */
export function useUnskippableSubscriptionRoot(): Plugin {
  return {
    onValidate({ params, setResult }) {
      const errors = skippedSubscriptionRoots(params.documentAST);
      if (errors.length > 0) setResult(errors);
    },
  };
}

/** One error per @skip/@include at the top level of a subscription; only top levels are walked, so this is cheap. */
export function skippedSubscriptionRoots(document: DocumentNode): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const errors: GraphQLError[] = [];
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION || definition.operation !== "subscription") continue;
    checkTopLevel(definition.selectionSet, fragments, new Set(), errors);
  }
  return errors;
}

/** The top level includes fragments spread there, and theirs; each named fragment is walked once (cycles are another rule's error). */
function checkTopLevel(
  selectionSet: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  seen: Set<string>,
  errors: GraphQLError[],
): void {
  for (const selection of selectionSet.selections) {
    const directive = selection.directives?.find((candidate) => CONDITIONAL.has(candidate.name.value));
    if (directive) errors.push(skippedRoot(directive, selection));
    if (selection.kind === Kind.INLINE_FRAGMENT) checkTopLevel(selection.selectionSet, fragments, seen, errors);
    if (selection.kind !== Kind.FRAGMENT_SPREAD || seen.has(selection.name.value)) continue;
    seen.add(selection.name.value);
    const fragment = fragments.get(selection.name.value);
    if (fragment) checkTopLevel(fragment.selectionSet, fragments, seen, errors);
  }
}

function skippedRoot(directive: DirectiveNode, selection: SelectionNode): GraphQLError {
  const where =
    selection.kind === Kind.FIELD
      ? selection.name.value
      : selection.kind === Kind.FRAGMENT_SPREAD
        ? `the fragment spread ${selection.name.value}`
        : "an inline fragment";
  return new GraphQLError(`A subscription's root field cannot be skipped: remove @${directive.name.value} from ${where}`, {
    nodes: [directive],
    extensions: { code: ErrorCode.BAD_USER_INPUT },
  });
}
