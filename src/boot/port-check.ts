import { createServer } from "node:net";
import { ListenError } from "./startup-errors.js";

/**
 * Binds and releases port:host, so a port in use is reported before seconds
 * go into starting and migrating a database. app.start() can still lose a race
 * for the port; main.ts reports that the same way.
 */
export async function assertCanListen(port: number, host: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (cause) => reject(new ListenError(port, host, { cause })));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}
