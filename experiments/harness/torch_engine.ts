/**
 * The PyTorch engine of `deno task experiment --engine torch` (Deno APIs): each run is one process
 * of python/phd_torch (`phd_torch train`, docs/SCALE_OUT.md) with one BLAS thread, so `--jobs N`
 * runs N side by side and a run's arithmetic does not depend on N. Per run, in a scratch folder:
 *
 * - the step-0 checkpoint this runtime writes for the seed (`initParams`: the weights the WebGPU
 *   engine starts from), which phd_torch continues with `--init`;
 * - the mask module exported from that checkpoint (deno task export's job, so it names the same
 *   spec) and a config file holding the run's whole train section, its steps planned as the WebGPU
 *   engine plans them (experiments/harness/run.ts `planRun`);
 * - the suite's corpus, written once per suite as a token file (runtime/host/token_file.ts), from
 *   which phd_torch draws the batches the WebGPU engine draws (the mulberry32 sampler of
 *   runtime/data/batches.ts) and validates on the same windows at the same steps.
 *
 * A task suite's accuracy is measured here, on WebGPU, from the run's final checkpoint with the
 * WebGPU engine's `taskAccuracy`: one definition for both engines.
 */
import { join, resolve } from "node:path";
import type { Corpus } from "../../runtime/data/batches.ts";
import type { KernelContext } from "../../runtime/gpu/kernel.ts";
import type { Layout } from "../../compiler/layout.ts";
import { loadCheckpoint, saveCheckpoint } from "../../runtime/host/checkpoint.ts";
import { writeTokenFile } from "../../runtime/host/token_file.ts";
import { exportCommand } from "../../runtime/jobs/export.ts";
import type { Config } from "../../runtime/model/config.ts";
import { initParams, ModelParams } from "../../runtime/model/params.ts";
import { Trainer } from "../../runtime/train/trainer.ts";
import { bitsPerToken } from "../../runtime/train/evaluate.ts";
import type { Engine, EngineInfo, EngineJob } from "./engines.ts";
import { planRun, type RunResult } from "./run.ts";
import { slug } from "./suite.ts";
import { taskAccuracy } from "./tasks.ts";

/** Debian's interpreter, whose python3-torch `deno task test` installs. */
export const TORCH_PYTHON = "/usr/bin/python3";
const PYTHON_DIR = new URL("../../python", import.meta.url).pathname;
/** The tokenizer of every corpus a suite trains on (Brown and the tasks are bytes). */
const TOKENIZER = "bytes";

/** What the torch engine needs besides the suite. */
export interface TorchOptions {
  /** For the FLOP count of a step (`Trainer.flopsPerStep`) and task accuracy. */
  ctx: KernelContext;
  corpus: Corpus;
  layout: Layout;
  /** A folder whose `libblas.so.3` the runs load first (Debian's OpenBLAS, unpacked). */
  blas?: string;
  python?: string;
}

/** phd_torch train's `--json` report (python/phd_torch/train.py), the fields read here. */
interface TorchReport {
  steps: number;
  losses: [number, number][];
  val_loss: number;
  val_losses: [number, number][];
  train_seconds: number;
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

/** Checks `--torch-blas DIR` before any work: it must hold libblas.so.3. */
export async function checkBlasDir(dir: string): Promise<string> {
  const lib = join(dir, "libblas.so.3");
  if (!(await Deno.stat(lib).catch(() => undefined))?.isFile) {
    throw new Error(
      `--torch-blas ${dir} holds no libblas.so.3: give the folder of one, e.g. Debian's OpenBLAS ` +
        "unpacked as deno task bench peers --help says (.cache/openblas/usr/lib/x86_64-linux-gnu/" +
        "openblas-pthread)",
    );
  }
  return resolve(dir);
}

export class TorchEngine implements Engine {
  readonly maxJobs = Infinity;
  #flops = new Map<string, number>();

  private constructor(
    readonly info: EngineInfo,
    readonly o: TorchOptions,
    readonly dir: string,
    readonly tokens: string,
    readonly env: Record<string, string>,
  ) {}

  /**
   * Probes the interpreter (`phd_torch engine`: torch, BLAS, device; one line when torch is
   * missing) and writes the suite's token file into a scratch folder.
   */
  static async open(o: TorchOptions): Promise<TorchEngine> {
    const env: Record<string, string> = {
      PYTHONPATH: PYTHON_DIR,
      OMP_NUM_THREADS: "1",
      OPENBLAS_NUM_THREADS: "1",
      MKL_NUM_THREADS: "1",
      ...(o.blas ? { LD_LIBRARY_PATH: o.blas } : {}),
    };
    const python = o.python ?? TORCH_PYTHON;
    let probe: Deno.CommandOutput;
    try {
      probe = await new Deno.Command(python, { args: ["-m", "phd_torch", "engine"], env }).output();
    } catch (e) {
      throw new Error(`--engine torch: cannot run ${python} (${(e as Error).message})`);
    }
    if (!probe.success) {
      throw new Error(
        `--engine torch: ${python} -m phd_torch engine failed (${
          lastLine(new TextDecoder().decode(probe.stderr))
        }): install python3-torch`,
      );
    }
    const info = JSON.parse(new TextDecoder().decode(probe.stdout)) as EngineInfo;
    const dir = await Deno.makeTempDir({ prefix: "experiment_torch_" });
    const tokens = join(dir, "tokens.safetensors");
    const source = { train: [], val: [], field: "text" };
    await writeTokenFile(tokens, o.corpus, {
      tokenizer: TOKENIZER,
      vocabSize: 256,
      separator: o.corpus.separator,
      source,
    });
    return new TorchEngine(info, o, dir, tokens, env);
  }

