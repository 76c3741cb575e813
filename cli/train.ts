/**
 * `deno task train [--config FILE.json] [--spec S] [--data F]... [--steps N] [--lr X]
 * [--batch-size B] [--seq-len L] [--K k] [--param NAME=V]... [--tokenizer T] [--tokens F]
 * [--out F] [--resume F [--override-config]]`: trains the PHD transformer of a config (flags
 * override it) with any spec on the Brown corpus, any text or a token file (`deno task tokenize`)
 * (runtime/jobs/train.ts `trainCommand`), with a
 * progress bar on stderr, and prints the report (one JSON object with `--json`).
 */
import { LAYOUTS } from "../compiler/layout.ts";
import { parseTokenizerFlag } from "../runtime/host/tokenizer_file.ts";
import { terminalProgress } from "../runtime/host/progress.ts";
import { utilizationText } from "../runtime/gpu/peak.ts";
import { trainCommand } from "../runtime/jobs/train.ts";
import {
  assignments,
  newCommand,
  parseArgv,
  positiveInt,
  positiveNumber,
  runCommand,
  UsageError,
} from "./args.ts";

/** `--param NAME=V` values: a number, or `a,b,c` for a table. */
function paramValue(name: string, v: string): number | number[] {
  const parts = v.split(",").map((x) => x.trim());
  if (parts.some((x) => !/^\d+$/.test(x))) {
    throw new UsageError(`--param ${name} must be an integer >= 0 or a list a,b,c, got "${v}"`);
  }
  const n = parts.map(Number);
  return parts.length === 1 ? n[0] : n;
}

async function main() {
  const cmd = newCommand("train", "Train a PHD transformer with any spec on any text.")
    .option(
      "--config <file>",
      "JSON config with model, phd, train, data sections (default: the demo model)",
    )
    .option("--spec <spec>", "a preset name or a .ts file exporting an AttentionSpec (phd.spec)")
    .option(
      "--data <path>",
      "training text: a file, folder or glob of .txt/.jsonl (repeatable; data.train)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("--steps <n>", "total training steps (train.steps)", positiveInt("--steps"))
    .option("--lr <x>", "peak learning rate (train.lr)", positiveNumber("--lr"))
    .option(
      "--batch-size <n>",
      "sequences per batch (train.batch_size)",
      positiveInt("--batch-size"),
    )
    .option("--seq-len <n>", "positions per sequence (train.seq_len)", positiveInt("--seq-len"))
    .option("--K <k>", "copies per position (phd.K)", positiveInt("--K"))
    .option(
      "--param <name=value>",
      "a spec parameter, or a table as a,b,c (repeatable; phd.params)",
      assignments("--param", paramValue),
    )
    .option(
      "--tokenizer <t>",
      "bytes | a tokenizer.json path | bpe:N (data.tokenizer)",
      (v: string) => parseTokenizerFlag(v),
    )
    .option(
      "--spec-timeout <s>",
      "seconds a spec file may take to load and build its mask (default 10)",
      positiveNumber("--spec-timeout"),
    )
    .option(
      "--tokens <file>",
      "a token file of deno task tokenize, in place of --data (data.tokens)",
    )
    .option("--out <file>", "checkpoint to write", "out/model.safetensors")
    .option(
      "--resume <file>",
      "checkpoint to continue (the newest complete one of it and its .step-N series)",
    )
    .option("--override-config", "with --resume: continue under the changed --config/flags")
    .option("--layout <layout>", `attention storage layout: ${LAYOUTS.join(" | ")}`, "grouped")
    .option("--force", "replace existing files at --out that are not checkpoints of this tool")
    .option(
      "--allow-leak",
      "train a spec whose predictions can see their targets (a prefix-LM, an encoder), scoring only the positions that cannot",
    )
    .option("--json", "print a JSON report on stdout")
    .option("--quiet", "no progress output")
    .addHelpText(
      "after",
      "\nFlags override the config file. A trained BPE (bpe:N) is written beside the checkpoint" +
        "\nas NAME.tokenizer.json (for --out NAME.safetensors) and embedded in it." +
        "\nCheckpoints: every train.save_every steps (or train.save_every_seconds) a unit of model +" +
        "\n.state.safetensors goes to <out stem>.step-NNNNNNNN.safetensors (the last train.keep_last" +
        "\nkept), and at the end (or on SIGINT/SIGTERM, exit 130/143) to <out>. --resume takes the" +
        "\nsaved config, step and schedule: a resumed run reproduces the uninterrupted one bit for" +
        "\nbit (same batches, same moments, same learning rates). A NaN or exploding loss stops the" +
        "\nrun with the last good checkpoint kept.",
    );
  const o = parseArgv(cmd).opts();
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  const log = (l: string) => o.quiet || console.error(l);
  const report = await trainCommand({
    config: o.config,
    overrides: {
      spec: o.spec,
      K: o.K,
      params: o.param,
      steps: o.steps,
      lr: o.lr,
      batch_size: o.batchSize,
      seq_len: o.seqLen,
      data: o.data,
      tokenizer: o.tokenizer,
      tokens: o.tokens,
      specTimeout: o.specTimeout,
    },
    out: o.out,
    resume: o.resume,
    overrideConfig: o.overrideConfig,
    force: o.force,
    allowLeak: o.allowLeak,
    layout: o.layout,
    log,
    progress: o.quiet ? undefined : terminalProgress,
  });
  if (o.json) console.log(JSON.stringify(report));
  if (report.interrupted) {
    console.error(
      `error: interrupted by ${report.interrupted} at step ${report.steps}: saved ${report.checkpoint}; ` +
        `continue with --resume ${report.checkpoint}`,
    );
    Deno.exit(report.interrupted === "SIGINT" ? 130 : 143);
  }
  if (!o.json) {
    console.log(
      `trained ${report.spec} for ${report.steps} steps in ${report.train_seconds.toFixed(1)} s: ` +
        `val loss ${report.val_loss_after.toFixed(4)} nats/token ` +
        `(${report.val_bits_per_byte.toFixed(4)} bits/byte), ${
          report.tokens_per_s.toFixed(0)
        } tok/s, ` +
        utilizationText(report),
    );
  }
}

if (import.meta.main) await runCommand(main);
