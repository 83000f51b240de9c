/**
 * Prints the README's configuration table from the one declaration of the
 * settings (src/boot/config.ts): `npm run -s config:table`, then paste it over
 * the table. tests/scripts/config-docs.test.ts fails while the two differ.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SETTINGS } from "../src/boot/config.js";
import { settingsOf, type Setting } from "../src/boot/setting.js";

function defaultCell(setting: Setting<unknown>): string {
  if (setting.spec.shownDefault !== undefined) return setting.spec.shownDefault;
  if (setting.defaultValue === undefined) return "—";
  return `\`${String(setting.defaultValue)}\``;
}

export function configTable(): string {
  const rows = settingsOf(SETTINGS).map((setting) => `| \`${setting.env}\` | ${defaultCell(setting)} | ${setting.spec.rule} | ${setting.spec.doc} |`);
  return ["| Variable | Default | Accepts | Meaning |", "|---|---|---|---|", ...rows].join("\n");
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${configTable()}\n`);
}
