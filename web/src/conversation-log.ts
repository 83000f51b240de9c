import { useCallback, useEffect, useRef, useState } from "react";
import { useClient } from "urql";
import type { ConnectionStore } from "./connection";
import { MESSAGE, MESSAGE_ADDED, MESSAGE_STREAM, MESSAGES_PAGE, TURN, type TurnFields } from "./documents";
import type { ResultOf } from "./graphql";

export type ChatMessage = ResultOf<typeof MESSAGE_ADDED>["messageAdded"];
export type TurnView = ResultOf<typeof TurnFields>;
type StreamEvent = ResultOf<typeof MESSAGE_STREAM>["messageStream"];

const ended = (status: string) => status !== "STREAMING";
const codePoints = (text: string) => Array.from(text);

/** A message from a settled source (a page, messageAdded): newer facts win, an ended message never goes back to streaming. */
function merge(existing: ChatMessage | undefined, incoming: ChatMessage): ChatMessage {
  if (existing && ended(existing.status) && !ended(incoming.status)) return existing;
  return incoming;
}

/**
 * One stream event applied to what is shown. Offsets run end to end, and a
 * (re)join starts at offset 0 with the whole text so far, so the text is
 * replaced at 0, appended at its end, trimmed where it overlaps. A gap (never
 * expected) is reported, and the message is read again.
 */
function applyStream(existing: ChatMessage | undefined, event: StreamEvent): { message: ChatMessage; gap: boolean } {
  const base = existing?.content ?? "";
  const shown = codePoints(base);
  const delta = codePoints(event.delta);
  let content = base;
  let gap = false;
  if (event.offset === 0) content = event.delta;
  else if (event.offset === shown.length) content = base + event.delta;
  else if (event.offset < shown.length) content = base + delta.slice(shown.length - event.offset).join("");
  else gap = true;
  const message: ChatMessage = {
    ...event.message,
    content,
    toolCallId: event.message.toolCallId ?? null,
    toolCalls: event.message.toolCalls,
  };
  return { message, gap };
}

export interface ConversationLog {
  messages: ChatMessage[];
  loaded: boolean;
  error: string | undefined;
  hasOlder: boolean;
  loadingOlder: boolean;
  loadOlder: () => void;
  /** The RUNNING turn (or the last one this view followed, once ended). */
  turn: TurnView | null;
  setTurn: (turn: TurnView | null) => void;
  /** Follows a turn this client started, in this conversation or in the one its send just created. */
  follow: (turn: TurnView, conversationId: string) => void;
  refreshTurn: () => void;
  /** Shows a message this client already has (its own sendMessage's userMessage). */
  add: (message: ChatMessage) => void;
}

/**
 * A conversation as the chat shows it: the newest page, older pages on
 * demand, settled messages from messageAdded (resumed after a reconnect with
 * afterSeq = the last seq before anything still streaming, so nothing is
 * missed), and answers as they stream. Everything is keyed by message id,
 * so a replayed message replaces itself instead of appearing twice.
 */
