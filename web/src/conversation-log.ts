import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useClient, useQuery, type Client } from "urql";
import type { ConnectionStore } from "./connection";
import { MESSAGE_ADDED, MESSAGE_STREAM, MESSAGES_PAGE, TURN, TURN_UPDATED, type TurnFields } from "./documents";
import type { ResultOf } from "./graphql";
import { isEnded, type ChatMessage, type MessagePage } from "./message-cache";

export type { ChatMessage } from "./message-cache";
export type TurnView = ResultOf<typeof TurnFields>;

export interface ConversationLog {
  messages: ChatMessage[];
  loaded: boolean;
  error: string | undefined;
  hasOlder: boolean;
  loadingOlder: boolean;
  loadOlder: () => void;
  /** The turn in progress, RUNNING or waiting for approval, else the conversation's last turn (or the last one this view followed). */
  turn: TurnView | null;
  /** Follows a turn this client started, in this conversation or in the one its send just created. */
  follow: (turn: TurnView, conversationId: string) => void;
  refreshTurn: () => void;
}

/**
 * A conversation as the chat shows it, read from urql's cache: the newest
 * page, older pages on demand, settled messages from messageAdded (resumed
 * after a reconnect with afterSeq = the last seq before anything still
 * streaming, so nothing is missed), and answers as they stream. The cache's
 * updaters (message-cache.ts) keep the list, keyed by message id, so a
 * replayed message replaces itself instead of appearing twice; this hook only
 * opens the reads and the subscriptions.
 */
export function useConversationLog(conversationId: string | null, connection: ConnectionStore): ConversationLog {
  const client = useClient();
  const page = useNewestPage(conversationId);
  const edges = page.conversation?.messages.edges;
  const messages = useMemo(() => edges?.map((edge) => edge.node) ?? [], [edges]);
  // The turn in progress, else the last one: a failed last turn offers Retry, after a reload too.
  const lastTurnId = page.conversation?.activeTurn?.id ?? messages.findLast((message) => message.role === "USER")?.turn?.id;
  const followed = useFollowedTurn(conversationId, page.loaded ? lastTurnId : undefined);
  useLiveMessages(client, conversationId, page.loaded, connection);
  useLiveTurns(client, conversationId, page.loaded, connection, followed);
  useRefreshTurnOnAnswer(messages, followed.refreshTurn);
  const older = useOlderPages(client, conversationId, page.conversation?.messages.pageInfo);
  return { messages, loaded: page.loaded, error: page.error, ...older, ...followed };
}

/**
 * The newest page, read from the server each time the conversation is opened
 * (as it is now, not as a previous visit left it), then kept by the cache.
 * `loaded` stays true for the visit once that first answer came.
 */
function useNewestPage(conversationId: string | null) {
  const [page] = useQuery({
    query: MESSAGES_PAGE,
    variables: { id: conversationId ?? "", before: null },
    pause: conversationId === null,
    requestPolicy: "network-only",
  });
  const [visit, setVisit] = useState({ conversationId, loaded: false });
  if (visit.conversationId !== conversationId) setVisit({ conversationId, loaded: false });
  const answered = conversationId !== null && !page.fetching && page.operation?.variables.id === conversationId;
  const data = page.data?.conversation;
  const conversation = conversationId !== null && data?.id === conversationId ? data : undefined;
  const loaded = visit.conversationId === conversationId && (visit.loaded || (answered && conversation !== undefined));
  useEffect(() => {
    if (loaded) setVisit((current) => (current.conversationId === conversationId && !current.loaded ? { conversationId, loaded: true } : current));
  }, [loaded, conversationId]);
  let error: string | undefined;
  if (answered && !conversation) error = page.error ? page.error.message : "This conversation does not exist (any more).";
  return { conversation: loaded ? conversation : undefined, loaded, error };
}

/**
 * Which turn this view follows (only its id is kept here; the turn itself is
 * read from the cache): the page's running or last turn, or one this client started.
 * Opening another conversation forgets it, unless a send there just started it.
 */
function useFollowedTurn(conversationId: string | null, activeTurnId: string | undefined) {
  const [followed, setFollowed] = useState<{ conversationId: string; turnId: string } | null>(null);
  useEffect(() => setFollowed((current) => (current?.conversationId === conversationId ? current : null)), [conversationId]);
  useEffect(() => {
    if (conversationId !== null && activeTurnId !== undefined) setFollowed({ conversationId, turnId: activeTurnId });
  }, [conversationId, activeTurnId]);
  const turnId = followed !== null && followed.conversationId === conversationId ? followed.turnId : null;
  const [result, reexecute] = useQuery({ query: TURN, variables: { id: turnId ?? "" }, pause: turnId === null });
  const node = result.data?.node;
  const turn = node && "status" in node && node.id === turnId ? node : null;
  const refreshTurn = useCallback(() => {
    if (turnId !== null) reexecute({ requestPolicy: "network-only" });
  }, [turnId, reexecute]);

  // While a turn runs, look at it now and then: a turn can end without a message (a failure before any answer).
  useEffect(() => {
    if (turn?.status !== "RUNNING") return;
    const timer = setInterval(refreshTurn, 2000);
    return () => clearInterval(timer);
  }, [turn?.status, refreshTurn]);

  const follow = useCallback(
    (next: TurnView, id: string) =>
      setFollowed((current) => (current?.conversationId === id && current.turnId === next.id ? current : { conversationId: id, turnId: next.id })),
    [],
  );
  return { turn, follow, refreshTurn };
}

