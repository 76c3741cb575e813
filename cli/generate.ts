/**
 * `deno task generate --ckpt F [--prompt S] [--max-new-tokens N] [--greedy | --temperature T
 * --top-k K --top-p P --seed S] [--tokenizer F] [--json]`: continues a prompt with a checkpoint
 * through the PHD KV cache (runtime/jobs/generate.ts). Text streams to stdout as it is produced;
 * `--prompt` may be repeated to generate for several prompts in one batch. `--json` prints one
 * object: tokens, text, kv_cache_bytes, prefill_ms, decode_tokens_per_s, kv_cache {...}.
 */
import type { SamplingOptions } from "../runtime/infer/decoder.ts";
import { generateFromCheckpoint } from "../runtime/jobs/generate.ts";
import {
  newCommand,
  nonNegativeInt,
  parseArgv,
  positiveInt,
  runCommand,
  UsageError,
} from "./args.ts";

/** The prompt and length when none is given. */
export const DEFAULT_PROMPT = "The";
export const DEFAULT_NEW_TOKENS = 64;

/** Sampling when no flag is given. */
const DEFAULT_SAMPLING = { temperature: 0.8, topK: 40, topP: 0.95, seed: 0 } as const;

function number(flag: string, ok: (x: number) => boolean, what: string) {
  return (v: string) => {
    const x = Number(v);
    if (v.trim() === "" || !Number.isFinite(x) || !ok(x)) {
      throw new UsageError(`${flag} must be ${what}, got "${v}"`);
    }
    return x;
  };
}

async function main() {
  const cmd = newCommand(
    "generate",
    "Continue a prompt with a checkpoint, using the PHD KV cache (prefill + cached decoding).",
  )
    .requiredOption("--ckpt <file>", "checkpoint (.safetensors) written by deno task train or demo")
    .option(
      "--prompt <text>",
      `text to continue (repeat for several prompts in one batch; default "${DEFAULT_PROMPT}")`,
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--max-new-tokens <n>",
      "tokens to generate per prompt",
      positiveInt("--max-new-tokens"),
      DEFAULT_NEW_TOKENS,
    )
    .option(
      "--tokenizer <file>",
      "a tokenizer.json to use instead of the checkpoint's (its vocabulary must match)",
    )
    .option("--greedy", "always take the most likely token")
    .option(
      "--temperature <t>",
      `sampling temperature > 0 (default ${DEFAULT_SAMPLING.temperature})`,
      number("--temperature", (x) => x > 0, "a number > 0"),
    )
    .option(
      "--top-k <k>",
      `keep the k most likely tokens, 0 = all (default ${DEFAULT_SAMPLING.topK})`,
      nonNegativeInt("--top-k"),
    )
    .option(
      "--top-p <p>",
      `keep the most likely tokens holding probability p (default ${DEFAULT_SAMPLING.topP})`,
      number("--top-p", (x) => x > 0 && x <= 1, "a number in (0, 1]"),
    )
    .option("--seed <s>", "sampling seed", nonNegativeInt("--seed"))
    .option(
      "--steps-per-submit <n>",
      "decode steps per GPU submit (one readback each), at most 1024",
      positiveInt("--steps-per-submit", 1024),
      16,
    )
    .option("--json", "print one JSON object (tokens, text, kv_cache_bytes, timings) on stdout")
    .addHelpText(
      "after",
      `\nWithout sampling flags: temperature ${DEFAULT_SAMPLING.temperature}, top-k ${DEFAULT_SAMPLING.topK}, ` +
        `top-p ${DEFAULT_SAMPLING.topP}, seed ${DEFAULT_SAMPLING.seed}. Text streams to stdout as it is produced.`,
    );
  const o = parseArgv(cmd).opts();
  const prompts: string[] = o.prompt ?? [DEFAULT_PROMPT];
  const sampleFlags = ["temperature", "topK", "topP", "seed"].filter((k) => o[k] !== undefined);
  if (o.greedy && sampleFlags.length > 0) {
    throw new UsageError(
      `--greedy takes no sampling flags (got --${
        sampleFlags[0].replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())
      })`,
    );
  }
  const sampling: SamplingOptions = o.greedy ? { temperature: 0 } : {
    temperature: o.temperature ?? DEFAULT_SAMPLING.temperature,
    topK: o.topK ?? DEFAULT_SAMPLING.topK,
    topP: o.topP ?? DEFAULT_SAMPLING.topP,
    seed: o.seed ?? DEFAULT_SAMPLING.seed,
  };
  const stream = !o.json && prompts.length === 1;
  const enc = new TextEncoder(), textDec = new TextDecoder();
  const write = (s: string) => Deno.stdout.writeSync(enc.encode(s));
  let started = false;
  const r = await generateFromCheckpoint({
    ckpt: o.ckpt,
    prompts,
    maxNewTokens: o.maxNewTokens,
    sampling,
    stepsPerSubmit: o.stepsPerSubmit,
    tokenizer: o.tokenizer,
    warn: (l) => console.error(l),
    onTokens: stream
      ? (chunk, tokenizer) => {
        if (!started) write(prompts[0]);
        started = true;
        if (tokenizer.name === "bytes") {
          write(textDec.decode(new Uint8Array(chunk.tokens[0]), { stream: true }));
        }
      }
      : undefined,
  });
  if (o.json) {
    console.log(JSON.stringify(r));
    return;
  }
  if (!stream) {
    const all = r.batch ?? [{ prompt: r.prompt, text: r.text }];
    all.forEach((x, b) => console.log(`${b > 0 ? "\n" : ""}${x.prompt}${x.text}`));
  } else write((r.tokenizer === "bytes" ? "" : r.text) + "\n");
  const kv = r.kv_cache;
  console.error(
    `\n${r.spec}: prefill ${r.prefill_ms.toFixed(0)} ms (${r.prefill_rows.join("+")} rows), ` +
      `decode ${r.decode_tokens_per_s.toFixed(1)} tokens/s, KV cache ${r.kv_cache_bytes} bytes ` +
      `(${kv.originals} originals + hidden window ${kv.hidden_window}; ${kv.formula}) on ${r.adapter}`,
  );
}

if (import.meta.main) await runCommand(main);
