/**
 * `deno task bench corpus-memory [--sizes 10,1024] [--steps N] [--json]`: peak resident memory of
 * `deno task train` on generated text files of the given sizes (MiB), once while tokenising into
 * the cache and once reading from it: streamed corpora should cost the same whatever their size.
 * Each run is `/usr/bin/time -v` around the train task's command (its maximum resident set size);
 * the text files and their token caches are deleted afterwards.
 */
import { join } from "node:path";
import { Rng } from "../runtime/data/rng.ts";

const WORDS = ("the of and to a in that is was he for it with as his on be at by this had not " +
  "are but from or have an they which one you were her all she there would their we him been " +
  "has when who will more no if out so said what up its about into than them can only other new " +
  "some could time these two may then do first any my now such like our over man me even most")
  .split(" ");

/** Writes `mib` MiB of made-up lines (a 1.6 MB block, rotated so that no two blocks match). */
async function writeText(path: string, mib: number): Promise<void> {
  const r = new Rng(7), lines: string[] = [];
  for (let i = 0; i < 20000; i++) {
    lines.push(Array.from({ length: 14 }, () => WORDS[r.int(WORDS.length)]).join(" "));
  }
  const block = lines.join("\n") + "\n", enc = new TextEncoder();
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let n = 0, i = 0; n < mib * 2 ** 20; i++) {
    const at = (i * 37) % 1000;
    const bytes = enc.encode(block.slice(at) + block.slice(0, at));
    for (let w = 0; w < bytes.length;) w += await f.write(bytes.subarray(w));
    n += bytes.length;
  }
}

interface Run {
  mib: number;
  phase: "tokenise" | "cached";
  max_rss_mb: number;
  seconds: number;
}

async function timedTrain(
  args: string[],
): Promise<{ rssMb: number; seconds: number; err: string }> {
  const cmd = new Deno.Command("/usr/bin/time", {
    args: ["-v", Deno.execPath(), "run", "-A", "--v8-flags=--max-semi-space-size=2", ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "null",
  });
  const t0 = performance.now();
  let out: Deno.CommandOutput;
  try {
    out = await cmd.output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("needs GNU time at /usr/bin/time (apt-get install time)");
    }
    throw e;
  }
  const err = new TextDecoder().decode(out.stderr);
  if (out.code !== 0) {
    throw new Error(`train failed: ${err.trim().split("\n").slice(-3).join(" | ")}`);
  }
  const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1]);
  return { rssMb: kb / 1000, seconds: (performance.now() - t0) / 1000, err };
}

export async function main(args: string[]): Promise<void> {
  const flag = (name: string, def: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
  };
  const sizes = flag("--sizes", "10,1024").split(",").map(Number);
  if (sizes.some((s) => !(s > 0))) throw new Error("--sizes takes MiB values like 10,1024");
  const steps = flag("--steps", "20");
  const dir = await Deno.makeTempDir({ prefix: "corpus_memory_" });
  const config = join(dir, "tiny.json");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      model: {
        hidden_size: 16,
        intermediate_size: 24,
        num_attention_heads: 2,
        num_key_value_heads: 1,
      },
      train: { batch_size: 2, seq_len: 16, eval_every: 0, eval_batches: 1 },
    }),
  );
  const runs: Run[] = [];
  try {
    for (const mib of sizes) {
      const text = join(dir, `${mib}mib.txt`);
      await writeText(text, mib);
      let cache: string | undefined;
      for (const phase of ["tokenise", "cached"] as const) {
        const r = await timedTrain([
          "cli/train.ts",
          ...["--config", config, "--spec", "examples/masks/phd_swa_pos.ts", "--data", text],
          ...["--steps", steps, "--out", join(dir, "m.safetensors")],
        ]);
        cache ??= /into (\S+\.tok)\)/.exec(r.err)?.[1];
        runs.push({ mib, phase, max_rss_mb: r.rssMb, seconds: r.seconds });
      }
      await Deno.remove(text);
      if (cache) await Deno.remove(cache).catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  if (args.includes("--json")) {
    console.log(JSON.stringify({ steps: Number(steps), runs }));
    return;
  }
  console.log(`train ${steps} steps of phd_swa_pos (tiny model) on generated text; peak RSS:`);
  for (const r of runs) {
    console.log(
      `${String(r.mib).padStart(6)} MiB  ${r.phase.padEnd(8)}  ${r.max_rss_mb.toFixed(1)} MB` +
        `  ${r.seconds.toFixed(1)} s`,
    );
  }
}
