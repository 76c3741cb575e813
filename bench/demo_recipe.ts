/**
 * The demo recipe sweep (bench/RESULTS.md, Demo): for each arm (a model size or training setting
 * over `DEMO_CONFIG`) it tunes the arm's kernels into the autotune cache (`deno task autotune
 * --quick`), measures the CPU time of its whole training steps in process (tuned kernels, Brown
 * batches; llvmpipe's threads are this process's), takes CPU time over `--cores` as the step time
 * of an unloaded machine, plans the steps that fit into `--train-seconds` at that rate, and runs
 * the demo itself on the arm for exactly those steps (`cli/demo.ts --config ARM --steps N
 * --no-tune --json`). CPU time rather than wall time because a shared machine's load moves wall
 * times several-fold between arms while the work per step stays put; the validation loss of a
 * fixed step count does not depend on the load at all. Wall step times and the load average are
 * recorded beside it. Then, on the best arm's checkpoint, a grid of sampling settings
 * (`cli/generate.ts`, four prompts) scores how English the continuations read: the share of their
 * words found in the Brown training text, and the share of distinct words (repetition loops score
 * low).
 *
 *   deno run -A bench/demo_recipe.ts [--train-seconds S] [--arms a,b] [--probe-steps N]
 *     [--cores C] [--probe-only [--untuned]] [--json]
 *
 * `--probe-only` stops after the step times; with `--untuned` they are the default kernels' (what
 * tuning inside the demo buys).
 */
import { type Config, DEMO_CONFIG } from "../runtime/model/config.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { buildCorpus } from "../runtime/data/batches.ts";
import { ByteTokenizer } from "../runtime/data/tokenizer.ts";
import { loadBrown } from "../runtime/host/corpus.ts";
import { countedKernels, loadKernelChoosers } from "../runtime/host/tune_cache.ts";
import { writeFileAtomic } from "../runtime/host/files.ts";
import { Trainer } from "../runtime/train/trainer.ts";
import process from "node:process";
import { timeRuns } from "../runtime/measure/timing.ts";

/** One arm: what it changes in the demo recipe. */
interface Arm {
  name: string;
  model?: Partial<Config["model"]>;
  train?: Partial<Config["train"]>;
  phd?: Partial<Config["phd"]>;
}

/** Widths, depths, batch and context shapes, and K around the demo's first recipe. */
const ARMS: Arm[] = [
  { name: "h64-l2", model: { hidden_size: 64, intermediate_size: 192, num_hidden_layers: 2 } },
  { name: "h64-l4", model: { hidden_size: 64, intermediate_size: 192, num_hidden_layers: 4 } },
  {
    name: "h96-l3",
    model: { hidden_size: 96, intermediate_size: 288, num_hidden_layers: 3 },
    train: { lr: 6e-3 },
  },
  {
    name: "h128-l2",
    model: { hidden_size: 128, intermediate_size: 384, num_hidden_layers: 2 },
    train: { lr: 5e-3 },
  },
  {
    name: "h128-l2-b8",
    model: { hidden_size: 128, intermediate_size: 384, num_hidden_layers: 2 },
    train: { lr: 4e-3, batch_size: 8 },
  },
  { name: "h64-l2-t128", train: { batch_size: 8, seq_len: 128 } },
  { name: "h64-l2-t256", train: { batch_size: 4, seq_len: 256 } },
  { name: "h64-l2-k3", phd: { K: 3 } },
];

/** Prompts of the sampling grid. */
const PROMPTS = ["The committee said that the", "In the morning", "He was", "It is not"];

/** Sampling settings of the grid. */
const SAMPLINGS = [
  { temperature: 0.5, topK: 10 },
  { temperature: 0.6, topK: 10 },
  { temperature: 0.8, topK: 10 },
  { temperature: 0.6, topK: 40 },
  { temperature: 1.0, topK: 0 },
];

/** Lower-case words of a text (letters and apostrophes). */
function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z']+/g) ?? [];
}

/**
 * How English a continuation reads: the share of its words (the last one may be cut off and is
 * left out) found in `vocab`, and the share of distinct ones among them.
 */
