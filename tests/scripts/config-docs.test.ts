import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { configTable } from "../../scripts/config-table.js";
import { ROOT } from "../../scripts/code-shape.js";
import { loadConfig, SETTINGS } from "../../src/boot/config.js";
import { settingsOf } from "../../src/boot/setting.js";

const declared = settingsOf(SETTINGS);

/** The README's configuration table: from its header row to the first line that is not a row. */
function readmeTable(): string {
  const lines = readFileSync(path.join(ROOT, "README.md"), "utf8").split("\n");
  const start = lines.findIndex((line) => line.startsWith("| Variable |"));
  expect(start).toBeGreaterThan(-1);
  const end = lines.findIndex((line, index) => index > start && !line.startsWith("|"));
  return lines.slice(start, end).join("\n");
}

/** `NAME=value` and `# NAME=value` lines of .env.example, in order. */
function envExample(): { name: string; value: string; commented: boolean }[] {
  const text = readFileSync(path.join(ROOT, ".env.example"), "utf8");
  return [...text.matchAll(/^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((match) => ({
    name: match[2] as string,
    value: (match[3] as string).trim(),
    commented: match[1] !== undefined,
  }));
}

describe("the configuration's documentation", () => {
  it("should show in the README the table printed from the settings' declaration (npm run -s config:table)", () => {
    expect(readmeTable()).toBe(configTable());
  });

  it("should declare each environment variable once", () => {
    const names = declared.map((setting) => setting.env);
    expect(new Set(names).size).toBe(names.length);
  });

  it("should name every declared setting in .env.example, and no other", () => {
    const named = [...new Set(envExample().map((line) => line.name))].sort();
    expect(named).toEqual(declared.map((setting) => setting.env).sort());
  });

  it("should give in .env.example only example values that the setting accepts", () => {
    for (const { name, value } of envExample().filter((line) => line.value !== "")) {
      const setting = declared.find((candidate) => candidate.env === name);
      expect(setting?.read({ [name]: value }), `${name}=${value}`).toMatchObject({ ok: true });
    }
  });

  it("should start with the settings .env.example leaves uncommented", () => {
    const active = Object.fromEntries(
      envExample()
        .filter((line) => !line.commented)
        .map((line) => [line.name, line.value]),
    );
    expect(Object.keys(active).length).toBeGreaterThan(0);
    expect(() => loadConfig(active)).not.toThrow();
  });
});
