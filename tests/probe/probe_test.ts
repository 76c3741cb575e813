/**
 * The probe: bad input, odd usage and misuse, run as a user runs them (each command a subprocess),
 * in four families: a user's files are never overwritten, nothing hangs, nothing is silently
 * wrong, and every message names the real cause. Each case checks the exit status (1), exactly
 * one `error:` line on stderr and nothing on stdout, no stack trace, and that every file in the
 * case's folder is byte-identical afterwards and no file appeared (the refusal came before any
 * work). Random cases (fast-check) draw output paths among a run's inputs, flag values and spec
 * sources.
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import fc from "fast-check";
import { type CliResult, DENO_RUN, specFiles } from "../fixtures/cli.ts";
import { needs, PYTHON } from "../fixtures/packages.ts";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { DEFAULT_CONFIG, phdOf } from "../../runtime/model/config.ts";
import { initParams } from "../../runtime/model/params.ts";
import { phdCswa, prefixLm } from "../../dsl/presets.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const DSL = new URL("../../dsl/mod.ts", import.meta.url).href;
/** The names `writeFileAtomic` and `checkWritable` give their temp files. */
const TEMP = /\.tmp-\d+-[0-9a-f]{8}$/;

/** A command line: `deno run` of a cli/ script, or PyTorch's `-m phd_torch`. */
type Command = { deno: string[] } | { torch: string[] };

/** One probe: what runs, and the cause its one error line must name. */
interface Case {
  what: string;
  run: Command;
  pattern: RegExp;
}

async function execute(c: Command): Promise<CliResult> {
  const cmd = "deno" in c
    ? new Deno.Command(Deno.execPath(), { args: [...DENO_RUN, ...c.deno], cwd: ROOT })
    : new Deno.Command(PYTHON, {
      args: ["-m", "phd_torch", ...c.torch],
      cwd: ROOT,
      env: { PYTHONPATH: "python" },
    });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Every file under `dir` with the sha256 of its bytes. A file gone between listing and reading is
 * a concurrent case's transient writability probe (`checkWritable`) and is left out; the batch
 * check, run when no case runs, sees every file.
 */
async function hashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else {
        const bytes = await Deno.readFile(p).catch((err) => {
          if (err instanceof Deno.errors.NotFound) return undefined;
          throw err;
        });
        if (bytes) out[p] = createHash("sha256").update(bytes).digest("hex");
      }
    }
  };
  await walk(dir);
  return out;
}