export function wordScore(texts: string[], vocab: Set<string>) {
  const ws = texts.flatMap((t) => words(t).slice(0, -1));
  const known = ws.filter((w) => vocab.has(w)).length;
  return {
    words: ws.length,
    known: ws.length ? known / ws.length : 0,
    distinct: new Set(ws).size / Math.max(1, ws.length),
  };
}

function armConfig(a: Arm): Config {
  const c = structuredClone(DEMO_CONFIG);
  Object.assign(c.model, a.model);
  Object.assign(c.train, a.train);
  Object.assign(c.phd, a.phd);
  return c;
}

/** Wall and CPU milliseconds per whole training step, over `steps` steps after a warm-up one. */
async function stepTimes(trainer: Trainer, steps: number) {
  const queue = trainer.ctx.gpu.device.queue;
  const step = () => {
    trainer.trainStep();
    return queue.onSubmittedWorkDone();
  };
  await step(); // pipelines, first uploads
  const cpu0 = process.cpuUsage();
  const ms = await timeRuns(step, { rounds: steps, warmup: 0 });
  const cpu = process.cpuUsage(cpu0);
  return {
    wallMs: ms.reduce((a, b) => a + b, 0) / steps,
    cpuMs: (cpu.user + cpu.system) / 1000 / steps,
  };
}

function flag(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

function loadAverage(): number {
  try {
    return Deno.loadavg()[0];
  } catch {
    return NaN;
  }
}

/** Runs `deno run -A <script> ...args` and returns its stdout; a failure is one error line. */
async function deno(script: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`${script} ${args.join(" ")} exited ${out.code}`);
  return new TextDecoder().decode(out.stdout);
}

