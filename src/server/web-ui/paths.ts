import path from "node:path";
import { fileURLToPath } from "node:url";

// Apart from the builder, so the server knows where the bundle is without loading the builder.

/** The repository root: this folder is three levels down, in src/ and in dist/ alike. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const WEB_DIR = path.join(ROOT, "web");
export const WEB_DIST_DIR = path.join(WEB_DIR, "dist");