/** Runs a case in `dir` and checks the refusal and that `dir` is as it was. */
async function probe(dir: string, c: Case): Promise<void> {
  const before = await hashes(dir);
  const r = await execute(c.run);
  const what = `${c.what}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
  assertEquals(r.code, 1, what);
  assertEquals(r.stdout, "", what);
  const lines = r.stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, what);
  match(lines[0], /^error: /, what);
  ok(!/\n\s+at |Traceback|Uncaught/.test(r.stderr), `${what}: a stack trace`);
  match(lines[0], c.pattern, what);
  // Files the case found are as they were; a new or vanished temp file may be a concurrent case's
  // transient probe of writability (runtime/host/files.ts `checkWritable`), so temp files and new
  // files are checked per batch.
  const after = await hashes(dir);
  const changed = Object.keys(before).filter((p) => after[p] !== before[p] && !TEMP.test(p));
  assertEquals(changed, [], `${c.what}: the folder changed`);
}

/**
 * Runs cases `width` at a time (each is a process of its own); after each batch the folder holds
 * exactly what it held before it.
 */
async function probeAll(dir: string, cases: Case[], width = 4): Promise<void> {
  for (let i = 0; i < cases.length; i += width) {
    const batch = cases.slice(i, i + width), before = await hashes(dir);
    await Promise.all(batch.map((c) => probe(dir, c)));
    const names = batch.map((c) => c.what).join("; ");
    assertEquals(await hashes(dir), before, `${names}: the folder changed`);
  }
}

/** A tiny checkpoint of `spec` (bytes tokenizer), with a weight replaced by `poison` if given. */
async function checkpoint(path: string, spec: AttentionSpec, poison?: number): Promise<void> {
  const model = {
    ...DEFAULT_CONFIG.model,
    hidden_size: 16,
    intermediate_size: 32,
    num_attention_heads: 2,
    num_key_value_heads: 1,
  };
  const params = Object.fromEntries(
    Object.entries(initParams(model, { seed: 1, std: 0.1 })).map(([k, v]) => [
      k,
      Float32Array.from(v),
    ]),
  );
  const bytes = encodeCheckpoint({
    model,
    phd: phdOf(spec, spec.baseName),
    spec,
    tokenizer: "bytes",
    context: 16,
    params,
  });
  if (poison !== undefined) {
    // The last tensor's last f32, written after the encoder's own finite check.
    new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 4).setFloat32(0, poison, true);
  }
  await Deno.writeFile(path, bytes);
}

/** A folder with a user's files: text, a config, spec files, a user's config.json and more. */
async function userFolder(): Promise<Record<string, string>> {
  const dir = await specFiles("probe_", ["peek"]);
  const f = (name: string) => join(dir, name);
  await Deno.writeTextFile(f("data.txt"), "The jury said it was a fine day. ".repeat(400));
  await Deno.writeTextFile(f("config.json"), JSON.stringify({ train: { steps: 1 } }));
  await Deno.writeTextFile(f("notes.txt"), "my own notes");
  await Deno.writeTextFile(f("weights.safetensors"), "not ours");
  await Deno.mkdir(f("mine"));
  await Deno.writeTextFile(f("mine/config.json"), JSON.stringify({ my: "own" }));
  await Deno.writeTextFile(f("mine/phd_k3.wgsl"), "my own wgsl");
  const spec = (name: string, body: string) =>
    Deno.writeTextFile(
      f(`${name}.ts`),
      `import { defineAttention, phdBase } from "${DSL}";\n${body}`,
    );
  await spec(
    "next",
    `export default defineAttention({ name: "next", K: 2, mask: ({ q, k }) => k.pos.le(q.pos.add(1)) });`,
  );
  await spec(
    "huge",
    `export default defineAttention({ name: "huge", K: 1e9, mask: (c) => phdBase(c) });`,
  );
  await spec(
    "loops",
    `export default defineAttention({ name: "loops", K: 2, mask: (c) => { for (;;) {} } });`,
  );
  await spec(
    "top",
    `for (;;) {}\nexport default defineAttention({ name: "top", mask: (c) => phdBase(c) });`,
  );
  await checkpoint(f("prefix.safetensors"), prefixLm({ P: 4 }));
  await checkpoint(f("nan.safetensors"), phdCswa({ K: 2, W: 3, C: 4 }), NaN);
  await checkpoint(f("run.step-00000150.safetensors"), phdCswa({ K: 2, W: 3, C: 4 }));
  const good = await Deno.readFile(f("run.step-00000150.safetensors"));
  const damaged = good.slice();
  damaged[8 + 5] = "}".charCodeAt(0);
  await Deno.writeFile(f("damaged.safetensors"), damaged);
  await Deno.writeTextFile(f("mask.py"), "this is not python");
  return { dir, data: f("data.txt"), config: f("config.json"), notes: f("notes.txt") };
}

Deno.test("probe: a user's files are never overwritten, and misuse is one line", async () => {
  const u = await userFolder(), d = u.dir, f = (n: string) => join(d, n);
  const train = (...a: string[]) => ({
    deno: ["cli/train.ts", "--data", u.data, "--steps", "1", ...a],
  });
  const cases: Case[] = [
    // data loss
    { what: "train --out the data", run: train("--out", u.data), pattern: /an input of this run/ },
    {
      what: "train --out the config",
      run: train("--config", u.config, "--out", u.config),
      pattern: /--config .* an input of this run/,
    },
    {
      what: "train beside a user's config.json",
      run: train("--out", f("mine/model.safetensors")),
      pattern: /config\.json" exists and is not a checkpoint's config\.json .* --force/,
    },
    {
      what: "train --out a user's file",
      run: train("--out", u.notes),
      pattern: /exists and is not a checkpoint written by this tool: pass --force/,
    },
    { what: "train --out a folder", run: train("--out", d), pattern: /is a directory/ },
    {
      what: "export --out its spec",
      run: { deno: ["cli/export.ts", f("peek.ts"), "--to", "flex", "--out", f("peek.ts")] },
      pattern: /an input of this run/,
    },
    {
      what: "export --out a folder",
      run: { deno: ["cli/export.ts", "phd", "--to", "flex", "--out", d] },
      pattern: /is a directory/,
    },
    {
      what: "mask --png a user's file",
      run: { deno: ["cli/mask.ts", "phd", "--L", "4", "--png", u.notes] },
      pattern: /not a picture written by this tool/,
    },
    {
      what: "mask --svg a folder",
      run: { deno: ["cli/mask.ts", "phd", "--L", "4", "--svg", d] },
      pattern: /is a directory/,
    },
    {
      what: "compile over a user's .wgsl",
      run: { deno: ["cli/compile.ts", "phd", "--out", f("mine")] },
      pattern: /phd_k3\.wgsl" exists and is not a kernel file written by this tool/,
    },
    {
      what: "autotune --cache a user's file",
      run: { deno: ["cli/autotune.ts", "--cache", u.notes] },
      pattern: /not an autotune cache written by this tool/,
    },
    {
      what: "tokenize --out a user's .safetensors",
      run: { deno: ["cli/tokenize.ts", "--data", u.data, "--out", f("weights.safetensors")] },
      pattern: /not a token file written by this tool: pass --force/,
    },
    // nothing hangs
    {
      what: "mask --K 10^9",
      run: { deno: ["cli/mask.ts", "phd", "--L", "8", "--K", "1000000000"] },
      pattern: /must be an integer in \[1, 256\]/,
    },
    {
      what: "mask --L 10^9",
      run: { deno: ["cli/mask.ts", "phd", "--L", "1000000000"] },
      pattern: /L in \[1, 262144\]/,
    },
    {
      what: "mask --tile 1 at the longest L",
      run: { deno: ["cli/mask.ts", "phd", "--L", "262144", "--tile", "1"] },
      pattern: /786432 x 786432 tiles, past the analysis's 16384 a side: use a tile of at least 48/,
    },
    {
      what: "a spec declaring K: 1e9",
      run: { deno: ["cli/mask.ts", f("huge.ts"), "--L", "8"] },
      pattern: /K of spec "huge" must be an integer in \[1, 256\]/,
    },
    {
      what: "a mask that never returns (mask)",
      run: { deno: ["cli/mask.ts", f("loops.ts"), "--L", "8", "--spec-timeout", "2"] },
      pattern: /did not finish loading within 2 s/,
    },
    {
      what: "a mask that never returns (train)",
      run: train("--spec", f("loops.ts"), "--spec-timeout", "2", "--out", f("out/o.safetensors")),
      pattern: /did not finish loading within 2 s/,
    },
    {
      what: "a module that loops at top level",
      run: { deno: ["cli/mask.ts", f("top.ts"), "--L", "8", "--spec-timeout", "2"] },
      pattern: /did not finish loading within 2 s/,
    },
    {
      what: "generate --max-new-tokens 10^9",
      run: {
        deno: [
          "cli/generate.ts",
          "--ckpt",
          f("run.step-00000150.safetensors"),
          "--max-new-tokens",
          "1000000000",
        ],
      },
      pattern: /--max-new-tokens <= \d+/,
    },
    // nothing silently wrong
    {
      what: "train a spec that sees the next position",
      run: train("--spec", f("next.ts"), "--out", f("out/o.safetensors")),
      pattern: /is not causal: query \(copy \d, pos \d+\) attends key/,
    },
    {
      what: "train a prefix-LM without --allow-leak",
      run: train("--spec", "prefix-lm", "--out", f("out/o.safetensors")),
      pattern: /predictions see their target: .* pass --allow-leak/,
    },
    {
      what: "eval a prefix-LM checkpoint without --allow-leak",
      run: { deno: ["cli/eval.ts", "--ckpt", f("prefix.safetensors"), "--text-file", u.data] },
      pattern: /pass --allow-leak/,
    },
    {
      what: "generate a prefix-LM checkpoint",
      run: { deno: ["cli/generate.ts", "--ckpt", f("prefix.safetensors")] },
      pattern: /is not causal: .* cannot decode token by token/,
    },
    {
      what: "eval of non-finite weights",
      run: { deno: ["cli/eval.ts", "--ckpt", f("nan.safetensors"), "--text-file", u.data] },
      pattern: /holds NaN .* use an earlier checkpoint/,
    },
    // messages that name the real cause
    {
      what: "--tokenizer bpe:abc",
      run: train("--tokenizer", "bpe:abc"),
      pattern: /bpe:N needs an integer N in \[258, 65536\]/,
    },
    {
      what: "--tokenizer bpe:1e9",
      run: train("--tokenizer", "bpe:1e9"),
      pattern: /bpe:N needs an integer N/,
    },
    {
      what: "a bad --lr with a config file",
      run: train("--config", u.config, "--lr", "5", "--out", f("out/o.safetensors")),
      pattern: /^error: --lr must be in \(0, 1\], got 5$/,
    },
    {
      what: "a damaged header",
      run: { deno: ["cli/eval.ts", "--ckpt", f("damaged.safetensors"), "--text-file", u.data] },
      pattern: /header is damaged/,
    },
    {
      what: "a final checkpoint a kill never wrote",
      run: { deno: ["cli/eval.ts", "--ckpt", f("run.safetensors"), "--text-file", u.data] },
      pattern: /run\.step-00000150\.safetensors, or continue the run with deno task train --resume/,
    },
  ];
  try {
    await probeAll(d, cases);
  } finally {
    await Deno.remove(d, { recursive: true });
  }
});

Deno.test(needs("python3-torch", "probe: the PyTorch side refuses in one line too", async () => {
  const u = await userFolder(), d = u.dir, f = (n: string) => join(d, n);
  const ckpt = f("run.step-00000150.safetensors");
  const mask = f("mask.flex.py");
  const exported = await execute({
    deno: ["cli/export.ts", ckpt, "--to", "flex", "--out", mask],
  });
  assertEquals(exported.code, 0, exported.stderr);
  const tokens = f("tokens.safetensors");
  const tokenized = await execute({ deno: ["cli/tokenize.ts", "--data", u.data, "--out", tokens] });
  assertEquals(tokenized.code, 0, tokenized.stderr);
  const cases: Case[] = [
    {
      what: "phd_torch --mask that is not a module",
      run: {
        torch: [
          "generate",
          "--mask",
          f("mask.py"),
          "--ckpt",
          ckpt,
          "--prompt",
          "a",
          "--max-new-tokens",
          "2",
        ],
      },
      pattern: /is not a mask module of deno task export/,
    },
    {
      what: "phd_torch generate --max-new-tokens 10^9",
      run: {
        torch: [
          "generate",
          "--mask",
          mask,
          "--ckpt",
          ckpt,
          "--prompt",
          "a",
          "--max-new-tokens",
          "1000000000",
        ],
      },
      pattern: /--max-new-tokens <= \d+/,
    },
    {
      what: "phd_torch eval of non-finite weights",
      run: {
        torch: ["eval", "--mask", mask, "--ckpt", f("nan.safetensors"), "--text-file", u.data],
      },
      pattern: /non-finite|another spec|trained with/,
    },
    {
      what: "phd_torch train --out a user's file",
      run: {
        torch: [
          "train",
          "--mask",
          mask,
          "--init",
          ckpt,
          "--tokens",
          tokens,
          "--steps",
          "1",
          "--out",
          u.notes,
        ],
      },
      pattern: /exists and is not a checkpoint written by this tool: pass --force/,
    },
  ];
  try {
    await probeAll(d, cases, 2);
  } finally {
    await Deno.remove(d, { recursive: true });
  }
}));

Deno.test("probe, random: outputs among the inputs, odd flag values, garbage specs", async () => {
  const u = await userFolder(), d = u.dir, f = (n: string) => join(d, n);
  const inputs = [u.data, u.config, f("peek.ts")];
  const outs = fc.sample(fc.constantFrom(...inputs), { numRuns: 3 }).map((out): Case => ({
    what: `train --out ${out}`,
    run: {
      deno: ["cli/train.ts", "--config", u.config, "--data", u.data, "--out", out],
    },
    pattern: /an input of this run|exists and is not a checkpoint written by this tool/,
  }));
  const flags = fc.sample(
    fc.tuple(
      fc.constantFrom("--K", "--W", "--tile", "--L"),
      fc.oneof(fc.constantFrom("0", "-1", "1e9", "x", "2.5", "", "99999999999"), fc.string()),
    ),
    { numRuns: 6 },
  ).map(([flag, v]): Case => ({
    what: `mask ${flag} ${JSON.stringify(v)}`,
    run: {
      deno: ["cli/mask.ts", "phd-cswa", ...(flag === "--L" ? [] : ["--L", "8"]), flag, v],
    },
    pattern: /.+/,
  }));
  const sources = fc.sample(fc.string({ maxLength: 40 }), { numRuns: 4 });
  const garbage = await Promise.all(sources.map(async (src, i): Promise<Case> => {
    await Deno.writeTextFile(f(`garbage${i}.ts`), src);
    return {
      what: `a garbage spec ${JSON.stringify(src)}`,
      run: { deno: ["cli/mask.ts", f(`garbage${i}.ts`), "--L", "4"] },
      pattern: /spec file/,
    };
  }));
  try {
    // A drawn flag value that happens to be valid (--W 2.5 is not; --tile 3 is) is no refusal.
    const refused: Case[] = [];
    for (const c of [...outs, ...flags, ...garbage]) {
      if ((await execute(c.run)).code !== 0) refused.push(c);
    }
    ok(refused.length >= outs.length + garbage.length, "the refusals were drawn");
    await probeAll(d, refused);
  } finally {
    await Deno.remove(d, { recursive: true });
  }
});
