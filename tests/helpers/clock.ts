/**
 * Runs this process's wall clock `offsetMs` off the real one, still ticking:
 * `Date.now()` and `new Date()` (what Prisma, jose, pg and the app read) are
 * shifted; timers and the database are not. A real clock skew between an
 * instance and its database, with no part of the app swapped out. Returns the undo.
 */
export function skewProcessClock(offsetMs: number): () => void {
  const RealDate = globalThis.Date;
  const now = () => RealDate.now() + offsetMs;
  globalThis.Date = new Proxy(RealDate, {
    construct: (target, args: unknown[], newTarget) => Reflect.construct(target, args.length === 0 ? [now()] : args, newTarget),
    // Date() called without `new` returns the current time as a string.
    apply: () => new RealDate(now()).toString(),
    get: (target, property, receiver) => (property === "now" ? now : Reflect.get(target, property, receiver)),
  });
  return () => {
    globalThis.Date = RealDate;
  };
}
