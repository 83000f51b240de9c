import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // Node resolves `graphql` to its CommonJS build (it has no `exports` map), and
    // so do Pothos and Yoga. Vite would pick the `module` build for our sources,
    // and graphql refuses to mix objects from two copies of itself.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  test: {
    include: ["tests/**/*.test.ts"],
    globalSetup: ["tests/helpers/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more workers only queue on the database.
    maxWorkers: 2,
    // A worker runs its files one after another in one module graph instead of a fresh one per file:
    // importing the app (Prisma's client, the schema, Yoga) took ~2 s a file, 40 % of the suite's time.
    // Every file starts and stops its own servers and fixtures (unique ids, port 0), so none sees
    // another's state. Checked by running the files shuffled (`npx vitest run --sequence.shuffle.files`).
    isolate: false,
  },
});
