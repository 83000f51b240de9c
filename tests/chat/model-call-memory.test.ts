import { setImmediate as tick } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCohereModel, type ChatModel } from "../../src/chat/cohere.js";
import { streamStep } from "../../src/chat/model-stream.js";
import { DEFAULT_STEP_BOUNDS } from "../../src/chat/step-bounds.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { TEST_COHERE_KEY } from "../helpers/chat.js";

/**
 * What a model call leaves behind once it is over: nothing. The real SDK against the fake
 * Cohere, as a turn makes its calls (one stop signal for all of them). The SDK leaves a listener
 * on the signal it is given; a signal that then stays reachable keeps the call's response (its
 * stream, decoder, buffers) with it. The soak found this: every model call's response was still
 * in the heap at the end (RELIABILITY.md, Memory).
 */

const CALLS = 20;

/** global.gc, made available in this worker. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("memory of model calls", () => {
  let fake: FakeCohere;

  beforeAll(async () => {
    fake = await startFakeCohere();
    fake.setFallback(() => textReply("A short answer."));
  });
  afterAll(() => fake.close());

  it("should let every signal given to the model be collected once its call is over, the turn still running", async () => {
    const gc = exposeGc();
    const real = createCohereModel({ apiKey: TEST_COHERE_KEY, baseUrl: fake.baseUrl });
    const given: WeakRef<AbortSignal>[] = [];
    const model: ChatModel = {
      stream: (request, options) => {
        given.push(new WeakRef(options.signal));
        return real.stream(request, options);
      },
    };
    // The turn's stop signal outlives its calls, as in a turn.
    const turn = new AbortController();
    for (let call = 0; call < CALLS; call += 1) {
      const step = await streamStep(
        model,
        { model: "command-a-03-2025", messages: [{ role: "user", content: `call ${call}` }] },
        { timeoutMs: 10_000, deadline: performance.now() + 60_000, signal: turn.signal, onText: () => {}, bounds: DEFAULT_STEP_BOUNDS },
      );
      expect(step.text).toBe("A short answer.");
    }
    expect(given).toHaveLength(CALLS);

    // A WeakRef's target survives the job that made or read it: collect between turns of the loop.
    for (let round = 0; round < 3; round += 1) {
      await tick();
      gc();
    }
    expect(given.filter((ref) => ref.deref() !== undefined).length, "signals of finished calls still reachable").toBe(0);
    expect(turn.signal.aborted).toBe(false);
  });
});
