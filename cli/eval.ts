/**
 * `deno task eval --ckpt F (--text-file T | --split val|train) [--context N] [--tokenizer F]
 * [--json]`: mean next-token loss of a checkpoint on a text or a Brown split, in nats per token and
 * bits per UTF-8 byte (runtime/jobs/eval.ts).
 */
import { Option } from "commander";
import { LAYOUTS } from "../compiler/layout.ts";
import { evaluateCheckpoint } from "../runtime/jobs/eval.ts";
import { newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";

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
    .option(
      "--allow-leak",
      "evaluate a spec whose predictions can see their targets, scoring only the positions that cannot",
    )
    .option("--json", 'print {"loss","bits_per_byte","tokens",...} on stdout')
    .addHelpText(
      "after",
      "\nA text that fits the context is one sequence; longer ones are consecutive windows.",
    );
  const o = parseArgv(cmd).opts();
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  const quiet = o.json || !Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const r = await evaluateCheckpoint({
    ckpt: o.ckpt,
    textFile: o.textFile,
    split: o.split,
    context: o.context,
    batch: o.batch,
    maxWindows: o.maxWindows,
    layout: o.layout,
    tokenizer: o.tokenizer,
    allowLeak: o.allowLeak,
    warn: (l) => console.error(l),
    progress: quiet
      ? undefined
      : (d, n) => Deno.stderr.writeSync(enc.encode(`\reval ${d}/${n} windows`)),
  });
  if (!quiet) console.error("");
  if (o.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `loss ${r.loss.toFixed(4)} nats/token, ${r.bits_per_byte.toFixed(4)} bits/byte over ` +
        `${r.tokens} tokens (${r.tokenizer}; ${r.bytes} bytes), context ${r.context}, ${r.spec}, ` +
        `${r.seconds.toFixed(1)} s`,
    );
  }
}

if (import.meta.main) await runCommand(main);
