/**
 * Close codes of this server beyond graphql-ws' own (4400, 4401, 4403, 4408,
 * 4409, 4429, 4500) and 1001 at shutdown; the README's "WebSocket limits" lists them.
 */
export const WsCloseCode = {
  /**
   * Policy Violation: the user already has WS_CONNECTIONS_PER_USER sockets open
   * here. graphql-ws clients do not retry it; close another socket first.
   */
  TooManyConnections: 1008,
  /**
   * The socket left more than WS_MAX_BUFFERED_BYTES of output unread (413:
   * too large). graphql-ws clients reconnect after it; a new socket starts empty.
   */
  SendBufferFull: 4413,
} as const;
