import path from "node:path";
import { PROJECT_ROOT } from "../../lib/project-root.js";

// Apart from the builder, so the server knows where the bundle is without loading the builder.

export const ROOT = PROJECT_ROOT;
export const WEB_DIR = path.join(ROOT, "web");
export const WEB_DIST_DIR = path.join(WEB_DIR, "dist");
