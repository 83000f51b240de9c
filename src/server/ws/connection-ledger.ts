/** How many sockets may be open, counted from their upgrade (see WsSettings in src/config.ts). */
export interface ConnectionCaps {
  /** Every socket in this process, authenticated or not (WS_MAX_CONNECTIONS). */
  maxConnections: number;
  /** Sockets of one user on this instance (WS_CONNECTIONS_PER_USER). */
  connectionsPerUser: number;
  /** Sockets of one remote address that have not authenticated yet (WS_UNAUTHENTICATED_PER_ADDRESS). */
  unauthenticatedPerAddress: number;
}

/** One socket's place in the ledger, from its upgrade until its TCP socket closes. */
export interface Seat {
  readonly address: string;
  userId: string | undefined;
  released: boolean;
}

export type Admission = { seat: Seat } | { refused: "process" | "address" };

/**
 * The counts behind the connection caps. A socket is counted from its upgrade
 * request, under its remote address while it has not authenticated, then under
 * its user; it leaves when its TCP socket closes, whatever the reason.
 */
export class ConnectionLedger {
  private open = 0;
  private readonly pendingByAddress = new Map<string, number>();
  private readonly byUser = new Map<string, number>();

  constructor(private readonly caps: ConnectionCaps) {}

  get connections(): number {
    return this.open;
  }

  get unauthenticated(): number {
    let count = 0;
    for (const n of this.pendingByAddress.values()) count += n;
    return count;
  }

  /** Distinct users with a socket open here. */
  get users(): number {
    return this.byUser.size;
  }

  connectionsOf(userId: string): number {
    return this.byUser.get(userId) ?? 0;
  }

  /** At the upgrade request, before anything is allocated for the socket. */
  admit(address: string): Admission {
    if (this.open >= this.caps.maxConnections) return { refused: "process" };
    const pending = this.pendingByAddress.get(address) ?? 0;
    if (pending >= this.caps.unauthenticatedPerAddress) return { refused: "address" };
    this.open += 1;
    this.pendingByAddress.set(address, pending + 1);
    return { seat: { address, userId: undefined, released: false } };
  }

  /** Moves the seat from its address to its user; false (nothing changes) when the user has as many sockets as allowed. */
  authenticate(seat: Seat, userId: string): boolean {
    if (seat.released || seat.userId !== undefined) return false;
    const count = this.byUser.get(userId) ?? 0;
    if (count >= this.caps.connectionsPerUser) return false;
    this.unpend(seat.address);
    seat.userId = userId;
    this.byUser.set(userId, count + 1);
    return true;
  }

  /** Idempotent: the socket's TCP connection has closed. */
  release(seat: Seat): void {
    if (seat.released) return;
    seat.released = true;
    this.open -= 1;
    if (seat.userId === undefined) return this.unpend(seat.address);
    const count = (this.byUser.get(seat.userId) ?? 1) - 1;
    // Deleted at zero, so the map holds only users with a socket open.
    if (count <= 0) this.byUser.delete(seat.userId);
    else this.byUser.set(seat.userId, count);
  }

  private unpend(address: string): void {
    const count = (this.pendingByAddress.get(address) ?? 1) - 1;
    if (count <= 0) this.pendingByAddress.delete(address);
    else this.pendingByAddress.set(address, count);
  }
}
