import type { Viewer } from "../auth.js";
import type { Db } from "../db/client.js";

/** Per-operation context. The database is injected by buildApp, so several app instances can share one process. */
export interface Context {
  viewer: Viewer;
  db: Db;
  requestId: string;
}
