/**
 * The demo recipe sweep (bench/RESULTS.md, Demo): for each arm (a model size or training setting
 * over `DEMO_CONFIG`) it tunes the arm's kernels into the autotune cache (`deno task autotune
 * --quick`), measures its training throughput in process (median whole-step time with the tuned
 * kernels, Brown batches), plans the steps that throughput fits into `--train-seconds`, and runs
 * the demo itself on the arm for exactly those steps (`cli/demo.ts --config ARM --steps N
 * --no-tune --json`), so its validation loss is the one a run of that budget reaches at the
 * measured rate, whatever else loads the machine while it trains. The machine's load average is
 * recorded per arm.
 *
 *   deno run -A bench/demo_recipe.ts [--train-seconds S] [--arms a,b] [--probe-steps N] [--json]
 */
import { type Config, DEMO_CONFIG } from "../runtime/model/config.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { buildCorpus } from "../runtime/data/batches.ts";
import { ByteTokenizer } from "../runtime/data/tokenizer.ts";
import { loadBrown } from "../runtime/host/corpus.ts";
import { countedKernels, loadKernelChoosers } from "../runtime/host/tune_cache.ts";
import { writeFileAtomic } from "../runtime/host/files.ts";
import { Trainer } from "../runtime/train/trainer.ts";
import { stepMs } from "./train.ts";

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
  { name: "h64-l2-k3", phd: { K: 3 } },
];

function armConfig(a: Arm): Config {
  const c = structuredClone(DEMO_CONFIG);
  Object.assign(c.model, a.model);
  Object.assign(c.train, a.train);
  Object.assign(c.phd, a.phd);
  return c;
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
  const only = flag(args, "--arms", "").split(",").filter((x) => x);
  if (!(trainSeconds > 0) || !(Number.isInteger(probeSteps) && probeSteps > 0)) {
    console.error("error: --train-seconds needs a number > 0 and --probe-steps an integer > 0");
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
    await deno("cli/autotune.ts", ["--quick", "--config", file, "--json"]);
    const tuned = countedKernels(await loadKernelChoosers(ctx));
    const trainer = new Trainer(ctx, config, corpus, {
      matmul: tuned.matmul,
      attention: tuned.attention,
    });
    const loadProbe = loadAverage();
    const ms = await stepMs(trainer, probeSteps);
    const params = trainer.params.count;
    trainer.destroy();
    const tokensPerStep = t.batch_size * t.seq_len;
    const steps = Math.max(t.warmup + 1, Math.floor(trainSeconds * 1000 / ms));
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
      tokens_per_s: Math.round(tokensPerStep / (ms / 1000)),
      steps,
      tokens: steps * tokensPerStep,
      val_loss: +r.val_loss_after.toFixed(4),
      train_seconds: +r.train_seconds.toFixed(1),
      load: [+loadProbe.toFixed(1), +loadTrain.toFixed(1)],
      continuation: r.continuation,
    };
    rows.push(row);
    console.error(JSON.stringify(row));
  }
  if (args.includes("--json")) {
    console.log(JSON.stringify({ adapter: ctx.gpu.adapterName, trainSeconds, rows }));
  } else {
    console.log(
      [
        `adapter ${ctx.gpu.adapterName}; steps = the arm's measured rate x ${trainSeconds} s`,
        "",
        "| arm | params | hidden x layers | K | batch x seq | lr | step ms | tokens/s | steps | val loss (nats/byte) | load 1-min (probe, train) |",
        "| --- | -----: | --------------- | -: | ----------- | -: | ------: | -------: | ----: | -------------------: | ------------------------- |",
        ...rows.map((x) =>
          `| ${x.arm} | ${x.params} | ${x.hidden} x ${x.layers} | ${x.K} | ${x.batch} x ${x.seq_len} | ` +
          `${x.lr} | ${x.step_ms} | ${x.tokens_per_s} | ${x.steps} | ${x.val_loss} | ${
            x.load.join(", ")
          } |`
        ),
      ].join("\n"),
    );
  }
}
