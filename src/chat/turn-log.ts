import type { Db } from "../db/client.js";
import { messagesBefore, turnMessages, type TurnWritten } from "../domain/conversation-log.js";
import type { Conversation, Message } from "../generated/prisma/client.js";

/** How many earlier messages one read of the window's history takes. */
const PAGE_SIZE = 50;

/**
 * What a running turn holds of the conversation log, so that it reads the log
 * once per turn instead of once per step: its own messages (given when it
 * opened, else read once, then kept as its writes return them), the earlier
 * pages its windows have read, and the conversation row as its last write left
 * it. The turn holds the conversation's lease, so nothing else appends there
 * while it runs; a write that finds the turn ended (its lease taken as dead,
 * or a cancel) ends the loop, and the reply is read from the database then.
 */
export class TurnLog {
  private own: Message[] | undefined;
  private readonly pages: Message[][] = [];
  private pagesDone = false;
  /** The conversation row as the turn's last write left it (undefined until one returned it). */
  conversation: Conversation | undefined;
  /** performance.now() when a write or a read last found the turn RUNNING with no cancel asked (each write checks). */
  checkedAt = performance.now();

  constructor(
    private readonly db: Db,
    readonly userMessage: Message,
    opened?: { messages: Message[]; conversation: Conversation },
  ) {
    this.own = opened?.messages;
    this.conversation = opened?.conversation;
  }

  /** The turn's messages, user message first, in seq order: read from the database the first time only, for a resumed turn. */
  async messages(): Promise<Message[]> {
    this.own ??= await turnMessages(this.db, this.userMessage);
    return this.own;
  }

  /** The turn's messages and conversation row as it holds them, when it holds both. */
  held(): { messages: Message[]; conversation: Conversation } | undefined {
    return this.own && this.conversation ? { messages: [...this.own], conversation: this.conversation } : undefined;
  }

  /** Takes in what a write stored: rows replace the same id (a settled answer), in seq order. */
  add(written: Partial<Pick<TurnWritten, "messages" | "conversation">>): void {
    this.checked();
    if (written.conversation) this.conversation = written.conversation;
    if (!this.own || !written.messages?.length) return;
    const ids = new Set(written.messages.map((m) => m.id));
    this.own = [...this.own.filter((m) => !ids.has(m.id)), ...written.messages].sort((a, b) => a.seq - b.seq);
  }

  /** A write or a read found the turn RUNNING, with no cancel asked: the backstop poll need not look for a while. */
  checked(): void {
    this.checkedAt = performance.now();
  }

  /** The messages before the turn, newest first, a page at a time: each page read once per turn, however many windows are built. */
  async *earlier(): AsyncGenerator<Message[]> {
    yield* this.pages;
    // A short page was the last one.
    if (this.pagesDone || (this.pages.at(-1)?.length ?? PAGE_SIZE) < PAGE_SIZE) return;
    const from = this.pages.at(-1)?.at(-1)?.seq ?? this.userMessage.seq;
    for await (const page of messagesBefore(this.db, this.userMessage.conversationId, from, PAGE_SIZE)) {
      this.pages.push(page);
      yield page;
    }
    this.pagesDone = true;
  }
}