  /** Model FLOPs of one training step of an arm, as the WebGPU engine counts them. */
  #flopsPerStep(j: EngineJob): number {
    let f = this.#flops.get(j.arm);
    if (f === undefined) {
      const t = new Trainer(this.o.ctx, j.config, this.o.corpus, { spec: j.spec });
      f = t.flopsPerStep;
      t.destroy();
      this.#flops.set(j.arm, f);
    }
    return f;
  }

  async run(j: EngineJob, signal: AbortSignal): Promise<RunResult> {
    const c: Config = structuredClone(j.config);
    const flopsPerStep = this.#flopsPerStep(j);
    const plan = planRun(c, { ...j, flopsPerStep });
    c.train.steps = plan.steps;
    const dir = await Deno.makeTempDir({ dir: this.dir, prefix: `${slug(j.arm)}_s${j.seed}_` });
    try {
      const init = join(dir, "init.safetensors"), mask = join(dir, "mask.py");
      // not config.json: that name beside --out is the checkpoint's own (phd_torch guards it)
      const config = join(dir, "train_config.json"), out = join(dir, "final.safetensors");
      const weights = initParams(c.model, { seed: c.train.seed, std: 0.02 });
      await saveCheckpoint(init, {
        model: c.model,
        phd: c.phd,
        spec: j.spec,
        tokenizer: TOKENIZER,
        context: c.train.seq_len,
        params: Object.fromEntries(
          Object.entries(weights).map(([k, v]) => [k, Float32Array.from(v)]),
        ),
      });
      const flags = { to: "flex" as const, layout: this.o.layout, L: c.train.seq_len, out: mask };
      await exportCommand(init, flags, [init, "--to", "flex", "--layout", this.o.layout]);
      const train = { ...c.train, eval_every: 0, save_every: 0, save_every_seconds: 0 };
      await Deno.writeTextFile(
        config,
        JSON.stringify({ model: c.model, train: { ...train, log_every: plan.logEvery } }),
      );
      const args = [
        ...["-m", "phd_torch", "train", "--mask", mask, "--init", init, "--config", config],
        ...["--tokens", this.tokens, "--threads", "1", "--json", "--out", out],
        ...(plan.evalSteps.length ? ["--eval-at", plan.evalSteps.join(",")] : []),
      ];
      const r = await new Deno.Command(this.o.python ?? TORCH_PYTHON, {
        args,
        env: this.env,
        stdout: "piped",
        stderr: "piped",
        signal,
      }).output();
      if (!r.success) {
        const why = lastLine(new TextDecoder().decode(r.stderr)).replace(/^error: /, "");
        throw new Error(`arm "${j.arm}" seed ${j.seed}: phd_torch train: ${why}`);
      }
      const report = JSON.parse(new TextDecoder().decode(r.stdout)) as TorchReport;
      const perStep = c.train.batch_size * c.train.seq_len;
      const accuracy = j.taskExamples ? await this.#accuracy(out, j) : undefined;
      return {
        arm: j.arm,
        seed: j.seed,
        spec: j.spec.name,
        K: j.spec.K,
        params: Object.values(weights).reduce((n, a) => n + a.length, 0),
        steps: report.steps,
        tokens: report.steps * perStep,
        flops: report.steps * flopsPerStep,
        train_seconds: report.train_seconds,
        losses: report.losses,
        curve: [...report.val_losses, [report.steps, report.val_loss]].map((
          [step, loss],
        ): [number, number] => [step * perStep, loss]),
        val_loss: report.val_loss,
        val_bpb: bitsPerToken(report.val_loss),
        ...(accuracy === undefined ? {} : { accuracy }),
      };
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }

  /** Greedy exact-match accuracy of a run's final checkpoint, on WebGPU (`taskAccuracy`). */
  async #accuracy(path: string, j: EngineJob): Promise<number> {
    const params = ModelParams.loaded(this.o.ctx, await loadCheckpoint(path));
    try {
      return await taskAccuracy(
        this.o.ctx,
        { params, spec: j.spec, layout: this.o.layout },
        j.taskExamples!,
      );
    } finally {
      params.destroy();
    }
  }

  async close(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true });
  }
}
