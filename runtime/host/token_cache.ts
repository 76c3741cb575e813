/**
 * The tokenised cache of a text corpus (Deno APIs), and the corpus served from it. The files are
 * tokenised once, document pieces streamed (runtime/host/text_files.ts), documents separated by
 * the tokenizer's separator, into `<cacheDir>/tokens/<key>.tok`, where the key is the SHA-256 of
 * the files' contents, the JSONL field and the tokenizer's metadata: a second run with the same
 * text and tokenizer reads the cache instead of tokenising. Training then reads windows from the
 * file (`TokenFile`), so memory does not grow with the corpus.
 *
 * File format (little-endian): 64-byte header = magic `PHDTOK01`, u32 bytes per id (1, 2 or 4),
 * u32 0, u64 id count, 32-byte SHA-256 of the payload, 8 zero bytes; then the ids. A cache whose
 * header, size or payload hash is wrong is rebuilt with one warning line. Written atomically.
 * `tokens/index.json` remembers, per set of files (paths, sizes, modification times), field and
 * tokenizer, the content key and the cache file's own size and time when it was last checked:
 * when nothing changed, a run opens the cache without hashing anything (a cache file modified
 * since goes through the full check).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Corpus, TokenSource } from "../data/batches.ts";
import type { DataConfig } from "../model/config.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { chunks, documentPieces, resolveTextFiles } from "./text_files.ts";
import { writeAll, writeFileAtomic, writeStreamAtomic } from "./files.ts";

const MAGIC = "PHDTOK01";
const HEADER = 64;
/** Ids buffered before a write. */
const FLUSH = 1 << 16;

/** Bytes per id for a vocabulary. */
export function idWidth(vocabSize: number): 1 | 2 | 4 {
  return vocabSize <= 256 ? 1 : vocabSize <= 65536 ? 2 : 4;
}

function readFully(f: Deno.FsFile, at: number, out: Uint8Array): void {
  f.seekSync(at, Deno.SeekMode.Start);
  for (let n = 0; n < out.length;) {
    const r = f.readSync(out.subarray(n));
    if (r === null) throw new Error("token cache ended early");
    n += r;
  }
}

/**
 * A token stream served from a file (a cache file, or a split of a token file): `subarray` reads
 * the ids from disk, `base` bytes into the file.
 */
export class TokenFile implements TokenSource {
  private constructor(
    readonly file: Deno.FsFile,
    readonly width: 1 | 2 | 4,
    readonly offset: number,
    readonly length: number,
    readonly base = HEADER,
  ) {}

  /** `length` u32 ids that start `base` bytes into an open file (runtime/host/token_file.ts). */
  static at(file: Deno.FsFile, base: number, length: number): TokenFile {
    return new TokenFile(file, 4, 0, length, base);
  }

  /** Opens a cache file; throws (one line) when its header or size is wrong. */
  static open(path: string): TokenFile {
    const f = Deno.openSync(path);
    try {
      const h = new Uint8Array(HEADER);
      readFully(f, 0, h);
      if (new TextDecoder().decode(h.subarray(0, 8)) !== MAGIC) throw new Error("bad magic");
      const dv = new DataView(h.buffer);
      const width = dv.getUint32(8, true), count = Number(dv.getBigUint64(16, true));
      if (width !== 1 && width !== 2 && width !== 4) throw new Error(`bad id width ${width}`);
      const size = f.statSync().size;
      if (size !== HEADER + count * width) {
        throw new Error(`size ${size} is not ${HEADER + count * width}`);
      }
      return new TokenFile(f, width, 0, count);
    } catch (e) {
      f.close();
      throw e;
    }
  }

  subarray(start: number, end: number): Uint32Array {
    const s = Math.max(0, Math.min(start, this.length)),
      e = Math.max(s, Math.min(end, this.length));
    const bytes = new Uint8Array((e - s) * this.width);
    readFully(this.file, this.base + (this.offset + s) * this.width, bytes);
    if (this.width === 4) return new Uint32Array(bytes.buffer);
    return Uint32Array.from(this.width === 2 ? new Uint16Array(bytes.buffer) : bytes);
  }

  /** The ids `[start, start + length)` as their own stream (same file). */
  view(start: number, length: number): TokenFile {
    return new TokenFile(this.file, this.width, this.offset + start, length, this.base);
  }

  /** Closes the file; the stream (and every view of it) can no longer be read. */
  close(): void {
    this.file.close();
  }
}

