// Types for scripts/build.mjs (plain JavaScript, so that it runs on Node alone), for the TypeScript that imports it.
import type { BuildOptions } from "esbuild";

export declare const DIST_DIR: string;
export declare function bundleOptions(where: { entryPoints: string[]; outdir: string; outbase: string }): BuildOptions;
export declare function ensureServerBuild(options?: { force?: boolean; log?: (line: string) => void }): Promise<boolean>;
