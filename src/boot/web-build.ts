import { ensureWebBuild } from "../server/web-ui/build.js";
import { webUiWanted } from "./config.js";

/**
 * web/dist, built when the web client is on (WEB_UI, else not in production) and its sources
 * changed: what `npm start` does before the server starts, without tsx (scripts/build.mjs --web
 * runs this from the bundle, dist/boot/web-build.js). Returns whether it built.
 */
export async function ensureWebBuildIfWanted(log: (line: string) => void): Promise<boolean> {
  if (!webUiWanted()) return false;
  return ensureWebBuild(log);
}
