/**
 * A user's files are never overwritten unless they asked for it (Deno APIs). Before any work, a
 * command checks every file it will write:
 *
 * - an output that names an input of the same command (data, config, spec, tokenizer, an init
 *   checkpoint) is refused, whatever the flags;
 * - an output that is a directory is refused;
 * - an existing output that is not an earlier output of ours (told by its content: `Ours`) needs
 *   `--force`;
 * - its folder must be writable (`checkWritable`).
 *
 * Each refusal is one line naming the flag, the path and the way out.
 */
import { basename, dirname, join, resolve } from "node:path";
import { checkWritable } from "./files.ts";
import { statePath } from "../io/checkpoint.ts";
import type { RunInput } from "./config_file.ts";
import { resolveTextFiles } from "./text_files.ts";
import { bpePath } from "./tokenizer_file.ts";

/** Whether an existing file is, by its content, an earlier output of ours. */
export type Ours = (path: string) => Promise<boolean>;

/** A file a command will write. */
export interface Output {
  path: string;
  /** The flag that named it (or the one that decides it, e.g. `--out` for a sidecar). */
  flag: string;
  /** What it is, for the messages: `checkpoint`, `picture`, `config.json`. */
  what: string;
  /** Which existing files it may replace without `--force`. */
  ours: Ours;
  /** The way out besides `--force` (default: choose another path). */
  instead?: string;
}

/** A file a command reads. */
export interface Input {
  path: string;
  /** The flag (or config field) that named it. */
  flag: string;
}

/** Reads up to `n` bytes of a file (fewer at its end). */
async function head(path: string, n = 1 << 16): Promise<Uint8Array> {
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const r = await f.read(buf.subarray(got));
      if (r === null) break;
      got += r;
    }
    return buf.subarray(0, got);
  } finally {
    f.close();
  }
}

/** The identity of an existing file (device and inode), or its absolute path when absent. */
async function identity(path: string): Promise<string> {
  try {
    const st = await Deno.stat(path);
    if (st.dev !== null && st.ino !== null) return `${st.dev}:${st.ino}`;
  } catch { /* absent: compare by path */ }
  let dir = resolve(dirname(path));
  try {
    dir = await Deno.realPath(dir);
  } catch { /* a folder yet to be made */ }
  return `${dir}/${basename(path)}`;
}

/** Checks the outputs against the inputs and the files already there (see the file's header). */
export async function guardOutputs(
  outputs: readonly Output[],
  inputs: readonly Input[],
  o: { force?: boolean } = {},
): Promise<void> {
  const ins = await Promise.all(inputs.map(async (i) => ({ ...i, id: await identity(i.path) })));
  for (const out of outputs) {
    const id = await identity(out.path);
    const hit = ins.find((i) => i.id === id);
    if (hit) {
      throw new Error(
        `${out.flag} "${out.path}" would overwrite ${hit.flag} "${hit.path}", an input of this ` +
          `run: choose another output path`,
      );
    }
    const st = await Deno.stat(out.path).catch(() => undefined);
    if (st?.isDirectory) {
      throw new Error(
        `${out.flag} "${out.path}" is a directory: give the ${out.what}'s file path, e.g. ` +
          `${out.path.replace(/\/+$/, "")}/${exampleName(out.what)}`,
      );
    }
    if (st && !o.force && !await out.ours(out.path)) {
      throw new Error(
        `${out.flag}: "${out.path}" exists and is not ${
          article(out.what)
        } ${out.what} written by ` +
          `this tool: ` +
          `pass --force to replace it, or ${out.instead ?? "choose another path"}`,
      );
    }
    await checkWritable(out.path, out.what);
  }
}

function article(noun: string): string {
  return /^[aeiou]/.test(noun) ? "an" : "a";
}

