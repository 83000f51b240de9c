import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built into web/dist and served by the API server at `/` (WEB_UI). The build
// has no inline script or style, so the page runs under a strict CSP
// (src/server/web-ui/serve.ts); file names carry content hashes, so assets are cached for a year.
export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
  },
});
