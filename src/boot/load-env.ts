import { statSync } from "node:fs";

// Imported first by every entry point (server, stdio MCP, scripts), so each one
// reads ./.env the same way. Variables already in the environment win: Node's
// loader never overwrites them. Nothing is written to stdout, which is the MCP
// stdio protocol's channel.

function loadEnv(file: string): void {
  try {
    // Node's loader reports a folder named .env only as "should be a valid string".
    if (!statSync(file).isFile()) throw new Error(`${file} is not a file`);
    process.loadEnvFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    process.stderr.write(`Cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}

loadEnv(".env");