function exampleName(what: string): string {
  if (what === "checkpoint") return "model.safetensors";
  if (what === "picture") return "mask.svg";
  return "out";
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** An `Ours` that reads the file's first 64 KiB. */
function byHead(test: (b: Uint8Array) => boolean): Ours {
  return async (path) => test(await head(path).catch(() => new Uint8Array(0)));
}

/** An `Ours` for a JSON file (at most 64 MiB). */
function byJson(test: (j: Record<string, unknown>) => boolean): Ours {
  return async (path) => {
    try {
      const st = await Deno.stat(path);
      if (st.size > 64 << 20) return false;
      const j = JSON.parse(await Deno.readTextFile(path));
      return typeof j === "object" && j !== null && test(j);
    } catch {
      return false;
    }
  };
}

/** Sidecars named after an output of ours (its training state, loss picture): always ours. */
export const sidecar: Ours = () => Promise.resolve(true);

/** Our safetensors files: checkpoints, training states and token files, by their metadata. */
export const oursSafetensors: Ours = async (path) => {
  const b = await head(path, 8).catch(() => new Uint8Array(0));
  if (b.length < 8) return false;
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (n < 2 || n > 256 << 20) return false;
  try {
    const h = JSON.parse(text((await head(path, 8 + n)).subarray(8)));
    const md = h?.__metadata__ as Record<string, string> | undefined;
    if (!md) return false;
    return (md.format === "pt" && "config" in md && "phd" in md) ||
      md.format === "phd-training-state-1" || md.format === "phd-tokens-1";
  } catch {
    return false;
  }
};

/** Our `config.json` beside a checkpoint: it names the PHD expansion and the tokenizer. */
export const oursHfConfig: Ours = byJson((j) =>
  typeof (j.phd as { K?: unknown } | undefined)?.K === "number" && "tokenizer" in j
);

/** Our pictures: a mask SVG or PNG (their titles say how sparse the tiles are), a chart. */
export const oursPicture: Ours = byHead((b) => {
  const s = new TextDecoder("latin1").decode(b);
  return (s.startsWith("<svg ") && s.includes("<title>")) ||
    (s.startsWith("\x89PNG") && s.includes("tiles keep"));
});

/** A FlexAttention module of `deno task export`. */
export const oursFlexModule: Ours = byHead((b) =>
  /^"""[^\n]*\n\nGenerated by `deno task export /.test(text(b))
);

/** A tokenizer.json (this tool's trained BPE is written beside its checkpoint). */
export const oursTokenizer: Ours = byJson((j) =>
  typeof (j.model as { type?: unknown } | undefined)?.type === "string"
);

/** A compiled spec's .wgsl text. */
export const oursWgsl: Ours = byHead((b) =>
  /^\/\/ [^\n]*\.wgsl: attention kernels of spec /.test(text(b))
);

/** A compiled spec's manifest. */
export const oursManifest: Ours = byJson((j) =>
  typeof j.version === "number" && Array.isArray(j.kernels) && "wgsl" in j
);

/** The autotune cache. */
export const oursTuneCache: Ours = byJson((j) =>
  typeof j.version === "number" && typeof j.entries === "object"
);

/**
 * The files a checkpoint save writes: the model file (an earlier checkpoint of ours may be
 * replaced), its training state and loss picture (sidecars), a trained BPE beside it, and the
 * `config.json` of its folder (only where absent or ours).
 */
export function checkpointOutputs(out: string, flag: string, o: { bpe?: boolean } = {}): Output[] {
  const side = (path: string, what: string) => ({ path, flag, what, ours: sidecar });
  return [
    { path: out, flag, what: "checkpoint", ours: oursSafetensors },
    side(statePath(out), "training state"),
    side(out.replace(/(\.safetensors)?$/, ".loss.svg"), "loss picture"),
    ...(o.bpe ? [side(bpePath(out), "tokenizer")] : []),
    {
      path: join(dirname(out), "config.json"),
      flag,
      what: "checkpoint's config.json",
      ours: oursHfConfig,
      instead: "write the checkpoint into another folder",
    },
  ];
}

/** The files of a run's inputs, data patterns expanded (a pattern matching nothing is skipped). */
export async function runInputs(inputs: readonly RunInput[]): Promise<Input[]> {
  const out: Input[] = [];
  for (const i of inputs) {
    if (!i.pattern) out.push(i);
    else {
      const files = await resolveTextFiles(i.path, i.flag).catch(() => []);
      out.push(...files.map((path) => ({ path, flag: i.flag })));
    }
  }
  return out;
}
