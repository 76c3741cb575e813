/**
 * `deno task eval --ckpt F (--text-file T | --split val|train) [--context N] [--tokenizer F]
 * [--json]`: mean next-token loss of a checkpoint on a text or a Brown split (docs/DESIGN.md 3), in
 * nats per token and bits per UTF-8 byte (so runs with different tokenizers compare); the spec and
 * the tokenizer are rebuilt from the checkpoint. A checkpoint with a non-finite weight, or a
 * context/batch the adapter cannot hold, is refused with one line before any text is read.
 */
import { Option } from "commander";
import { type Layout, LAYOUTS } from "../compiler/layout.ts";
import { loadCheckpoint } from "../runtime/host/checkpoint.ts";
import type { Checkpoint } from "../runtime/io/checkpoint.ts";
import { loadTokenizerFile } from "../runtime/host/tokenizer_file.ts";
import { evaluateStream } from "../runtime/train/evaluate.ts";
import { ModelParams } from "../runtime/model/params.ts";
import { type Tokenizer, tokenizerFromMetadata } from "../runtime/data/tokenizer.ts";
import { checkForwardFits } from "../runtime/model/limits.ts";
import { newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";
import { brownCorpus, kernelContext } from "./train.ts";

/** Context when a checkpoint does not record the one it was trained with. */
const DEFAULT_CONTEXT = 128;

/**
 * The tokenizer of a checkpoint: the one its metadata embeds, or `file` instead. Either must have
 * the model's vocabulary size.
 */
export async function checkpointTokenizer(ck: Checkpoint, file?: string): Promise<Tokenizer> {
  let tok: Tokenizer;
  try {
    tok = file ? await loadTokenizerFile(file) : tokenizerFromMetadata(ck.tokenizer);
  } catch (e) {
    throw new UsageError(
      file ? (e as Error).message : `the checkpoint's tokenizer: ${(e as Error).message}`,
    );
  }
  if (tok.vocabSize !== ck.model.vocab_size) {
    throw new UsageError(
      `tokenizer ${tok.name} has ${tok.vocabSize} ids but the checkpoint's vocabulary is ` +
        `${ck.model.vocab_size}: use the tokenizer it was trained with`,
    );
  }
  return tok;
}

async function main() {
  const cmd = newCommand(
    "eval",
    "Mean next-token loss of a checkpoint on a text or a corpus split.",
  )
    .requiredOption("--ckpt <file>", "checkpoint (.safetensors) written by deno task train")
    .option("--text-file <file>", "evaluate on this UTF-8 text")
    .addOption(new Option("--split <split>", "evaluate on a Brown split").choices(["val", "train"]))
    .option(
      "--context <n>",
      "predictions per window (default: the training seq_len)",
      positiveInt("--context"),
    )
    .option("--batch <n>", "windows per batch", positiveInt("--batch"), 8)
    .option("--max-windows <n>", "stop after this many windows", positiveInt("--max-windows"))
    .option("--layout <layout>", `attention storage layout: ${LAYOUTS.join(" | ")}`, "grouped")
    .option(
      "--tokenizer <file>",
      "a tokenizer.json to use instead of the checkpoint's (its vocabulary must match)",
    )
    .option("--json", 'print {"loss","bits_per_byte","tokens",...} on stdout')
    .addHelpText(
      "after",
      "\nA text that fits the context is one sequence; longer ones are consecutive windows.",
    );
  const o = parseArgv(cmd).opts();
  if (!o.textFile === !o.split) {
    throw new UsageError("give exactly one of --text-file FILE or --split val");
  }
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  const ck = await loadCheckpoint(o.ckpt);
  const tokenizer = await checkpointTokenizer(ck, o.tokenizer);
  const context = o.context ?? ck.context ?? DEFAULT_CONTEXT;
  const ctx = await kernelContext();
  // Before reading any text: a context or batch the adapter cannot hold is refused now.
  checkForwardFits(ctx.gpu, ck, {
    batch: o.batch,
    L: context,
    names: { batch: "--batch", L: "--context" },
  });
  let stream: Uint32Array;
  if (o.textFile) {
    let text: string;
    try {
      text = await Deno.readTextFile(o.textFile);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new UsageError(`text file "${o.textFile}" does not exist`);
      }
      throw e;
    }
    stream = tokenizer.encode(text);
  } else {
    if (tokenizer.name !== "bytes") {
      throw new UsageError(`--split needs the bytes tokenizer, checkpoint has ${tokenizer.name}`);
    }
    stream = (await brownCorpus())[o.split as "val" | "train"];
  }
  if (stream.length < 2) throw new UsageError("the text must hold at least 2 tokens");
  const params = ModelParams.loaded(ctx, ck);
  const t0 = performance.now();
  const quiet = o.json || !Deno.stderr.isTerminal();
  const r = await evaluateStream(ctx, params, ck.spec, stream, {
    context,
    batch: o.batch,
    maxWindows: o.maxWindows,
    layout: o.layout as Layout,
    separator: tokenizer.separator,
    progress: quiet
      ? undefined
      : (d, n) => Deno.stderr.writeSync(new TextEncoder().encode(`\reval ${d}/${n} windows`)),
  });
  if (!quiet) console.error("");
  const seconds = (performance.now() - t0) / 1000;
  // Bits per byte: the predicted tokens' nats over the UTF-8 bytes of the text they decode to.
  const predicted = stream.subarray(1, 1 + r.tokens);
  const bytes = tokenizer.name === "bytes"
    ? predicted.length
    : new TextEncoder().encode(tokenizer.decode(predicted)).length;
  const bpb = r.loss * r.tokens / (bytes * Math.LN2);
  const out = {
    loss: r.loss,
    bits_per_byte: bpb,
    tokens: r.tokens,
    bytes,
    context,
    spec: ck.spec.name,
    tokenizer: tokenizer.name,
    seconds,
  };
  if (o.json) console.log(JSON.stringify(out));
  else {
    console.log(
      `loss ${r.loss.toFixed(4)} nats/token, ${bpb.toFixed(4)} bits/byte over ${r.tokens} ` +
        `tokens (${tokenizer.name}; ${bytes} bytes), context ${context}, ${ck.spec.name}, ` +
        `${seconds.toFixed(1)} s`,
    );
  }
}

if (import.meta.main) await runCommand(main);
