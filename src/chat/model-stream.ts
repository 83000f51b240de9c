import type { TokenUsage } from "../domain/conversation-log.js";
import type { BackoffPolicy } from "../lib/backoff.js";
import { chatWithRetries, ModelTimeoutError, ModelUnavailableError, type ChatModel, type ChatRequest, type ChatStreamEvent } from "./cohere.js";
import { storableDelta } from "./model-output.js";
import { callsCounted, CappedText, MAX_TOOL_ARGUMENTS_CHARS, type StepBounds, type StepOverflow } from "./step-bounds.js";

/** A tool call as it came: the model may leave out its id. */
export interface StreamedCall {
  id: string | undefined;
  name: string;
  arguments: string;
}

/** One model call, read from its stream: what the model said and asked for. */
export interface StepResult {
  /** The answer text, exactly the concatenation of what onText was given. */
  text: string;
  /** A reasoning model's thinking, which it may use instead of a tool plan. */
  thinking: string;
  toolPlan: string;
  toolCalls: StreamedCall[];
  finishReason: string | undefined;
  /** Billed units from message-end, when the model reported them. */
  usage: TokenUsage | undefined;
  /** Set when a bound stopped the reading before the stream's end (the text holds what fitted). */
  overflow: StepOverflow | undefined;
}

export interface StepOptions {
  /** Longest wait for the model to answer, and then between two of its events. */
  timeoutMs: number;
  /** performance.now() value at which the turn's time is up. */
  deadline: number;
  /** The turn's stop signal: aborting it ends the call at once, and its reason is thrown. */
  signal: AbortSignal;
  policy?: BackoffPolicy | undefined;
  onRetry?: (info: { attempt: number; delayMs: number; status: number | undefined }) => void;
  /** Each piece of answer text, as it arrives (never past the answer bound). */
  onText(delta: string): void;
  bounds: StepBounds;
}

/**
 * Makes one streamed model call and reads it to its end. A stop (the turn's
 * signal) throws the signal's reason; silence longer than the per-call
 * timeout, or the turn's deadline, throws ModelTimeoutError; a stream that
 * breaks off or ends without message-end throws ModelUnavailableError. Past
 * a step bound it stops reading and returns what fitted, with `overflow` set.
 * In every case the connection to the model is closed before this returns.
 */
export async function streamStep(model: ChatModel, request: ChatRequest, options: StepOptions): Promise<StepResult> {
  const call = new AbortController();
  // The turn's stop reaches the call through a listener removed below, not AbortSignal.any: the SDK
  // leaves a listener on the signal it is given (its Stream never removes it), and Node 20 keeps a
  // composite signal with a listener alive for good, aborted or not (its gcPersistentSignals), with
  // the call's whole response behind it: one leak per model call (RELIABILITY.md, Memory).
  const stop = () => call.abort(options.signal.reason);
  if (options.signal.aborted) stop();
  else options.signal.addEventListener("abort", stop, { once: true });
  const signal = call.signal;
  const timeUp = setTimeout(() => call.abort(new ModelTimeoutError("the turn ran out of time")), Math.max(0, options.deadline - performance.now()));
  let idle: NodeJS.Timeout | undefined;
  try {
    const events = await chatWithRetries(model, request, {
      timeoutMs: options.timeoutMs,
      deadline: options.deadline,
      policy: options.policy,
      onRetry: options.onRetry,
      signal,
    });
    idle = setTimeout(() => call.abort(new ModelTimeoutError("the model went silent")), options.timeoutMs);
    const reader = new StepReader(options.onText, options.bounds);
    for await (const event of events) {
      idle.refresh();
      reader.apply(event);
      // Leaving the loop closes the stream: the rest of the answer is not read.
      if (reader.result.overflow) return reader.result;
    }
    if (!reader.ended) throw new ModelUnavailableError("the model's stream ended before message-end", true, undefined);
    return reader.result;
  } catch (error) {
    options.signal.throwIfAborted();
    if (call.signal.aborted) throw call.signal.reason;
    if (error instanceof ModelTimeoutError || error instanceof ModelUnavailableError) throw error;
    throw new ModelUnavailableError("the model's stream broke off", true, undefined, { cause: error });
  } finally {
    clearTimeout(timeUp);
    clearTimeout(idle);
    options.signal.removeEventListener("abort", stop);
    // Closes the connection when the stream was left early; a no-op after its end.
    call.abort();
  }
}

