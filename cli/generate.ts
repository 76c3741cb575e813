/**
 * `deno task generate --ckpt F [--prompt S] [--max-new-tokens N] [--greedy | --temperature T
 * --top-k K --top-p P --seed S] [--tokenizer F] [--json]`: continues a prompt with a checkpoint
 * (its spec and tokenizer rebuilt from the file's metadata; a spec that is not causal is refused
 * with a witness pair) using the PHD KV cache (runtime/infer/decoder.ts): prefill of the
 * compiler's prefill set, then K query rows per decode step, sampling on the GPU, several steps
 * per submit. Text streams to stdout as it is produced;
 * `--prompt` may be repeated to generate for several prompts in one batch. `--json` prints one
 * object: tokens, text, kv_cache_bytes, prefill_ms, decode_tokens_per_s, kv_cache {...}. Before any
 * allocation it refuses an empty prompt, a checkpoint with a non-finite weight and a
 * `--max-new-tokens` the adapter's KV cache cannot hold (saying how many fit).
 */
import { loadCheckpoint } from "../runtime/host/checkpoint.ts";
import { Decoder, type SamplingOptions } from "../runtime/infer/decoder.ts";
import { ModelParams } from "../runtime/model/params.ts";
import { checkCausality } from "../compiler/analysis/causality.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import { checkpointTokenizer } from "./eval.ts";
import { checkForwardFits, maxDecodePositions } from "../runtime/model/limits.ts";
import {
  newCommand,
  nonNegativeInt,
  parseArgv,
  positiveInt,
  runCommand,
  UsageError,
} from "./args.ts";
import { kernelContext } from "./train.ts";

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

/**
 * Refuses a spec that lets a query see a later position (declared `bidirectional: true`): cached
 * decoding computes each position before the next exists. One line with a witnessing pair.
 */
export function requireCausal(spec: AttentionSpec, L: number): void {
  if (spec.bidirectional !== true) return;
  const c = checkCausality({ ...spec, bidirectional: false }, { L });
  if (c.causal || !c.witness) return;
  const { query: [qc, qp], key: [kc, kp] } = c.witness;
  throw new UsageError(
    `spec "${spec.name}" is not causal: query (copy ${qc}, pos ${qp}) attends key ` +
      `(copy ${kc}, pos ${kp}) at a later position, so it cannot decode token by token ` +
      `(train and eval it; generate needs a causal mask)`,
  );
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
      "decode steps per GPU submit (one readback each)",
      positiveInt("--steps-per-submit"),
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
  if (prompts.some((p) => p.length === 0)) {
    throw new UsageError("the prompt is empty: give at least one character");
  }
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
  const ck = await loadCheckpoint(o.ckpt);
  const tokenizer = await checkpointTokenizer(ck, o.tokenizer);
  const ids = prompts.map((p) => tokenizer.encode(p));
  if (ids.some((p) => p.length === 0)) {
    throw new UsageError(`the prompt encodes to no ${tokenizer.name} token: give more text`);
  }
  const maxNew: number = o.maxNewTokens;
  requireCausal(ck.spec, Math.max(...ids.map((p) => p.length)) + maxNew);
  const ctx = await kernelContext();
  const longest = Math.max(...ids.map((p) => p.length));
  // Before any allocation: the positions must fit the KV cache the adapter can hold.
  const most = maxDecodePositions(ctx.gpu, ck.model, ck.spec, ids.length);
  if (longest + maxNew - 1 > most) {
    throw new UsageError(
      `--max-new-tokens ${maxNew} with a prompt of ${longest} tokens needs ${
        longest + maxNew - 1
      } positions but the KV cache on adapter "${ctx.gpu.adapterName}" holds at most ${most}: ` +
        `use --max-new-tokens <= ${Math.max(0, most - longest + 1)}`,
    );
  }
  checkForwardFits(ctx.gpu, ck, {
    batch: ids.length,
    L: longest,
    names: { batch: "prompts", L: "prompt tokens" },
  });
  const params = ModelParams.loaded(ctx, ck);
  const dec = new Decoder(ctx, params, ck.spec, {
    batch: ids.length,
    maxPositions: longest + maxNew - 1,
    stepsPerSubmit: o.stepsPerSubmit,
  });
  const stream = !o.json && ids.length === 1;
  const enc = new TextEncoder(), textDec = new TextDecoder();
  const write = (s: string) => Deno.stdout.writeSync(enc.encode(s));
  if (stream) write(prompts[0]);
  const tokens: number[][] = ids.map(() => []);
  for await (const chunk of dec.generate({ prompts: ids, maxNewTokens: maxNew, sampling })) {
    chunk.tokens.forEach((t, b) => tokens[b].push(...t));
    if (stream && tokenizer.name === "bytes") {
      write(textDec.decode(new Uint8Array(chunk.tokens[0]), { stream: true }));
    }
  }
  const s = dec.stats, kv = s.kv;
  const texts = tokens.map((t) => tokenizer.decode(t));
  if (stream && tokenizer.name !== "bytes") write(texts[0]);
  const report = {
    tokens: tokens[0],
    text: texts[0],
    prompt: prompts[0],
    kv_cache_bytes: kv.bytes,
    prefill_ms: +s.prefillMs.toFixed(3),
    decode_tokens_per_s: +s.decodeTokensPerS.toFixed(3),
    kv_cache: {
      originals: kv.originals,
      hidden_window: kv.hiddenWindow,
      tokens: kv.retainedTokens,
      bytes_per_token: kv.bytesPerToken,
      formula: kv.formula,
      peak_tokens: kv.peakTokens,
      allocated_bytes: kv.allocatedBytes,
    },
    prefill_plan_ms: +s.prefillPlanMs.toFixed(3),
    prefill_rows: s.prefillRows,
    decode_ms: +s.decodeMs.toFixed(3),
    decode_steps: s.decodeSteps,
    submits: s.submits,
    spec: ck.spec.name,
    tokenizer: tokenizer.name,
    sampling,
    adapter: ctx.gpu.adapterName,
    ...(ids.length > 1
      ? { batch: tokens.map((t, b) => ({ prompt: prompts[b], tokens: t, text: texts[b] })) }
      : {}),
  };
  dec.destroy();
  params.destroy();
  if (o.json) {
    console.log(JSON.stringify(report));
    return;
  }
  if (!stream) {
    texts.forEach((t, b) => console.log(`${b > 0 ? "\n" : ""}${prompts[b]}${t}`));
  } else write("\n");
  console.error(
    `\n${ck.spec.name}: prefill ${s.prefillMs.toFixed(0)} ms (${s.prefillRows.join("+")} rows), ` +
      `decode ${s.decodeTokensPerS.toFixed(1)} tokens/s, KV cache ${kv.bytes} bytes ` +
      `(${kv.originals} originals + hidden window ${kv.hiddenWindow}; ${kv.formula}) on ${ctx.gpu.adapterName}`,
  );
}

if (import.meta.main) await runCommand(main);
