/** Who a verified token speaks for; the only source of a user id. */
export interface Viewer {
  userId: string;
  /**
   * Seconds since the epoch (may be fractional): the token's exp, or sooner
   * with AUTH_MAX_TOKEN_AGE. Sockets and subscriptions close when it passes.
   */
  expiresAt: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<Viewer>;
}