/** Folds stream events (cohere-v2 wire order, camel-cased by the SDK) into a step, within the step's bounds. */
class StepReader {
  readonly result: StepResult = {
    text: "",
    thinking: "",
    toolPlan: "",
    toolCalls: [],
    finishReason: undefined,
    usage: undefined,
    overflow: undefined,
  };
  ended = false;
  private readonly thinkingBlocks = new Set<number>();
  private readonly calls = new Map<number, StreamedCall>();
  private readonly text: CappedText;
  private readonly thinking: CappedText;
  private readonly toolPlan: CappedText;

  constructor(
    private readonly onText: (delta: string) => void,
    private readonly bounds: StepBounds,
  ) {
    this.text = new CappedText(bounds.maxAnswerChars);
    this.thinking = new CappedText(bounds.maxAnswerChars);
    this.toolPlan = new CappedText(bounds.maxAnswerChars);
  }

  apply(event: ChatStreamEvent): void {
    switch (event.type) {
      case "content-start":
        if (event.delta?.message?.content?.type === "thinking") this.thinkingBlocks.add(event.index ?? 0);
        return;
      case "content-delta":
        return this.contentDelta(event);
      case "tool-plan-delta":
        this.toolPlan.append(storableDelta(event.delta?.message?.toolPlan ?? ""));
        this.result.toolPlan = this.toolPlan.text;
        return;
      case "tool-call-start":
        return this.toolCallStart(event);
      case "tool-call-delta": {
        const call = this.calls.get(event.index ?? this.calls.size - 1);
        const piece = event.delta?.message?.toolCalls?.function?.arguments ?? "";
        if (call) this.addArguments(call, piece);
        return;
      }
      case "message-end": {
        this.ended = true;
        this.result.finishReason = event.delta?.finishReason;
        const billed = event.delta?.usage?.billedUnits;
        if (billed) this.result.usage = { inputTokens: Math.round(billed.inputTokens ?? 0), outputTokens: Math.round(billed.outputTokens ?? 0) };
        return;
      }
      default:
        // message-start, content-end, tool-call-end, citations, debug and
        // anything newer carry nothing the loop stores.
        return;
    }
  }

  private contentDelta(event: Extract<ChatStreamEvent, { type: "content-delta" }>): void {
    const content = event.delta?.message?.content;
    if (content?.thinking) {
      this.thinking.append(storableDelta(content.thinking));
      this.result.thinking = this.thinking.text;
    }
    if (!content?.text || this.thinkingBlocks.has(event.index ?? 0)) return;
    const text = this.text.append(storableDelta(content.text));
    this.result.text = this.text.text;
    if (this.text.cut) this.result.overflow = "answer";
    if (text !== "") this.onText(text);
  }

  private toolCallStart(event: Extract<ChatStreamEvent, { type: "tool-call-start" }>): void {
    if (callsCounted(this.result.toolCalls) + 1 > this.bounds.maxToolCalls) {
      this.result.overflow = "tool-calls";
      return;
    }
    const call = event.delta?.message?.toolCalls;
    const index = event.index ?? this.calls.size;
    const started: StreamedCall = { id: call?.id || undefined, name: call?.function?.name ?? "", arguments: "" };
    this.calls.set(index, started);
    this.result.toolCalls.push(started);
    this.addArguments(started, call?.function?.arguments ?? "");
  }

  /** Arguments past MAX_TOOL_ARGUMENTS_CHARS are not arguments any tool takes: the step cannot be used. */
  private addArguments(call: StreamedCall, piece: string): void {
    call.arguments += piece;
    if (call.arguments.length > MAX_TOOL_ARGUMENTS_CHARS) this.result.overflow = "arguments";
  }
}
