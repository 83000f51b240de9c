import type { Plugin } from "graphql-yoga";
import type { Context } from "./context.js";

/**
 * Adds the errors resolvers deferred (ctx.deferredErrors) to the result, so a
 * field can return its data and still report an error code beside it.
 */
export function useDeferredErrors(): Plugin<Context> {
  return {
    onExecute() {
      return {
        onExecuteDone({ args, result, setResult }) {
          const deferred = (args.contextValue as Context).deferredErrors;
          if (!deferred || deferred.length === 0 || !("data" in result)) return;
          setResult({ ...result, errors: [...(result.errors ?? []), ...deferred] });
        },
      };
    },
  };
}
