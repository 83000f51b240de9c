import { useSyncExternalStore } from "react";

/** The WebSocket's state, as the indicator shows it (data-state). */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "unauthenticated";

/**
 * The graphql-ws connection's state, and signals for views that must catch
 * up: after a reconnect (re-read lists, resume messages with afterSeq), and
 * after a conversation's stream lost text (join it again: the server then
 * sends everything so far).
 */
export class ConnectionStore {
  private current: ConnectionState = "connecting";
  private readonly listeners = new Set<() => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly streamGapListeners = new Set<(conversationId: string) => void>();

  get state(): ConnectionState {
    return this.current;
  }

  set(state: ConnectionState): void {
    if (state === this.current) return;
    this.current = state;
    for (const listener of this.listeners) listener();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Called after a reconnect: the socket is back and the subscriptions run again. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  reconnected(): void {
    for (const listener of this.reconnectListeners) listener();
  }

  /** Called when a messageStream event did not follow on from the text shown (never expected). */
  onStreamGap(listener: (conversationId: string) => void): () => void {
    this.streamGapListeners.add(listener);
    return () => this.streamGapListeners.delete(listener);
  }

  streamGap(conversationId: string): void {
    for (const listener of this.streamGapListeners) listener(conversationId);
  }
}

export function useConnectionState(store: ConnectionStore): ConnectionState {
  return useSyncExternalStore(store.subscribe, () => store.state);
}
