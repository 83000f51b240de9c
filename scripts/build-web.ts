// Builds the web client into web/dist, unless it was built from the same sources already.
// `npm run web:build` (`-- --force` rebuilds) and `npm run dev` (predev, --if-enabled). At install and
// before `npm start`, scripts/build.mjs --web does the same through the bundle (dist/boot/web-build.js).
import "../src/boot/load-env.js";
import { rm } from "node:fs/promises";
import { webUiWanted } from "../src/boot/config.js";
import { ensureWebBuild, WEB_DIST_DIR } from "../src/server/web-ui/build.js";

if (process.argv.includes("--if-enabled") && !webUiWanted()) {
  console.log("WEB_UI is off: the web client is not built");
  process.exit(0);
}
if (process.argv.includes("--force")) await rm(WEB_DIST_DIR, { recursive: true, force: true });
try {
  const built = await ensureWebBuild((line) => console.log(line));
  if (!built) console.log("web client is up to date (web/dist)");
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}