/** An answer that settled may have ended its turn: look at the turn again. */
function useRefreshTurnOnAnswer(messages: ChatMessage[], refreshTurn: () => void): void {
  const answer = messages.findLast((message) => message.role === "ASSISTANT");
  const settled = answer && isEnded(answer.status) ? answer.id : undefined;
  useEffect(() => {
    if (settled !== undefined) refreshTurn();
  }, [settled, refreshTurn]);
}

/** Where messageAdded resumes: after the last settled message before anything still streaming, so nothing is missed. */
function resumeAfter(client: Client, conversationId: string): number {
  const read = client.readQuery(MESSAGES_PAGE, { id: conversationId, before: null }, { requestPolicy: "cache-only" });
  const shown = read?.data?.conversation?.messages.edges.map((edge) => edge.node) ?? [];
  const streaming = shown.filter((message) => !isEnded(message.status)).map((message) => message.seq);
  return streaming.length > 0 ? Math.min(...streaming) - 1 : Math.max(0, ...shown.map((message) => message.seq));
}

/**
 * messageAdded and messageStream for the open conversation, once its page is
 * in. Their results go into the cache (cache.ts); nothing is kept here. After
 * a reconnect messageAdded starts again from where the view is (afterSeq),
 * and after a gap in a stream the stream is joined again.
 */
function useLiveMessages(client: Client, conversationId: string | null, loaded: boolean, connection: ConnectionStore): void {
  const [generation, setGeneration] = useState(0);
  const [joins, setJoins] = useState(0);
  useEffect(() => connection.onReconnect(() => setGeneration((g) => g + 1)), [connection]);
  useEffect(() => connection.onStreamGap((id) => id === conversationId && setJoins((j) => j + 1)), [connection, conversationId]);

  useEffect(() => {
    if (conversationId === null || !loaded) return;
    const afterSeq = resumeAfter(client, conversationId);
    const added = client.subscription(MESSAGE_ADDED, { conversationId, afterSeq }).subscribe(() => {});
    return () => added.unsubscribe();
  }, [client, conversationId, loaded, generation]);

  useEffect(() => {
    if (conversationId === null || !loaded) return;
    const stream = client.subscription(MESSAGE_STREAM, { conversationId }).subscribe(() => {});
    return () => stream.unsubscribe();
  }, [client, conversationId, loaded, joins]);
}

/**
 * turnUpdated for the open conversation, once its page is in: each event lands
 * in the cache (the turn with its calls and their approvals), so a pause, a
 * decision taken in another tab or on another device, and a turn's end show at
 * once; a turn started elsewhere is followed. After a reconnect the followed
 * turn is read again, for whatever changed meanwhile.
 */
function useLiveTurns(
  client: Client,
  conversationId: string | null,
  loaded: boolean,
  connection: ConnectionStore,
  followed: { follow: (turn: TurnView, conversationId: string) => void; refreshTurn: () => void },
): void {
  const [generation, setGeneration] = useState(0);
  useEffect(() => connection.onReconnect(() => setGeneration((g) => g + 1)), [connection]);
  // The latest callbacks, without subscribing again each time the followed turn changes.
  const latest = useRef(followed);
  latest.current = followed;

  useEffect(() => {
    if (conversationId === null || !loaded) return;
    if (generation > 0) latest.current.refreshTurn();
    const turns = client.subscription(TURN_UPDATED, { conversationId }).subscribe((result) => {
      const turn = result.data?.turnUpdated;
      if (turn && (turn.status === "RUNNING" || turn.status === "REQUIRES_ACTION")) latest.current.follow(turn, conversationId);
    });
    return () => turns.unsubscribe();
  }, [client, conversationId, loaded, generation]);
}

/** Older pages on demand: the cache's updater puts each above the list (message-cache.ts). */
function useOlderPages(client: Client, conversationId: string | null, pageInfo: MessagePage["pageInfo"] | undefined) {
  const [loadingOlder, setLoadingOlder] = useState(false);
  const hasOlder = pageInfo?.hasPreviousPage ?? false;
  const cursor = pageInfo?.startCursor ?? null;
  const loadOlder = useCallback(() => {
    if (conversationId === null || !hasOlder || loadingOlder) return;
    setLoadingOlder(true);
    void client
      .query(MESSAGES_PAGE, { id: conversationId, before: cursor }, { requestPolicy: "network-only" })
      .toPromise()
      .finally(() => setLoadingOlder(false));
  }, [client, conversationId, hasOlder, cursor, loadingOlder]);
  return { hasOlder, loadingOlder, loadOlder };
}