export function useConversationLog(conversationId: string | null, connection: ConnectionStore): ConversationLog {
  const client = useClient();
  // The authoritative map, changed synchronously as events arrive (several may come before React renders);
  // `byId` is its last rendered copy.
  const store = useRef(new Map<string, ChatMessage>());
  const [byId, setById] = useState<ReadonlyMap<string, ChatMessage>>(store.current);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<string>();
  const [older, setOlder] = useState<{ cursor: string | null; has: boolean }>({ cursor: null, has: false });
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [turn, setTurnState] = useState<TurnView | null>(null);
  const turnRef = useRef<TurnView | null>(null);
  // A turn started by a send that created its conversation: the switch to it must not forget the turn.
  const adopted = useRef<{ conversationId: string; turn: TurnView } | undefined>(undefined);
  const [generation, setGeneration] = useState(0);

  const render = useCallback(() => setById(new Map(store.current)), []);
  const upsert = useCallback(
    (messages: ChatMessage[]) => {
      for (const message of messages) store.current.set(message.id, merge(store.current.get(message.id), message));
      render();
    },
    [render],
  );

  const setTurn = useCallback((next: TurnView | null) => {
    turnRef.current = next;
    setTurnState(next);
  }, []);

  const refetchMessage = useCallback(
    (id: string) => {
      void client
        .query(MESSAGE, { id }, { requestPolicy: "network-only" })
        .toPromise()
        .then((result) => {
          const node = result.data?.node;
          if (node && "seq" in node) upsert([node as ChatMessage]);
        });
    },
    [client, upsert],
  );

  const refreshTurn = useCallback(() => {
    const current = turnRef.current;
    if (!current) return;
    void client
      .query(TURN, { id: current.id }, { requestPolicy: "network-only" })
      .toPromise()
      .then((result) => {
        const node = result.data?.node;
        if (node && "status" in node && turnRef.current?.id === node.id) setTurn(node);
      });
  }, [client, setTurn]);

  // A new conversation: the newest page first, then live events.
  useEffect(() => {
    store.current = new Map();
    render();
    setLoaded(false);
    setError(undefined);
    setOlder({ cursor: null, has: false });
    const followed = adopted.current?.conversationId === conversationId ? adopted.current.turn : null;
    adopted.current = undefined;
    setTurn(followed);
    if (conversationId === null) return;
    let live = true;
    void client
      .query(MESSAGES_PAGE, { id: conversationId, before: null }, { requestPolicy: "network-only" })
      .toPromise()
      .then((result) => {
        if (!live) return;
        const conversation = result.data?.conversation;
        if (!conversation) {
          setError(result.error ? result.error.message : "This conversation does not exist (any more).");
          return;
        }
        upsert(conversation.messages.edges.map((edge) => edge.node));
        setOlder({ cursor: conversation.messages.pageInfo.startCursor ?? null, has: conversation.messages.pageInfo.hasPreviousPage });
        // The running turn; else the one this client followed here, looked at again (it may have ended meanwhile).
        if (conversation.activeTurn) setTurn(conversation.activeTurn);
        else if (turnRef.current) refreshTurn();
        setLoaded(true);
      });
    return () => {
      live = false;
    };
  }, [client, conversationId, upsert, render, setTurn, refreshTurn]);

  // After a reconnect, subscribe again from where this view is (afterSeq), not from where it began.
  useEffect(() => connection.onReconnect(() => setGeneration((g) => g + 1)), [connection]);

  useEffect(() => {
    if (conversationId === null || !loaded) return;
    const shown = [...store.current.values()];
    const streaming = shown.filter((m) => !ended(m.status)).map((m) => m.seq);
    const afterSeq = streaming.length > 0 ? Math.min(...streaming) - 1 : Math.max(0, ...shown.map((m) => m.seq));
    const added = client.subscription(MESSAGE_ADDED, { conversationId, afterSeq }).subscribe((result) => {
      const message = result.data?.messageAdded;
      if (!message) return;
      upsert([message]);
      if (message.role === "ASSISTANT" && ended(message.status)) refreshTurn();
    });
    return () => added.unsubscribe();
  }, [client, conversationId, loaded, generation, upsert, refreshTurn]);

  useEffect(() => {
    if (conversationId === null || !loaded) return;
    const stream = client.subscription(MESSAGE_STREAM, { conversationId }).subscribe((result) => {
      const event = result.data?.messageStream;
      if (!event) return;
      const existing = store.current.get(event.message.id);
      // An answer already settled (messageAdded came first) keeps its stored text.
      if (existing && ended(existing.status)) return;
      const { message, gap } = applyStream(existing, event);
      store.current.set(message.id, message);
      render();
      if (gap) refetchMessage(message.id);
      if (ended(message.status)) refreshTurn();
    });
    return () => stream.unsubscribe();
  }, [client, conversationId, loaded, render, refetchMessage, refreshTurn]);

  // While a turn runs, look at it now and then: a turn can end without a message (a failure before any answer).
  useEffect(() => {
    if (turn?.status !== "RUNNING") return;
    const timer = setInterval(refreshTurn, 2000);
    return () => clearInterval(timer);
  }, [turn?.status, refreshTurn]);

  const loadOlder = useCallback(() => {
    if (conversationId === null || !older.has || loadingOlder) return;
    setLoadingOlder(true);
    void client
      .query(MESSAGES_PAGE, { id: conversationId, before: older.cursor }, { requestPolicy: "network-only" })
      .toPromise()
      .then((result) => {
        const page = result.data?.conversation?.messages;
        if (page) {
          upsert(page.edges.map((edge) => edge.node));
          setOlder({ cursor: page.pageInfo.startCursor ?? null, has: page.pageInfo.hasPreviousPage });
        }
      })
      .finally(() => setLoadingOlder(false));
  }, [client, conversationId, older, loadingOlder, upsert]);

  const messages = [...byId.values()].sort((a, b) => a.seq - b.seq);
  const add = useCallback((message: ChatMessage) => upsert([message]), [upsert]);
  const follow = useCallback(
    (next: TurnView, id: string) => {
      if (id === conversationId) setTurn(next);
      else adopted.current = { conversationId: id, turn: next };
    },
    [conversationId, setTurn],
  );
  return { messages, loaded, error, hasOlder: older.has, loadingOlder, loadOlder, turn, setTurn, follow, refreshTurn, add };
}
