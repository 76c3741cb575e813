/**
 * Training text on disk (Deno APIs): `data.train` / `data.val` patterns (files, folders, globs)
 * resolved to a sorted list of files, and those files streamed as pieces of documents, so no
 * whole file is ever held: a text file is one document read in line-aligned pieces of at most
 * 16 Ki characters; a `.jsonl` file holds one document per line, in its `field` string. Every problem is one
 * line naming the file (and line).
 */
import { join, resolve, sep } from "node:path";

/** Extensions taken from a folder (a file named directly, or by a glob, may have any). */
export const TEXT_EXTENSIONS = [".txt", ".text", ".md", ".jsonl"];

/**
 * Bytes read per chunk when streaming a file, and characters per piece handed to a tokenizer.
 * Small on purpose: every buffer derived from a piece (its text, its ids) stays in V8's young
 * generation, so memory stays flat however large the corpus (with 1 MiB pieces, building the
 * cache of a 1 GiB file raised peak RSS by 20%).
 */
const CHUNK = 64 << 10;
const PIECE = 16 << 10;

function globRegex(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "*" && pattern[i + 1] === "*") {
      re += pattern[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += pattern[i + 2] === "/" ? 2 : 1;
    } else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

async function walk(dir: string, out: string[]): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory) await walk(p, out);
    else if (e.isFile) out.push(p);
  }
}

/**
 * The files a pattern names: a file; a folder (its text files, recursively, see
 * `TEXT_EXTENSIONS`); or a glob with `*`, `**` and `?`. Sorted by path; one line when nothing
 * matches.
 */
export async function resolveTextFiles(patterns: string | string[], what: string) {
  const list = typeof patterns === "string" ? [patterns] : patterns;
  const files = new Set<string>();
  for (const pat of list) {
    const p = resolve(pat);
    const found: string[] = [];
    if (/[*?]/.test(p)) {
      const parts = p.split(sep);
      const fixed = parts.findIndex((s) => /[*?]/.test(s));
      const root = parts.slice(0, fixed).join(sep) || sep;
      const re = globRegex(parts.join("/"));
      const all: string[] = [];
      try {
        await walk(root, all);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      found.push(...all.filter((f) => re.test(f.split(sep).join("/"))));
    } else {
      let st: Deno.FileInfo;
      try {
        st = await Deno.stat(p);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new Error(`${what} "${pat}" does not exist`);
        }
        throw e;
      }
      if (st.isFile) found.push(p);
      else {
        const all: string[] = [];
        await walk(p, all);
        found.push(...all.filter((f) => TEXT_EXTENSIONS.some((x) => f.endsWith(x))));
      }
    }
    if (found.length === 0) {
      throw new Error(
        `${what} "${pat}" matches no file (folders are searched for ${
          TEXT_EXTENSIONS.join(" ")
        } files)`,
      );
    }
    for (const f of found) files.add(f);
  }
  return [...files].sort();
}

/** A piece of a document; `end` marks its last piece. */
export interface TextPiece {
  text: string;
  end: boolean;
}

async function* lines(path: string): AsyncGenerator<string> {
  const dec = new TextDecoder("utf-8");
  let carry = "";
  for await (const chunk of chunks(path)) {
    carry += dec.decode(chunk, { stream: true });
    const cut = carry.lastIndexOf("\n");
    if (cut < 0) continue;
    const whole = carry.slice(0, cut);
    carry = carry.slice(cut + 1);
    yield* whole.split("\n");
  }
  carry += dec.decode();
  if (carry.length > 0) yield carry;
}

/**
 * The raw bytes of a file, a chunk at a time. Each chunk is a view of one reused buffer: valid
 * until the next one is asked for (copy what must outlive it).
 */
export async function* chunks(path: string): AsyncGenerator<Uint8Array> {
  using f = await Deno.open(path);
  const buf = new Uint8Array(CHUNK);
  while (true) {
    const n = await f.read(buf);
    if (n === null) return;
    yield buf.subarray(0, n);
  }
}

/**
 * The documents of a file as pieces: text files in line-aligned chunks (one document); JSONL one
 * document per non-empty line, its `field` string.
 */
export async function* documentPieces(path: string, field: string): AsyncGenerator<TextPiece> {
  if (path.endsWith(".jsonl")) {
    let n = 0;
    for await (const line of lines(path)) {
      n++;
      if (line.trim() === "") continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        throw new Error(`${path}:${n}: not a JSON line`);
      }
      const text = (row as Record<string, unknown> | null)?.[field];
      if (typeof text !== "string") {
        throw new Error(
          `${path}:${n}: no string field "${field}" (set data.field to the field holding the text)`,
        );
      }
      yield { text, end: true };
    }
    return;
  }
  const dec = new TextDecoder("utf-8");
  let carry = "";
  for await (const chunk of chunks(path)) {
    // One string per chunk, cut into line-aligned pieces of about PIECE characters (a longer
    // line is one piece; a file without newlines is still streamed, cut past a few chunks).
    const text = carry + dec.decode(chunk, { stream: true });
    let at = 0;
    while (text.length - at > PIECE) {
      let cut = text.lastIndexOf("\n", at + PIECE);
      if (cut < at) cut = text.indexOf("\n", at + PIECE);
      if (cut < 0) break;
      yield { text: text.slice(at, cut + 1), end: false };
      at = cut + 1;
    }
    const last = text.lastIndexOf("\n");
    if (last >= at) {
      yield { text: text.slice(at, last + 1), end: false };
      at = last + 1;
    }
    carry = text.slice(at);
    if (carry.length > 4 * CHUNK) {
      yield { text: carry, end: false };
      carry = "";
    }
  }
  yield { text: carry + dec.decode(), end: true };
}

/** The first `maxChars` characters of the files' documents (BPE training's sample). */
export async function sampleText(files: string[], field: string, maxChars: number) {
  const out: string[] = [];
  let n = 0;
  for (const f of files) {
    for await (const p of documentPieces(f, field)) {
      out.push(p.text.slice(0, maxChars - n));
      n += out[out.length - 1].length;
      if (n >= maxChars) return out;
    }
  }
  return out;
}
