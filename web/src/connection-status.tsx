import { useConnectionState, type ConnectionStore } from "./connection";

const LABELS = {
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Reconnecting…",
  unauthenticated: "Signed out",
} as const;

/** The WebSocket's state (connection-status, data-state connected / reconnecting). */
export function ConnectionStatus({ store }: { store: ConnectionStore }) {
  const state = useConnectionState(store);
  return (
    <p className={`status status-${state}`} data-testid="connection-status" data-state={state} role="status">
      <span className="dot" aria-hidden="true" />
      {LABELS[state]}
    </p>
  );
}
