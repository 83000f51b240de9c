import type { Cache } from "@urql/exchange-graphcache";
import { MESSAGES_PAGE, MessageFields, StreamedText, type MESSAGE_STREAM } from "./documents";
import type { ResultOf } from "./graphql";

/**
 * A conversation's messages live in one place: graphcache, in the newest page
 * of MESSAGES_PAGE (`before: null`), which is what the chat reads. Messages
 * that arrive live (messageAdded, messageStream, sendMessage) and older pages
 * (loadOlder) are put into that list by the updaters below, in seq order and
 * once each (keyed by message id); a message's own fields are its entity's.
 * Re-reading the newest page from the server (opening the conversation again)
 * starts the list afresh, as the server has it.
 */

export type ChatMessage = ResultOf<typeof MessageFields>;
export type MessagePage = NonNullable<ResultOf<typeof MESSAGES_PAGE>["conversation"]>["messages"];
type StreamEvent = ResultOf<typeof MESSAGE_STREAM>["messageStream"];

export const isEnded = (status: string): boolean => status !== "STREAMING";

function newestPage(conversationId: string) {
  return { query: MESSAGES_PAGE, variables: { id: conversationId, before: null } };
}

/** Puts a message into its conversation's list, in seq order, once; nothing when that list was never read. */
export function addMessage(cache: Cache, conversationId: string, message: ChatMessage): void {
  cache.updateQuery(newestPage(conversationId), (data) => {
    const edges = data?.conversation?.messages.edges;
    if (!edges || edges.some((edge) => edge.node.id === message.id)) return null;
    const at = edges.findIndex((edge) => edge.node.seq > message.seq);
    const edge = { __typename: "MessageEdge", node: message } as (typeof edges)[number];
    edges.splice(at === -1 ? edges.length : at, 0, edge);
    return data;
  });
}

/** An older page joins the list above what it shows; the list's pageInfo then says what is left. */
export function addOlderPage(cache: Cache, conversationId: string, older: MessagePage): void {
  cache.updateQuery(newestPage(conversationId), (data) => {
    const messages = data?.conversation?.messages;
    if (!messages) return null;
    const shown = new Set(messages.edges.map((edge) => edge.node.id));
    messages.edges.unshift(...older.edges.filter((edge) => !shown.has(edge.node.id)));
    messages.pageInfo = { ...messages.pageInfo, hasPreviousPage: older.pageInfo.hasPreviousPage, startCursor: older.pageInfo.startCursor };
    return data;
  });
}

/**
 * The text after one stream event, or null on a gap. Offsets run end to end,
 * and a (re)join starts at offset 0 with the whole text so far, so the text is
 * replaced at 0, appended at its end, trimmed where it overlaps.
 */
export function streamedText(shown: string, event: Pick<StreamEvent, "offset" | "delta">): string | null {
  const length = Array.from(shown).length;
  if (event.offset === 0) return event.delta;
  if (event.offset === length) return shown + event.delta;
  if (event.offset < length)
    return (
      shown +
      Array.from(event.delta)
        .slice(length - event.offset)
        .join("")
    );
  return null;
}

/**
 * One messageStream event into the cache. A settled answer keeps its stored
 * text (messageAdded's); an answer seen first here joins the list as
 * STREAMING until messageAdded settles it. False on a gap: the text shown
 * and the event do not meet, and nothing was written.
 */
export function applyStreamEvent(cache: Cache, conversationId: string, event: StreamEvent): boolean {
  const key = cache.keyOfEntity({ __typename: "Message", id: event.message.id });
  const status = cache.resolve(key, "status");
  if (typeof status === "string" && isEnded(status)) return true;
  const shown = cache.resolve(key, "content");
  const content = streamedText(typeof shown === "string" ? shown : "", event);
  if (content === null) return false;
  if (typeof status === "string") {
    cache.writeFragment(StreamedText, { __typename: "Message", id: event.message.id, content } as ResultOf<typeof StreamedText>);
    return true;
  }
  const message = { __typename: "Message", ...event.message, status: "STREAMING", content, toolCalls: [] } as ChatMessage;
  cache.writeFragment(MessageFields, message);
  addMessage(cache, conversationId, message);
  return true;
}