if (import.meta.main) {
  const args = Deno.args;
  const trainSeconds = Number(flag(args, "--train-seconds", "200"));
  const probeSteps = Number(flag(args, "--probe-steps", "12"));
  const cores = Number(flag(args, "--cores", `${navigator.hardwareConcurrency}`));
  const only = flag(args, "--arms", "").split(",").filter((x) => x);
  if (!(trainSeconds > 0 && cores > 0) || !(Number.isInteger(probeSteps) && probeSteps > 0)) {
    console.error(
      "error: --train-seconds and --cores need numbers > 0, --probe-steps an integer > 0",
    );
    Deno.exit(1);
  }
  const arms = only.length ? ARMS.filter((a) => only.includes(a.name)) : ARMS;
  if (arms.length === 0) {
    console.error(`error: --arms names none of ${ARMS.map((a) => a.name).join(", ")}`);
    Deno.exit(1);
  }
  const dir = await Deno.makeTempDir({ prefix: "demo_recipe_" });
  const ctx = await createContext();
  const corpus = buildCorpus(await loadBrown({ cacheDir: ".cache" }), new ByteTokenizer());
  const rows = [];
  for (const arm of arms) {
    const config = armConfig(arm), t = config.train;
    const file = `${dir}/${arm.name}.json`;
    await writeFileAtomic(file, JSON.stringify(config));
    const untuned = args.includes("--probe-only") && args.includes("--untuned");
    if (!untuned) await deno("cli/autotune.ts", ["--quick", "--config", file, "--json"]);
    const tuned = countedKernels(await loadKernelChoosers(ctx));
    const trainer = new Trainer(
      ctx,
      config,
      corpus,
      untuned ? {} : { matmul: tuned.matmul, attention: tuned.attention },
    );
    const loadProbe = loadAverage();
    const times = await stepTimes(trainer, probeSteps), ms = times.cpuMs / cores;
    const params = trainer.params.count;
    trainer.destroy();
    const tokensPerStep = t.batch_size * t.seq_len;
    const steps = Math.max(t.warmup + 1, Math.floor(trainSeconds * 1000 / ms));
    if (args.includes("--probe-only")) {
      const probe = {
        arm: arm.name,
        kernels: untuned ? "default" : "tuned",
        params,
        cpu_ms: times.cpuMs,
        wall_ms: times.wallMs,
        steps,
      };
      console.log(JSON.stringify({ ...probe, load: loadProbe }));
      continue;
    }
    const loadTrain = loadAverage();
    const r = JSON.parse(
      (await deno("cli/demo.ts", [
        "--config",
        file,
        "--steps",
        `${steps}`,
        "--no-tune",
        "--json",
        "--quiet",
        "--out",
        `${dir}/${arm.name}`,
      ])).trim().split("\n").at(-1)!,
    );
    const row = {
      arm: arm.name,
      params,
      hidden: config.model.hidden_size,
      layers: config.model.num_hidden_layers,
      K: config.phd.K,
      batch: t.batch_size,
      seq_len: t.seq_len,
      lr: t.lr,
      step_ms: +ms.toFixed(1),
      cpu_ms: +times.cpuMs.toFixed(1),
      wall_ms: +times.wallMs.toFixed(1),
      tokens_per_s: Math.round(tokensPerStep / (ms / 1000)),
      steps,
      tokens: steps * tokensPerStep,
      val_loss: +r.val_loss_after.toFixed(4),
      train_seconds: +r.train_seconds.toFixed(1),
      load: [+loadProbe.toFixed(1), +loadTrain.toFixed(1)],
      continuation: r.continuation,
      checkpoint: r.checkpoint,
    };
    rows.push(row);
    console.error(JSON.stringify(row));
  }
  if (rows.length === 0) Deno.exit(0); // --probe-only
  const best = rows.reduce((a, b) => (b.val_loss < a.val_loss ? b : a));
  const vocab = new Set(words(new TextDecoder().decode(Uint8Array.from(corpus.train))));
  const samplings = [];
  for (const sm of SAMPLINGS) {
    const g = JSON.parse(
      await deno("cli/generate.ts", [
        "--ckpt",
        best.checkpoint,
        ...PROMPTS.flatMap((p) => ["--prompt", p]),
        "--max-new-tokens",
        "200",
        "--temperature",
        `${sm.temperature}`,
        "--top-k",
        `${sm.topK}`,
        "--top-p",
        "1",
        "--seed",
        "1",
        "--json",
      ]),
    );
    const texts: string[] = g.batch.map((b: { text: string }) => b.text);
    const score = wordScore(texts, vocab);
    samplings.push({ ...sm, ...score, sample: texts[0].slice(0, 120) });
    console.error(JSON.stringify(samplings.at(-1)));
  }
  if (args.includes("--json")) {
    console.log(
      JSON.stringify({
        adapter: ctx.gpu.adapterName,
        trainSeconds,
        rows,
        best: best.arm,
        samplings,
      }),
    );
  } else {
    console.log(
      [
        `adapter ${ctx.gpu.adapterName}; step ms = CPU ms per step / ${cores} cores; steps = ` +
        `${trainSeconds} s at that rate`,
        "",
        "| arm | params | hidden x layers | K | batch x seq | lr | CPU ms | step ms | tokens/s | steps | val loss (nats/byte) | wall ms (load 1-min) |",
        "| --- | -----: | --------------- | -: | ----------- | -: | -----: | ------: | -------: | ----: | -------------------: | -------------------- |",
        ...rows.map((x) =>
          `| ${x.arm} | ${x.params} | ${x.hidden} x ${x.layers} | ${x.K} | ${x.batch} x ${x.seq_len} | ` +
          `${x.lr} | ${x.cpu_ms} | ${x.step_ms} | ${x.tokens_per_s} | ${x.steps} | ${x.val_loss} | ` +
          `${x.wall_ms} (${x.load[0]}) |`
        ),
        "",
        `sampling on ${best.arm} (4 prompts x 200 bytes): share of words in the Brown training ` +
        "text, share of distinct words",
        "",
        "| temperature | top-k | words | in Brown | distinct | first prompt's continuation |",
        "| ----------: | ----: | ----: | -------: | -------: | --------------------------- |",
        ...samplings.map((x) =>
          `| ${x.temperature} | ${x.topK} | ${x.words} | ${(100 * x.known).toFixed(0)}% | ${
            (100 * x.distinct).toFixed(0)
          }% | ${JSON.stringify(x.sample)} |`
        ),
      ].join("\n"),
    );
  }
}