/** SHA-256 (hex) of everything that decides a cache's content. */
async function contentKey(files: string[], field: string, tokenizer: Tokenizer): Promise<string> {
  const h = createHash("sha256");
  h.update(`${MAGIC}\0${field}\0`).update(tokenizer.metadata());
  for (const f of files) {
    h.update(`\0file\0${f.endsWith(".jsonl") ? "jsonl" : "text"}\0`);
    for await (const c of chunks(f)) h.update(c);
  }
  return h.digest("hex");
}

/** Checks a cache file's payload against its header's hash; a reason when it fails. */
async function verify(path: string, width: number): Promise<string | undefined> {
  let tf: TokenFile;
  try {
    tf = TokenFile.open(path);
  } catch (e) {
    return (e as Error).message;
  }
  tf.close();
  if (tf.width !== width) return `id width ${tf.width}, the tokenizer needs ${width}`;
  const h = createHash("sha256");
  let header: Uint8Array | undefined;
  for await (const c of chunks(path)) {
    if (!header) {
      header = c.slice(0, HEADER); // chunks are reused views: keep a copy
      h.update(c.subarray(HEADER));
    } else h.update(c);
  }
  const want = Array.from(header!.subarray(24, 56), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  return h.digest("hex") === want ? undefined : "payload hash mismatch";
}

async function build(
  path: string,
  files: string[],
  o: { field: string; tokenizer: Tokenizer; bytes: number; log?: (line: string) => void },
): Promise<void> {
  let done = 0, shown = performance.now();
  const width = idWidth(o.tokenizer.vocabSize), sepId = o.tokenizer.separator;
  const h = createHash("sha256");
  // One id buffer and one byte buffer, reused for every flush.
  let count = 0, docs = 0, n = 0;
  const buf = new Uint32Array(FLUSH), out = new Uint8Array(FLUSH * width);
  const wide = width === 4
    ? new Uint32Array(out.buffer)
    : width === 2
    ? new Uint16Array(out.buffer)
    : out;
  await writeStreamAtomic(path, async (f) => {
    const flush = async () => {
      wide.set(buf.subarray(0, n)); // a truncating copy: the ids fit `width` bytes
      const bytes = out.subarray(0, n * width);
      h.update(bytes);
      await writeAll(f, bytes);
      count += n;
      n = 0;
    };
    const push = async (ids: Uint32Array) => {
      for (let at = 0; at < ids.length;) {
        if (n === buf.length) await flush();
        const take = Math.min(ids.length - at, buf.length - n);
        buf.set(ids.subarray(at, at + take), n);
        n += take;
        at += take;
      }
    };
    await writeAll(f, new Uint8Array(HEADER)); // filled in at the end
    let open = false;
    for (const file of files) {
      for await (const piece of documentPieces(file, o.field)) {
        if (!open && docs > 0) await push(Uint32Array.of(sepId));
        open = true;
        await push(o.tokenizer.encode(piece.text));
        done += piece.text.length;
        if (performance.now() - shown > 5000) {
          shown = performance.now();
          o.log?.(`  tokenised ${mib(done)} of ${mib(o.bytes)} MiB`);
        }
        if (piece.end) {
          docs++;
          open = false;
        }
      }
    }
    await flush();
    const head = new Uint8Array(HEADER), dv = new DataView(head.buffer);
    head.set(new TextEncoder().encode(MAGIC));
    dv.setUint32(8, width, true);
    dv.setBigUint64(16, BigInt(count), true);
    head.set(h.digest(), 24);
    await f.seek(0, Deno.SeekMode.Start);
    await writeAll(f, head);
  });
}

/** Options of `tokenCache`. */
export interface TokenCacheOptions {
  /** The JSONL field holding a document's text (`data.field`). */
  field: string;
  /** The tokenizer that makes the ids (part of the cache's key). */
  tokenizer: Tokenizer;
  /** Folder of caches (its `tokens/` subfolder). */
  cacheDir: string;
  /** Where the warning about a corrupt cache goes. Default `console.warn`. */
  warn?: (line: string) => void;
  /** Progress of long work: hashing or tokenising more than a few MiB. */
  log?: (line: string) => void;
}

/**
 * The token stream of `files` from its cache, building (or rebuilding a corrupt) one first.
 * `built` says whether it was tokenised now.
 */
export async function tokenCache(
  files: string[],
  o: TokenCacheOptions,
): Promise<{ source: TokenFile; path: string; built: boolean }> {
  const dir = join(o.cacheDir, "tokens");
  // A run whose files, field and tokenizer look as when the cache was last checked (same sizes
  // and modification times), and whose cache file was not touched since, skips both hash passes.
  const seen = await statKey(files, o);
  const index = await readIndex(dir);
  const hit = index[seen];
  if (hit && await sameStat(join(dir, `${hit.key}.tok`), hit.cache)) {
    try {
      return {
        source: TokenFile.open(join(dir, `${hit.key}.tok`)),
        path: join(dir, `${hit.key}.tok`),
        built: false,
      };
    } catch { /* fall through to the checked path */ }
  }
  const bytes = (await Promise.all(files.map((f) => Deno.stat(f)))).reduce((t, x) => t + x.size, 0);
  if (bytes > 16 << 20) o.log?.(`hashing ${files.length} file(s), ${mib(bytes)} MiB ...`);
  const key = await contentKey(files, o.field, o.tokenizer);
  const path = join(dir, `${key}.tok`);
  const width = idWidth(o.tokenizer.vocabSize);
  let built = false;
  let exists = true;
  try {
    await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    exists = false;
  }
  if (exists) {
    const bad = await verify(path, width);
    if (bad) {
      (o.warn ?? console.warn)(`warning: token cache ${path} is corrupt (${bad}); rebuilding it`);
      exists = false;
    }
  }
  if (!exists) {
    if (bytes > 1 << 20) {
      o.log?.(`tokenising ${files.length} file(s), ${mib(bytes)} MiB (${o.tokenizer.name}) ...`);
    }
    await build(path, files, { ...o, bytes });
    built = true;
  }
  const st = await Deno.stat(path);
  index[seen] = { key, cache: { size: st.size, mtime: st.mtime?.getTime() ?? 0 } };
  for (const [k, e] of Object.entries(index)) {
    if (!await sameStat(join(dir, `${e.key}.tok`), e.cache)) delete index[k]; // gone or changed
  }
  await writeFileAtomic(join(dir, INDEX), JSON.stringify(index));
  return { source: TokenFile.open(path), path, built };
}

/** The index of checked caches: file-stat key -> content key and the cache file's stat. */
const INDEX = "index.json";
type Index = Record<string, { key: string; cache: { size: number; mtime: number } }>;

async function readIndex(dir: string): Promise<Index> {
  try {
    const x = JSON.parse(await Deno.readTextFile(join(dir, INDEX)));
    return typeof x === "object" && x !== null && !Array.isArray(x) ? x : {};
  } catch {
    return {}; // missing or unreadable: every cache gets the checked path
  }
}

async function statKey(files: string[], o: TokenCacheOptions): Promise<string> {
  const h = createHash("sha256").update(`${MAGIC}\0${o.field}\0`).update(o.tokenizer.metadata());
  for (const f of files) {
    const st = await Deno.stat(f);
    h.update(`\0${f}\0${st.size}\0${st.mtime?.getTime() ?? 0}`);
  }
  return h.digest("hex");
}

async function sameStat(path: string, want?: { size: number; mtime: number }): Promise<boolean> {
  try {
    const st = await Deno.stat(path);
    return st.size === want?.size && (st.mtime?.getTime() ?? 0) === want?.mtime;
  } catch {
    return false;
  }
}

/** A corpus of text files: its streams, the files, and the cache files read. */
export interface TextCorpus extends Corpus {
  /** The training split's tokens. */
  train: TokenFile;
  /** The validation split's tokens. */
  val: TokenFile;
  /** The text files of each split, resolved from the `data` patterns. */
  files: { train: string[]; val: string[] };
  /** The cache files the streams are read from. */
  caches: string[];
  /** Whether any cache was tokenised in this call. */
  built: boolean;
}

/**
 * The corpus of a `data` section (train files non-empty): tokenised through the cache, the
 * validation stream from `data.val`, or else the last `val_fraction` of the training ids (files
 * in sorted path order; cut at an id, so the split depends only on the text and tokenizer).
 */
export async function loadTextCorpus(
  data: DataConfig,
  tokenizer: Tokenizer,
  o: { cacheDir: string; warn?: (line: string) => void; log?: (line: string) => void },
): Promise<TextCorpus> {
  const trainFiles = await resolveTextFiles(data.train, "data.train");
  const valFiles = data.val === "" ? [] : await resolveTextFiles(data.val, "data.val");
  const opts = { field: data.field, tokenizer, cacheDir: o.cacheDir, warn: o.warn, log: o.log };
  const tr = await tokenCache(trainFiles, opts);
  let train = tr.source, val: TokenFile, built = tr.built;
  const caches = [tr.path];
  if (valFiles.length > 0) {
    const v = await tokenCache(valFiles, opts);
    val = v.source;
    built ||= v.built;
    caches.push(v.path);
  } else {
    const cut = Math.floor(train.length * (1 - data.val_fraction));
    val = train.view(cut, train.length - cut);
    train = train.view(0, cut);
  }
  return {
    train,
    val,
    separator: tokenizer.separator,
    files: { train: trainFiles, val: valFiles },
    caches,
    built,
  };
}

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}
